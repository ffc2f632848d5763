"""HybridOps' Grafana dashboards as code: ``python infra/grafana/build.py`` (``make dashboards``)
writes ``infra/grafana/dashboards/*.json`` with grafana-foundation-sdk's builders.

Four dashboards on the Prometheus that scrapes every HybridOps process and federates the
sites (the lab's global one; the compose stack's): DR overview, replication, bursting,
workers. Every panel's queries are PromQL on series this project exports
(hybridops/metrics.py, infra/prometheus/postgres-exporter-queries.yaml, the lab's cloud
exporter, the Temporal SDK); tests/lab/test_dashboards.py runs each against the lab's real
Prometheus after a failover, a drill and a burst, and a panel whose query returns nothing
fails it. tests/unit/test_dashboards.py checks the JSON files are what this script writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel's data source: the dashboard's ``datasource`` variable (any Prometheus)."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    """``stat``, ``timeseries`` or ``bargauge``."""
    queries: tuple[Query, ...]
    unit: str = ""
    description: str = ""
    width: int = 8
    height: int = 6


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


BOARDS: tuple[Board, ...] = (
    Board(
        "hybridops-dr",
        "HybridOps: DR overview",
        "The last failover's RTO and RPO against the objectives, its step times, runs by status, "
        "drill freshness and approvals waiting.",
        [
            Panel(
                "Last failover: RTO against the objective",
                "stat",
                (
                    Query('hybridops_last_rto_seconds{runbook="failover"}', "RTO"),
                    Query('hybridops_rto_objective_seconds{runbook="failover"}', "objective"),
                ),
                unit="s",
            ),
            Panel(
                "Last failover: RPO against the objective",
                "stat",
                (
                    Query('hybridops_last_rpo_seconds{runbook="failover"}', "RPO"),
                    Query('hybridops_rpo_objective_seconds{runbook="failover"}', "objective"),
                ),
                unit="s",
            ),
            Panel(
                "Since the last passed drill",
                "stat",
                (
                    Query("time() - max(hybridops_drill_last_passed_timestamp_seconds)", "age"),
                    Query("max(hybridops_drill_max_age_seconds)", "maximum age"),
                ),
                unit="s",
                description="0 timestamps (no drill ever passed) show as the age of the epoch: overdue.",
            ),
            Panel(
                "Last failover: time per step",
                "bargauge",
                (
                    Query(
                        'max by (step) (hybridops_last_step_duration_seconds{runbook="failover"})', "{{step}}"
                    ),
                ),
                unit="s",
                width=12,
                height=8,
            ),
            Panel(
                "Runs by runbook and status",
                "bargauge",
                (Query("sum by (runbook, status) (hybridops_runs_ended_total)", "{{runbook}} {{status}}"),),
                width=12,
                height=8,
            ),
            Panel(
                "Runs started",
                "stat",
                (Query("sum by (runbook) (hybridops_runs_started_total)", "{{runbook}}"),),
            ),
            Panel(
                "Runs waiting for approval",
                "stat",
                (Query("sum(hybridops_runs_waiting_for_approval)", "waiting"),),
            ),
            Panel(
                "RTO and RPO per run",
                "timeseries",
                (
                    Query("max by (runbook) (hybridops_last_rto_seconds)", "RTO {{runbook}}"),
                    Query("max by (runbook) (hybridops_last_rpo_seconds)", "RPO {{runbook}}"),
                ),
                unit="s",
            ),
        ],
    ),
    Board(
        "hybridops-replication",
        "HybridOps: replication",
        "Lag per standby, the WAL archive's delay, fenced sites and each site's timeline.",
        [
            Panel("Databases up", "stat", (Query("max by (site) (pg_up)", "{{site}}"),)),
            Panel(
                "Timeline per site",
                "stat",
                (Query("max by (site) (hybridops_pg_timeline)", "{{site}}"),),
                description="A promotion starts a new timeline: two sites on different ones have diverged.",
            ),
            Panel(
                "Fenced sites",
                "stat",
                (Query("max by (site) (hybridops_site_fenced)", "{{site}}"),),
                description="1 while a run's fence holds the site's server.",
            ),
            Panel(
                "Replay lag per standby",
                "timeseries",
                (Query("max by (site) (hybridops_pg_replay_lag_seconds)", "{{site}}"),),
                unit="s",
                width=12,
            ),
            Panel(
                "WAL received, not replayed",
                "timeseries",
                (Query("max by (site) (hybridops_pg_wal_unreplayed_bytes)", "{{site}}"),),
                unit="bytes",
                width=12,
            ),
            Panel(
                "WAL archive delay",
                "timeseries",
                (Query("max by (site) (hybridops_pg_archive_age_seconds)", "{{site}}"),),
                unit="s",
                width=12,
            ),
            Panel(
                "WAL archive failures",
                "stat",
                (Query("sum by (site) (hybridops_pg_archive_failed_count)", "{{site}}"),),
                width=12,
            ),
        ],
    ),
    Board(
        "hybridops-burst",
        "HybridOps: bursting",
        "Extra nodes, the traffic share of each site, and the burst's cost against its cap.",
        [
            Panel(
                "Burst pool nodes",
                "stat",
                (Query("max by (cloud) (hybridops_burst_pool_nodes)", "{{cloud}}"),),
            ),
            Panel(
                "Traffic share",
                "bargauge",
                (Query("max by (site) (hybridops_burst_traffic_share)", "{{site}}"),),
                unit="percentunit",
            ),
            Panel(
                "Cost against the cap",
                "stat",
                (
                    Query("max(hybridops_burst_cost_so_far)", "running bursts"),
                    Query("max(hybridops_burst_cost_estimate)", "last burst"),
                    Query("max(hybridops_burst_budget_cap)", "cap"),
                ),
            ),
            Panel(
                "Cloud cost per hour",
                "timeseries",
                (Query("max by (cloud) (hybridops_cloud_hourly_cost)", "{{cloud}}"),),
                width=12,
            ),
            Panel(
                "Free nodes per cloud",
                "timeseries",
                (Query("max by (cloud) (hybridops_cloud_capacity_free_nodes)", "{{cloud}}"),),
                width=12,
            ),
        ],
    ),
    Board(
        "hybridops-workers",
        "HybridOps: workers",
        "Task queue backlog, pollers and slots, and schedule-to-start latency from the SDK.",
        [
            Panel(
                "Task queue backlog",
                "timeseries",
                (
                    Query(
                        "max by (task_queue, task_type) (hybridops_task_queue_backlog)",
                        "{{task_queue}} {{task_type}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Pollers per queue",
                "timeseries",
                (
                    Query(
                        "sum by (task_queue)"
                        ' (temporal_num_pollers{poller_type=~"workflow_task|activity_task"})',
                        "{{task_queue}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Workflow task schedule-to-start latency (p95)",
                "timeseries",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (le, task_queue)"
                        " (rate(temporal_workflow_task_schedule_to_start_latency_bucket[5m])))",
                        "{{task_queue}}",
                    ),
                ),
                unit="s",
                width=12,
            ),
            Panel(
                "Task slots used",
                "timeseries",
                (
                    Query(
                        "sum by (task_queue, worker_type) (temporal_worker_task_slots_used)",
                        "{{task_queue}} {{worker_type}}",
                    ),
                ),
                width=12,
            ),
        ],
    ),
)


def _panel(p: Panel, panel_id: int, x: int, y: int) -> object:
    builder: bargauge.Panel | stat.Panel | timeseries.Panel
    builder = {"stat": stat.Panel, "timeseries": timeseries.Panel, "bargauge": bargauge.Panel}[p.kind]()
    builder = builder.id(panel_id).title(p.title).datasource(DATASOURCE)
    builder = builder.grid_pos(GridPos(h=p.height, w=p.width, x=x, y=y))
    if p.unit:
        builder = builder.unit(p.unit)
    if p.description:
        builder = builder.description(p.description)
    for ref, q in zip("ABCDEFGH", p.queries, strict=False):
        builder = builder.with_target(prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref))
    return builder


def build(board: Board) -> str:
    """The dashboard's JSON model."""
    dash = (
        dashboard.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["hybridops"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    x = y = row_height = 0
    for i, p in enumerate(board.panels, start=1):
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        dash = dash.with_panel(_panel(p, i, x, y))  # type: ignore[arg-type]
        x, row_height = x + p.width, max(row_height, p.height)
    model = _drop_nulls(json.loads(JSONEncoder().encode(dash.build())))
    return json.dumps(model, sort_keys=True, indent=2) + "\n"


def _drop_nulls(value: Any) -> Any:
    """The model without null fields (``"options": null`` where a panel sets none): Grafana
    fills in its defaults for a missing field, not for a null one."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def files() -> dict[Path, str]:
    """Each dashboard's file and its content."""
    return {OUT / f"{b.uid}.json": build(b) for b in BOARDS}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for path, text in files().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(OUT.parents[2])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
