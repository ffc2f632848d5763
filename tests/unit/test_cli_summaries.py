"""A run's summary prints what the run has: a run that ended early shows what happened and
its error, never ``None`` where a figure it did not reach would be."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from hybridops.cli.bootstrap import print_bootstrap_summary
from hybridops.cli.common import RunEnding, console, watch
from hybridops.cli.drill import print_drill_summary
from hybridops.cli.failback import print_failback_summary
from hybridops.cli.failover import print_summary
from hybridops.contracts.base import RunStatus
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.contracts.failback import FailbackInput, FailbackResult, RejoinOutcome
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.sites import RpoMeasure
from hybridops.inventory import Inventory, load_inventory

INVENTORY = load_inventory(Path(__file__).parents[2] / "runbooks" / "inventory.example.yaml")
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
NOTHING = "azure is the writable primary, not a cloud site: nothing to fail back"


def printed(printer: Callable[[RunEnding[Any], Inventory], None], ending: RunEnding[Any]) -> str:
    with console.capture() as out:
        printer(ending, INVENTORY)
    return out.get()


def result_data(result_type: type[Any], inp: Any, status: RunStatus, **fields: Any) -> RunEnding[Any]:
    """A run's ending as the CLI gets it: its typed result."""
    result = result_type(workflow_id="run-1", run_id="r", status=status, input=inp, started_at=NOW, **fields)
    return RunEnding("run-1", result)


def test_a_failback_that_found_nothing_to_fail_back_says_so() -> None:
    data = result_data(
        FailbackResult,
        FailbackInput(),
        RunStatus.COMPENSATED,
        error=f"NothingToFailBack: {NOTHING}",
        evidence_dir="output/failback/run-1",
    )
    assert data.result is not None
    assert data.result.home is None and data.result.write_pause_seconds is None
    text = printed(print_failback_summary, data)
    first, *rest = text.strip().splitlines()
    assert first == "failback compensated"
    assert f"  error: NothingToFailBack: {NOTHING}" in rest
    assert "None" not in text and "home:" not in text and "write pause" not in text and "rejoined" not in text
    assert "  evidence: output/failback/run-1" in rest
    assert any(line.startswith("  in the UI: ") and line.endswith("/workflows/run-1") for line in rest)


def test_a_failback_that_went_through_prints_its_figures() -> None:
    figures = {
        "rejoin_seconds": 4.25,
        "catch_up_seconds": 0.5,
        "write_pause_seconds": 1.5,
        "switchover_seconds": 3,
    }
    data = result_data(
        FailbackResult,
        FailbackInput(),
        RunStatus.SUCCEEDED,
        home="onprem",
        old_primary="azure",
        rejoin=RejoinOutcome.REWOUND,
        **figures,
    )
    text = printed(print_failback_summary, data)
    assert "failback succeeded  home: onprem   from azure" in text
    assert "home rejoined by rewound in 4.250 s" in text and "caught up in 0.500 s" in text
    assert "write pause: 1.500 s   switchover: 3.000 s" in text
    assert "error" not in text and "None" not in text


@pytest.mark.parametrize(
    ("printer", "data", "headline"),
    [
        (
            print_summary,
            result_data(
                FailoverResult,
                FailoverInput(),
                RunStatus.COMPENSATED,
                error="PrimaryHealthy: onprem answers",
                incident_started_at=NOW,
                rpo=RpoMeasure(),
            ),
            "failover compensated",
        ),
        (
            print_drill_summary,
            result_data(DrillResult, DrillInput(), RunStatus.FAILED, error="BackupNotFound: no base backup"),
            "drill failed",
        ),
        (
            print_bootstrap_summary,
            result_data(BootstrapResult, BootstrapInput(), RunStatus.FAILED, error="AnsibleFailed: rke2"),
            "bootstrap failed",
        ),
        # A run that failed without a result (terminated): only what the server said.
        (
            print_summary,
            RunEnding("run-2", reason="terminated"),
            "failover failed",
        ),
    ],
)
def test_every_runbook_summary_of_a_run_that_ended_early(
    printer: Callable[[RunEnding[Any], Inventory], None], data: RunEnding[Any], headline: str
) -> None:
    text = printed(printer, data)
    assert text.strip().splitlines()[0] == headline, text
    assert data.error and f"  error: {data.error}" in text
    assert "None" not in text and "RTO" not in text and "RPO" not in text and "target" not in text


class _Ended:
    """A handle of a run that has ended: ``result()`` returns or raises ``outcome``."""

    def __init__(self, outcome: Any) -> None:
        self.id = "run-3"
        self.outcome = outcome

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not asked in this test")

    async def describe(self) -> Any:
        return SimpleNamespace(status=SimpleNamespace(name="FAILED"))

    async def result(self) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


async def test_a_run_comes_back_typed_whether_it_succeeded_or_failed() -> None:
    """A runbook fails with its result as the failure's details: the command gets that result,
    typed, as it gets a successful run's; a run with no result, only what the server said."""
    result = FailoverResult(
        workflow_id="run-3",
        run_id="r",
        status=RunStatus.COMPENSATED,
        input=FailoverInput(),
        started_at=NOW,
        incident_started_at=NOW,
        target="azure",
        error="InjectedFault: boom",
    )
    details = result.model_dump(mode="json")
    failed = WorkflowFailureError(
        cause=ApplicationError("failover compensated", details, type="FailoverCompensated")
    )
    ending = await watch(_Ended(failed), FailoverResult, quiet=True)
    assert ending.result == result and ending.status == "compensated"
    assert ending.error == "InjectedFault: boom" and ending.data() == details
    succeeded = result.model_copy(update={"status": RunStatus.SUCCEEDED})
    done = await watch(_Ended(succeeded), FailoverResult, quiet=True)
    assert done.result == succeeded and done.status == "succeeded"
    terminated = WorkflowFailureError(cause=ApplicationError("terminated"))
    gone = await watch(_Ended(terminated), FailoverResult, quiet=True)
    assert gone.result is None and gone.status == "failed" and gone.error == "terminated"
    assert gone.data() == {"workflow_id": "run-3", "status": "failed", "error": "terminated"}
