"""Metrics: one ``/metrics`` endpoint per HybridOps process (worker, alert receiver, codec
server), serving the Temporal SDK's own metrics and HybridOps' together.

* The SDK's: the Rust core's Prometheus exporter (``temporalio.runtime.PrometheusConfig``),
  bound on loopback on a port of its own that nothing outside the process reaches; the
  endpoint appends its text on each scrape (task slots, pollers, schedule-to-start latency,
  workflow and activity counts, and the ``hybridops_runs_started`` counter that the workflow
  interceptor (:mod:`workflows.metrics`) adds through the replay-safe workflow meter).
* HybridOps' own, through ``prometheus-client`` in :data:`REGISTRY`: each run's end (status,
  RTO, RPO, step durations: :func:`record_run`, called by the evidence step), what the control
  worker observes of Temporal (runs waiting for approval, the last passed drill:
  ``workers/observe.py``), and the alert receiver's counts.

A metric is defined here once, whichever process sets it: a process exports only the series
it set (a labelled metric with no series set exports nothing but its ``HELP``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hybridops.contracts.evidence import BurstDetails, Evidence
from hybridops.inventory import parse_listen

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""HybridOps' own metrics (not the default registry: a test's metrics never leak into it)."""

SECONDS_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
"""RTO and step durations: a lab failover takes seconds, a production one minutes."""
RPO_BUCKETS = (0, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600)
STEP_BUCKETS = (0.1, 0.5, 1, 5, 30, 120, 600, 3600)
"""Coarser: a series set per runbook and step (about 40 pairs), the largest part of the
endpoint (bench/metrics.py)."""

RUNS_ENDED = Counter(
    "hybridops_runs_ended", "Runs that ended (evidence written), by runbook and status.",
    ["runbook", "status"], registry=REGISTRY,
)  # fmt: skip
RTO_SECONDS = Histogram(
    "hybridops_rto_seconds", "Each run's measured RTO (the outage clients saw).",
    ["runbook"], buckets=SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
RPO_SECONDS = Histogram(
    "hybridops_rpo_seconds", "Each run's measured RPO, in seconds of acknowledged writes lost.",
    ["runbook"], buckets=RPO_BUCKETS, registry=REGISTRY,
)  # fmt: skip
LAST_RTO = Gauge("hybridops_last_rto_seconds", "The last run's RTO.", ["runbook"], registry=REGISTRY)
LAST_RPO = Gauge("hybridops_last_rpo_seconds", "The last run's RPO.", ["runbook"], registry=REGISTRY)
RTO_OBJECTIVE = Gauge(
    "hybridops_rto_objective_seconds", "The RTO objective the last run was measured against.",
    ["runbook"], registry=REGISTRY,
)  # fmt: skip
RPO_OBJECTIVE = Gauge(
    "hybridops_rpo_objective_seconds", "The RPO objective the last run was measured against.",
    ["runbook"], registry=REGISTRY,
)  # fmt: skip
LAST_RUN_END = Gauge(
    "hybridops_last_run_end_timestamp_seconds", "When the last run of a runbook ended, by status.",
    ["runbook", "status"], registry=REGISTRY,
)  # fmt: skip
STEP_SECONDS = Histogram(
    "hybridops_step_duration_seconds", "How long each step (phase) of a run took.",
    ["runbook", "step"], buckets=STEP_BUCKETS, registry=REGISTRY,
)  # fmt: skip
LAST_STEP_SECONDS = Gauge(
    "hybridops_last_step_duration_seconds", "The last run's step durations.",
    ["runbook", "step"], registry=REGISTRY,
)  # fmt: skip
SITE_FENCED = Gauge(
    "hybridops_site_fenced",
    "1 while a site's server is fenced (by this process's fence or isolate step, or as it last"
    " read the server), 0 once unfenced or retired.",
    ["site"], registry=REGISTRY,
)  # fmt: skip
BURST_NODES = Gauge(
    "hybridops_burst_pool_nodes", "Nodes in a cloud's burst pool, as last set by a burst.",
    ["cloud"], registry=REGISTRY,
)  # fmt: skip
BURST_TRAFFIC_SHARE = Gauge(
    "hybridops_burst_traffic_share", "Each site's share (0..1) of the weighted record, as last set.",
    ["site"], registry=REGISTRY,
)  # fmt: skip
BURST_COST = Gauge(
    "hybridops_burst_cost_estimate", "The last burst's estimated cost (the inventory's currency).",
    registry=REGISTRY,
)  # fmt: skip
BURST_COST_RUNNING = Gauge(
    "hybridops_burst_cost_so_far", "The running bursts' estimated cost so far (0: none runs).",
    registry=REGISTRY,
)  # fmt: skip
BURST_BUDGET = Gauge("hybridops_burst_budget_cap", "The bursts' budget cap.", registry=REGISTRY)

WAITING_FOR_APPROVAL = Gauge(
    "hybridops_runs_waiting_for_approval", "Runs waiting at an approval gate now, by runbook.",
    ["runbook"], registry=REGISTRY,
)  # fmt: skip
WAITING_SINCE = Gauge(
    "hybridops_approval_waiting_since_timestamp_seconds",
    "When the run that has waited longest for an approval began waiting, by runbook (absent: none waits).",
    ["runbook"], registry=REGISTRY,
)  # fmt: skip
DRILL_LAST_PASSED = Gauge(
    "hybridops_drill_last_passed_timestamp_seconds",
    "When the last drill that passed ended (0: none passed).", registry=REGISTRY,
)  # fmt: skip
DRILL_MAX_AGE = Gauge(
    "hybridops_drill_max_age_seconds", "How old the last passed drill may be (drill.max_age_h).",
    registry=REGISTRY,
)  # fmt: skip
QUEUE_BACKLOG = Gauge(
    "hybridops_task_queue_backlog", "Tasks waiting for a worker on a task queue (the server's estimate).",
    ["task_queue", "task_type"], registry=REGISTRY,
)  # fmt: skip
QUEUE_BACKLOG_AGE = Gauge(
    "hybridops_task_queue_backlog_age_seconds", "How long the oldest task of a queue's backlog has waited.",
    ["task_queue", "task_type"], registry=REGISTRY,
)  # fmt: skip
OBSERVED = Gauge(
    "hybridops_observer_last_success_timestamp_seconds",
    "When the control worker last read the runs' state from Temporal.", registry=REGISTRY,
)  # fmt: skip

ALERTS_RECEIVED = Counter(
    "hybridops_alerts_received", "Alerts in well-formed notifications, by the route they matched ('': none).",
    ["route"], registry=REGISTRY,
)  # fmt: skip
ALERTS_DEDUPLICATED = Counter(
    "hybridops_alerts_deduplicated", "Notifications of an incident that already has its run, by route.",
    ["route"], registry=REGISTRY,
)  # fmt: skip
ALERTS_STARTED = Counter(
    "hybridops_alerts_runs_started", "Runs the receiver started, by route.", ["route"], registry=REGISTRY
)
ALERTS_REFUSED = Counter(
    "hybridops_alerts_refused", "Requests the receiver refused, by HTTP status.",
    ["status"], registry=REGISTRY,
)  # fmt: skip


class _Seen:
    """Workflow ids whose end was recorded, the newest few hundred: an evidence step retried
    (or run again by a reset) counts its run once."""

    def __init__(self, size: int = 512) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, key: str) -> bool:
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


_recorded = _Seen()


def record_run(evidence: Evidence) -> None:
    """A run's end into the metrics: its status, RTO, RPO, each step's duration, a burst's
    cost. Once per run (workflow id and run id), however often its evidence step runs."""
    if not _recorded.first(f"{evidence.workflow_id}/{evidence.run_id}"):
        return
    runbook, status = evidence.runbook.value, evidence.status.value
    RUNS_ENDED.labels(runbook, status).inc()
    if evidence.ended_at is not None:
        LAST_RUN_END.labels(runbook, status).set(evidence.ended_at.timestamp())
    if evidence.rto is not None and evidence.rto.seconds is not None:
        RTO_SECONDS.labels(runbook).observe(evidence.rto.seconds)
        LAST_RTO.labels(runbook).set(evidence.rto.seconds)
        if evidence.rto.objective_s is not None:
            RTO_OBJECTIVE.labels(runbook).set(evidence.rto.objective_s)
    if evidence.rpo is not None and evidence.rpo.seconds is not None:
        RPO_SECONDS.labels(runbook).observe(evidence.rpo.seconds)
        LAST_RPO.labels(runbook).set(evidence.rpo.seconds)
        if evidence.rpo.objective_s is not None:
            RPO_OBJECTIVE.labels(runbook).set(evidence.rpo.objective_s)
    for step in evidence.steps:
        if step.seconds is not None:
            STEP_SECONDS.labels(runbook, step.name).observe(step.seconds)
            LAST_STEP_SECONDS.labels(runbook, step.name).set(step.seconds)
    if isinstance(evidence.details, BurstDetails):
        BURST_COST.set(evidence.details.cost_estimate)


# ---------------------------------------------------------------------- the endpoint


def free_loopback_port() -> int:
    """A port nothing listens on now, on 127.0.0.1 (for the SDK's exporter, which needs one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_sdk_metrics(host: str = "127.0.0.1") -> str:
    """Make the SDK's default runtime export its metrics in the Prometheus format on a loopback
    port of its own; returns that endpoint's URL. Call before the first client connects."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    bind = f"{host}:{free_loopback_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind, counters_total_suffix=True, durations_as_seconds=True)
        )
    )
    Runtime.set_default(runtime, error_if_already_set=False)
    return f"http://{bind}/metrics"


LIVENESS_REGISTRY = CollectorRegistry(auto_describe=True)
"""The site agents' liveness views (drivers/postgres/liveness.py), served at
:data:`LIVENESS_PATH` alone (not in ``/metrics``: one scrape job reads them, so each series
exists once for the alert rule's matching)."""
LIVENESS_PATH = "/metrics/liveness"
LIVENESS_METRICS = (
    "hybridops_liveness_primary_silent_seconds",
    "hybridops_liveness_last_write_timestamp_seconds",
    "hybridops_liveness_tolerance_seconds",
)
"""The site agents' liveness series (drivers/postgres/liveness.py): silence, last write,
tolerance."""


@dataclass
class MetricsEndpoint:
    """``GET /metrics`` on ``listen``: :data:`REGISTRY`'s text, then the SDK's (``sdk_url``,
    read on each scrape; a failed read leaves the SDK's part out, never the whole answer)."""

    listen: str
    sdk_url: str | None = None

    def render(self) -> bytes:
        body = generate_latest(REGISTRY)
        if self.sdk_url is not None:
            try:
                with urllib.request.urlopen(self.sdk_url, timeout=2) as resp:
                    body += resp.read()
            except OSError as err:
                log.warning("metrics: the SDK's exporter at %s did not answer: %s", self.sdk_url, err)
        return body

    async def serve(self) -> None:
        """Serve until cancelled."""
        from aiohttp import web

        async def metrics(_: web.Request) -> web.Response:
            body = await asyncio.to_thread(self.render)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def liveness(_: web.Request) -> web.Response:
            # The site agents' liveness views alone: scraped every few hundred ms by the global
            # Prometheus for the failover alert, without the SDK's few hundred series.
            body = generate_latest(LIVENESS_REGISTRY)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get(LIVENESS_PATH, liveness)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = parse_listen(self.listen, "--metrics-listen")
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            # The process's work matters more than its metrics: it goes on without them, and
            # the scrape's `up 0` (and the alert rules on the missing series) say so.
            log.error("metrics: cannot listen on %s: %s; serving no metrics", self.listen, err)
            await runner.cleanup()
            return
        log.info("metrics on http://%s/metrics", self.listen)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def start_metrics(listen: str | None, sdk: bool = True) -> asyncio.Task[None] | None:
    """In a running event loop: the process's metrics endpoint on ``listen`` (None: none), the
    SDK's metrics in it when ``sdk``. Call before the first client connects."""
    if listen is None:
        return None
    parse_listen(listen, "--metrics-listen")  # a bad address fails here, naming the flag
    endpoint = MetricsEndpoint(listen, install_sdk_metrics() if sdk else None)
    task = asyncio.get_running_loop().create_task(endpoint.serve(), name="metrics")
    # The loop holds its tasks weakly: an endpoint whose caller dropped the task would be
    # collected while it serves (seen in bench/failover.py: "Task was destroyed but it is pending").
    _serving.add(task)
    task.add_done_callback(_serving.discard)
    return task


_serving: set[asyncio.Task[None]] = set()
