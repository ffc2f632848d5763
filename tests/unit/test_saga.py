"""The saga helper: reverse order, every compensation runs, first error raised."""

from __future__ import annotations

import pytest

from workflows.saga import Saga


async def test_compensations_run_in_reverse_and_all_run() -> None:
    ran: list[str] = []
    saga = Saga()

    def undo(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        async def run() -> None:
            ran.append(name)
            if fail:
                raise RuntimeError(name)

        return run

    saga.register("a", undo("a", fail=True))
    saga.register("b", undo("b", fail=True))
    saga.register("c", undo("c"))
    assert saga.pending == ["c", "b", "a"]
    with pytest.raises(RuntimeError, match=r"^b$"):
        await saga.compensate()
    assert ran == ["c", "b", "a"]
    assert saga.pending == []


def test_close_marks_the_point_of_no_return() -> None:
    saga = Saga()
    assert not saga.closed
    saga.close()
    assert saga.closed
