"""The failover runbook's own activities: its evidence. The steps it shares with every runbook
(plan, assess, fence, promote, repoint, DNS, verify, RPO, ...) are in activities/sites.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from activities.common import Activities, step_activity, write_run_evidence
from hybridops.constants import ActivityName
from hybridops.contracts.base import EvidenceResult
from hybridops.contracts.failover import EvidenceInput


class FailoverActivities(Activities):
    """Activities of ``FailoverWorkflow`` of its own. Built once per worker with its client."""

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of the runbook's own, for worker registration."""
        return [self.write_evidence]

    @step_activity(ActivityName.WRITE_EVIDENCE)
    async def write_evidence(self, inp: EvidenceInput) -> EvidenceResult:
        """Write the run's evidence folder; the history is fetched from the server."""
        return await write_run_evidence(self.client, Path(self.inventory.output_dir), inp.result)
