"""The saga helper: compensations registered before the step they undo, run in reverse.

A step that changes the world registers its compensation *before* it runs (DESIGN.md rule 3):
if the worker dies mid-step, the compensation is already known. Compensations are idempotent
(undoing something that never happened is a no-op), run in reverse order, and are shielded
from cancellation: once started, they finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Saga:
    """A stack of compensations."""

    _stack: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    closed: bool = False
    """True once the point of no return is passed: nothing will be compensated."""

    def register(self, name: str, undo: Callable[[], Awaitable[None]]) -> None:
        """Remember ``undo`` (named ``name``) to run if the runbook fails before it closes."""
        self._stack.append((name, undo))

    def close(self) -> None:
        """The point of no return: from here on, failures go forward, not back."""
        self.closed = True

    @property
    def pending(self) -> list[str]:
        return [name for name, _ in reversed(self._stack)]

    async def compensate(self) -> None:
        """Run every compensation in reverse order, each even if an earlier one failed;
        shielded from cancellation. Raises the first failure once all have run."""
        task = asyncio.ensure_future(self._run_all())
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                if task.done():
                    raise
                continue  # a cancellation must not leave the world half undone

    async def _run_all(self) -> None:
        first: BaseException | None = None
        while self._stack:
            _name, undo = self._stack.pop()
            try:
                await undo()
            except Exception as err:
                first = first or err
        if first is not None:
            raise first
