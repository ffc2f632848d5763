"""The decide phase's one activity: gather live signals, and read the policy.

Everything a decision rests on comes back in one result, recorded in the history; the
decision itself is taken in the workflow by the pure engine (hybridops/decision.py), so a
replay reproduces it from the recorded data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from activities.common import step_activity
from hybridops.constants import ActivityName
from hybridops.contracts.decision import SignalsInput, SignalsResult
from hybridops.inventory import Inventory
from hybridops.policy import load_policy

if TYPE_CHECKING:
    from drivers.signals import SignalsDriver


class DecideActivities:
    """Built once per worker; its signal drivers come from the inventory's ``signals``, built
    on first use (a worker that serves no control queue needs none)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.faults = inventory.faults
        self._drivers: list[SignalsDriver] | None = None

    @property
    def drivers(self) -> list[SignalsDriver]:
        if self._drivers is None:
            from drivers.signals import make_signal_drivers

            self._drivers = make_signal_drivers(self.inventory.signals)
        return self._drivers

    def all(self) -> list[Callable[..., Any]]:
        return [self.gather_signals]

    @step_activity(ActivityName.GATHER_SIGNALS)
    async def gather_signals(self, inp: SignalsInput) -> SignalsResult:
        """Read-only: every source's signals for every site, and the policy in force."""
        from drivers.signals import collect_signals

        policy = load_policy(self.inventory.policy)
        now = datetime.now(UTC)
        snapshot = await collect_signals(self.drivers, self.inventory.signals.static, inp.sites, now)
        return SignalsResult(
            snapshot=snapshot,
            policy=policy,
            detail=f"{len(snapshot.candidates)} sites, {len(snapshot.errors)} source errors, "
            f"policy {policy.digest()}",
        )
