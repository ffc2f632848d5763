"""Deterministic workflow code only: a module per runbook, the saga and step helpers."""
