"""One metrics endpoint per process: HybridOps' own series (a run's end from its evidence,
once), the SDK's appended, the runs-started counter through the workflow meter, and the
promtool check of what the endpoint serves."""

from __future__ import annotations

import shutil
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import generate_latest
from temporalio import workflow
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from hybridops import metrics
from hybridops.constants import Runbook, TaskQueue
from hybridops.contracts.base import RunStatus
from hybridops.contracts.evidence import (
    DrillDetails,
    Evidence,
    EvidenceStep,
    Rpo,
    RpoMethod,
    Rto,
    RtoMethod,
)
from tests.conftest import free_port
from workflows.metrics import RunMetricsInterceptor


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def evidence(run_id: str) -> Evidence:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return Evidence(
        runbook=Runbook.DRILL,
        workflow_id="drill-metrics-test",
        run_id=run_id,
        status=RunStatus.SUCCEEDED,
        started_at=t0,
        ended_at=t0 + timedelta(seconds=42),
        requested_by="test",
        reason="test",
        input={},
        steps=[EvidenceStep(name="restore_backup", started_at=t0, ended_at=t0, seconds=7.5)],
        rto=Rto(method=RtoMethod.RESTORE, seconds=12.0, objective_s=900.0),
        rpo=Rpo(method=RpoMethod.LEDGER, seconds=0.25, objective_s=300.0),
        details=DrillDetails(passed=True),
    )


def test_a_run_end_is_recorded_once() -> None:
    run_id = uuid.uuid4().hex
    before = sample("hybridops_runs_ended_total", runbook="drill", status="succeeded") or 0.0
    metrics.record_run(evidence(run_id))
    metrics.record_run(evidence(run_id))  # the evidence step retried: counted once
    assert sample("hybridops_runs_ended_total", runbook="drill", status="succeeded") == before + 1
    assert sample("hybridops_last_rto_seconds", runbook="drill") == 12.0
    assert sample("hybridops_last_rpo_seconds", runbook="drill") == 0.25
    assert sample("hybridops_rto_objective_seconds", runbook="drill") == 900.0
    assert sample("hybridops_last_step_duration_seconds", runbook="drill", step="restore_backup") == 7.5
    assert (sample("hybridops_rto_seconds_count", runbook="drill") or 0) >= 1


@pytest.fixture
def fake_sdk() -> Iterator[str]:
    """An endpoint answering as the SDK's exporter does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# HELP temporal_num_pollers pollers\n# TYPE temporal_num_pollers gauge\n"
            body += b'temporal_num_pollers{poller_type="workflow_task",task_queue="q"} 2\n'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_the_endpoint_serves_both_and_promtool_accepts_it(fake_sdk: str) -> None:
    metrics.record_run(evidence(uuid.uuid4().hex))
    text = metrics.MetricsEndpoint("127.0.0.1:1", fake_sdk).render().decode()
    assert "hybridops_runs_ended_total" in text
    assert 'temporal_num_pollers{poller_type="workflow_task",task_queue="q"} 2' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (CI installs it)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    # promtool's lint finds counters without _total and such: exit 0 means it parsed and passed.
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_without_the_sdk_its_own_series_still_answer() -> None:
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    assert generate_latest(metrics.REGISTRY) == metrics.MetricsEndpoint("127.0.0.1:1", dead).render()


@workflow.defn(name="DrillWorkflow", sandboxed=False)  # this module imports urllib and such
class FakeDrill:
    @workflow.run
    async def run(self) -> str:
        return "ok"


async def test_runs_started_through_the_workflow_meter(temporal_env: WorkflowEnvironment) -> None:
    """A real worker on a runtime with the Prometheus exporter: the interceptor's counter and
    the SDK's poller gauge are served, under the names the alert rules and dashboards use."""
    bind = f"127.0.0.1:{free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind, counters_total_suffix=True, durations_as_seconds=True)
        )
    )
    own = temporal_env.client.config()
    client = await Client.connect(
        own["service_client"].config.target_host, namespace=own["namespace"], runtime=runtime
    )
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[FakeDrill], interceptors=[RunMetricsInterceptor()]
    ):
        await client.execute_workflow("DrillWorkflow", id=f"wf-{queue}", task_queue=queue)
        with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    assert "hybridops_runs_started_total{" in text and 'runbook="drill"' in text
    assert f'task_queue="{queue}"' in text
    assert "temporal_num_pollers" in text


async def test_the_observer_reads_temporal(client: Client) -> None:
    """The control worker's reading: no drill passed (0), nobody waits, each queue's backlog."""
    from hybridops.inventory import parse_inventory
    from workers.observe import observe_once

    suffix = f"-obs-{uuid.uuid4().hex[:6]}"
    inv = parse_inventory(
        {
            "task_queue_suffix": suffix,
            "sites": {
                "onprem": {"host": "127.0.0.1", "data_dir": "/nonexistent/onprem"},
                "azure": {"host": "127.0.0.2", "cloud": "azure", "data_dir": "/nonexistent/azure"},
            },
            "dns": {"zone": "example.test", "record": "db.example.test"},
            "drill": {"max_age_h": 2},
        }
    )
    await observe_once(client, inv)
    assert sample("hybridops_drill_last_passed_timestamp_seconds") == 0
    assert sample("hybridops_drill_max_age_seconds") == 7200
    assert sample("hybridops_runs_waiting_for_approval", runbook="failover") == 0
    assert sample("hybridops_approval_waiting_since_timestamp_seconds", runbook="failover") is None
    for queue in TaskQueue:
        for kind in ("workflow", "activity"):
            labels = {"task_queue": queue.value + suffix, "task_type": kind}
            assert sample("hybridops_task_queue_backlog", **labels) == 0
    assert sample("hybridops_rto_objective_seconds", runbook="failover") == 900  # runbooks/policy.yaml
    assert sample("hybridops_burst_cost_so_far") == 0  # no burst runs
    assert (sample("hybridops_observer_last_success_timestamp_seconds") or 0) > 0


async def test_a_taken_port_leaves_the_process_running(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        await asyncio.wait_for(metrics.MetricsEndpoint(listen).serve(), timeout=10)  # returns
    assert "cannot listen on" in caplog.text


@workflow.defn(name="ReadinessGaugeProbe", sandboxed=False)
class ReadinessGaugeProbe:
    @workflow.run
    async def run(self) -> str:
        from hybridops.contracts.readiness import CheckStatus, ReadinessCheck, ReadinessResult
        from workflows.readiness import export

        export(
            ReadinessResult(
                runbooks={"failover to gcp": CheckStatus.FAIL, "failover to azure": CheckStatus.WARN},
                checks=[
                    ReadinessCheck(id="topology.streaming.gcp", status=CheckStatus.FAIL),
                    ReadinessCheck(id="topology.one_writer", status=CheckStatus.PASS),
                ],
            )
        )
        return "ok"


async def test_readiness_verdicts_are_gauges(temporal_env: WorkflowEnvironment) -> None:
    """What the alert HybridOpsRunbookNotReady reads: per runbook 1 (ready) or 0 (a check
    fails; a warning is still ready), per check 1 while it fails."""
    bind = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
    own = temporal_env.client.config()
    client = await Client.connect(
        own["service_client"].config.target_host, namespace=own["namespace"], runtime=runtime
    )
    queue = f"ready-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ReadinessGaugeProbe]):
        await client.execute_workflow("ReadinessGaugeProbe", id=f"wf-{queue}", task_queue=queue)
        with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("hybridops_readiness_")]
    assert any('runbook="failover to gcp"' in ln and ln.endswith(" 0") for ln in lines), lines
    assert any('runbook="failover to azure"' in ln and ln.endswith(" 1") for ln in lines), lines
    assert any('check="topology.streaming.gcp"' in ln and ln.endswith(" 1") for ln in lines), lines
    assert any('check="topology.one_writer"' in ln and ln.endswith(" 0") for ln in lines), lines
