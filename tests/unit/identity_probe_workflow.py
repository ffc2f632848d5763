"""A probe of the approval identity (workflows/identity.py) for tests/unit/test_identity_passthrough.py.
In a module of its own so the workflow sandbox only re-imports this (the test module imports
the test fixtures)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import identity


@workflow.defn(name="IdentityProbe")
class IdentityProbe:
    """Its ``who`` Update answers the caller's identity as its handler saw it before and after
    a wait, so the updates of several runs are in flight at once."""

    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._go)

    @workflow.update(name="who")
    async def who(self) -> str:
        before = identity.caller()
        await workflow.wait_condition(lambda: self._go)
        return f"{before}|{identity.caller()}"

    @workflow.signal(name="go")
    def go(self) -> None:
        self._go = True
