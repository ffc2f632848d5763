"""Fakes at the process and HTTP boundaries (executables, and servers the real clients talk to)."""
