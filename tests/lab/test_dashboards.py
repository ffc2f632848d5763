"""Every Grafana panel's PromQL (infra/grafana/dashboards/) against the lab's real global
Prometheus, after a drill, a burst and a failover run by the lab's own worker process (which
serves its metrics, scraped by the global Prometheus as job ``hybridops``): each query must
return data. A panel whose query returns nothing is a broken panel."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import RunStatus
from hybridops.contracts.burst import BurstInput, BurstResult
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.contracts.failover import FailoverInput, FailoverResult, TargetChoice
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import eventually, start
from tests.lab.test_monitoring import query
from tests.unit.test_dashboards import panel_queries


async def run(
    client: Client, inv: Inventory, workflow: WorkflowType, arg: Any, result_type: type[Any]
) -> Any:
    handle = await client.start_workflow(
        workflow.value,
        arg,
        id=f"test-dash-{workflow.value.lower()}-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=result_type,
    )
    return await handle.result()


async def test_every_panel_returns_data_after_a_drill_a_burst_and_a_failover(
    client: Client, monitored_lab: Lab
) -> None:
    lab = monitored_lab
    inv = lab_inventory(lab)
    lab.start_writer()
    lab.start_worker()  # the lab's worker process: its metrics are what the panels read

    drill: DrillResult = await run(
        client, inv, WorkflowType.DRILL, DrillInput(take_backup_first=True), DrillResult
    )
    assert drill.passed, drill.error
    burst: BurstResult = await run(
        client,
        inv,
        WorkflowType.BURST,
        BurstInput(target="azure", extra_nodes=1, traffic_share=30, max_duration_s=1, check_interval_s=1),
        BurstResult,
    )
    assert burst.status == RunStatus.SUCCEEDED, burst.error
    at = lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, incident_started_at=at))
    failover: FailoverResult = await handle.result()
    assert failover.status == RunStatus.SUCCEEDED, failover.error

    missing: dict[str, str] = {}

    async def every_panel_answers() -> bool:
        missing.clear()
        for board, title, expr in panel_queries():
            if not query(lab, expr):
                missing[f"{board}: {title}"] = expr
        return not missing

    try:
        await eventually("every panel's query to return data", every_panel_answers, timeout=60)
    except AssertionError:
        raise AssertionError(f"panels without data: {missing}") from None
    # `lab status` names every UI and endpoint of this lab (its Temporal is the session's).
    shown = lab.status()["addresses"]
    assert shown["Prometheus"] == lab.monitoring.prometheus_url
    assert shown["Alertmanager"] == lab.monitoring.alertmanager_url
    assert shown["worker metrics"] == f"http://{lab.ports.worker_metrics}/metrics"
