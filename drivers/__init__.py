"""Every side effect, a subpackage per external system (DESIGN.md, Layout).

Each subpackage has its contract (``base.py``: the interface whose docstrings state each
method's contract), its value types and errors, its registry (a ``StrEnum`` of the
inventory's driver names to ``"module:Class"``, imported lazily) and, where a driver may lack
an operation, declared capabilities. Drivers know nothing of Temporal or of runbooks: the
activities above them are thin adapters that turn a runbook's input into driver calls and
the answer into its result. :class:`drivers.lazy.Drivers` holds one process's drivers, built
on first use. This ``__init__`` imports nothing, so importing one driver does not import the
others.
"""
