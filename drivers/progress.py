"""Progress from long driver work, without the driver knowing who listens.

A driver calls :func:`report` from a long wait or tool run (DESIGN.md rule 9); the caller above
decides where the details go by installing a listener with :func:`reporting` around the call.
The activity boundary (``activities/common.py:step_activity``) installs Temporal's heartbeat;
a CLI command or a test installs nothing, and a report is then a no-op. The listener lives in
a context variable, so it follows the call into the tasks and threads it starts
(``asyncio.create_task``, ``asyncio.to_thread`` copy the context) and never leaks between
concurrent calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Listener = Callable[..., None]
"""Takes the details a driver reports (JSON-able values)."""

_listener: ContextVar[Listener | None] = ContextVar("hybridops_progress", default=None)


def report(*details: Any) -> None:
    """Hand ``details`` to the caller's listener, if it installed one. Never raises for want
    of a listener; cheap enough to call on every line of a tool's output."""
    listener = _listener.get()
    if listener is not None:
        listener(*details)


@contextmanager
def reporting(listener: Listener | None) -> Iterator[None]:
    """Within the block, :func:`report` goes to ``listener`` (None: nowhere)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
