"""Side effects, a package per external system, each behind a small driver interface."""
