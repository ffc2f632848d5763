"""The decide phase's one activity: gather live signals, and read the policy.

Everything a decision rests on comes back in one result, recorded in the history; the
decision itself is taken in the workflow by the pure engine (hybridops/decision.py), so a
replay reproduces it from the recorded data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.common import Activities, step_activity
from hybridops.constants import ActivityName
from hybridops.contracts.decision import SignalsInput, SignalsResult
from hybridops.policy import load_policy


class DecideActivities(Activities):
    """Built once per worker; its signal sources come from the inventory's ``signals``, built
    on first use (a worker that serves no control queue needs none)."""

    def all(self) -> list[Callable[..., Any]]:
        return [self.gather_signals]

    @step_activity(ActivityName.GATHER_SIGNALS)
    async def gather_signals(self, inp: SignalsInput) -> SignalsResult:
        """Read-only: every source's signals for every site, and the policy in force."""
        policy = load_policy(self.inventory.policy)
        snapshot = await self.drivers.gather_signals(inp.sites)
        return SignalsResult(
            snapshot=snapshot,
            policy=policy,
            detail=f"{len(snapshot.candidates)} sites, {len(snapshot.errors)} source errors, "
            f"policy {policy.digest()}",
        )
