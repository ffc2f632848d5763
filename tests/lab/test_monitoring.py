"""The lab's monitoring, end to end: exporters, site Prometheus servers federated by the global
one, the alert rules, Alertmanager. Real processes from the Debian packages."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import psutil
import pytest

from drivers.signals.prometheus import PrometheusDriver
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import SignalName
from hybridops.contracts.sites import SiteRef
from hybridops.inventory import SignalsKind
from hybridops.lab import Lab
from hybridops.lab.monitoring import QUERIES
from hybridops.lab.processes import wait_until
from tests.lab.helpers import agents_watching, role, writable_sites
from tests.unit.test_signals import PerQueryDriver, count_requests

CLOUDS = {"azure": "azure", "gcp": "gcp"}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def query(lab: Lab, promql: str) -> list[dict[str, Any]]:
    """An instant query against the global Prometheus: the result's samples."""
    body = _get(f"{lab.monitoring.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def by_site(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"].get("site", ""): float(s["value"][1]) for s in samples}


def firing(lab: Lab, alertname: str) -> list[dict[str, Any]]:
    """The alert's active instances in Alertmanager."""
    flt = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', "active": "true"})
    alerts: list[dict[str, Any]] = _get(f"{lab.monitoring.alertmanager_url}/api/v2/alerts?{flt}")
    return [a for a in alerts if a["status"]["state"] == "active"]


def substitute(template: str, site: str, cloud: str) -> str:
    return template.replace("{site}", site).replace("{cloud}", cloud)


def test_federation_signals_and_the_failover_alert(
    monitored_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = monitored_lab
    inv = lab.inventory()
    (source,) = inv.signals.sources
    assert source.driver is SignalsKind.PROMETHEUS
    assert source.url == lab.monitoring.prometheus_url
    assert inv.alerts.token_ref == "env:HYBRIDOPS_LAB_ALERT_TOKEN"
    assert (lab.root / "monitoring" / "alert-token").stat().st_mode & 0o777 == 0o600
    assert all(
        v == "running" for k, v in lab.status().items() if k.startswith(("prometheus-", "pg-exporter"))
    )

    # Every site's database, through its own Prometheus and federation.
    wait_until(
        "pg_up of all three sites in the global Prometheus",
        lambda: by_site(query(lab, "pg_up")) == {"onprem": 1.0, "azure": 1.0, "gcp": 1.0},
        timeout=20,
    )
    # The cloud metrics, each under the site of its own cloud.
    wait_until(
        "the cloud metrics",
        lambda: (
            {
                (s["metric"]["site"], s["metric"]["cloud"])
                for s in query(lab, "hybridops_cloud_credits_available")
            }
            == {("azure", "azure"), ("gcp", "gcp")}
        ),
        timeout=20,
    )

    # Each signal's query gives one sample for each standby candidate.
    wait_until("hybridops_pg_* of every site", lambda: len(query(lab, "hybridops_pg_in_recovery")) == 3)
    for site, cloud in CLOUDS.items():
        for signal, template in source.queries.items():
            if signal == SignalName.PRIMARY_SILENT_S:
                continue  # the site agents' own view: checked below, once they watch
            samples = query(lab, substitute(template, site, cloud))
            assert len(samples) == 1, (signal, site, samples)
        assert float(query(lab, substitute(QUERIES[SignalName.STANDBY_UP], site, cloud))[0]["value"][1]) == 1
        latency = query(lab, substitute(QUERIES[SignalName.LATENCY_MS], site, cloud))
        assert float(latency[0]["value"][1]) == pytest.approx(
            lab.monitoring.read_signals()[cloud]["latency_ms"]
        )
    # The signals driver reads them all through the inventory's source.
    standbys = [SiteRef(name="azure", cloud=Cloud.AZURE), SiteRef(name="gcp", cloud=Cloud.GCP)]
    sent = count_requests(monkeypatch)
    now = datetime.now(UTC)
    reading = asyncio.run(PrometheusDriver(source).collect(standbys, now))
    assert sent == ["POST"], "one request for the collection"
    assert all("primary_silent_s" in e for e in reading.errors), reading.errors  # no agent yet
    # load is the on-prem site's (bursts); no agent watches yet, so no primary_silent_s.
    per_candidate = set(SignalName) - {SignalName.LOAD, SignalName.PRIMARY_SILENT_S}
    assert set(reading.values["azure"]) == per_candidate == set(reading.values["gcp"])
    assert reading.values["gcp"][SignalName.STANDBY_UP].value == 1
    assert reading.values["gcp"][SignalName.CREDITS].value == 3000
    # The same answer as one query each, both evaluated at that time a few seconds on (by then
    # every federated sample from before it is stored).
    time.sleep(3)
    sent.clear()
    combined = asyncio.run(PrometheusDriver(source).collect(standbys, now))
    assert sent == ["POST"] and set(combined.values["azure"]) == per_candidate
    assert asyncio.run(PerQueryDriver(source).collect(standbys, now)) == combined
    assert len(sent) == 1 + 2 * len(standbys) * len(source.queries)
    # The primary is not a standby.
    standby_up = query(lab, substitute(QUERIES[SignalName.STANDBY_UP], "onprem", "onprem"))
    assert [float(s["value"][1]) for s in standby_up] == [0.0]

    # `hybridops lab signals set azure credits=0` shows at the next scrapes.
    lab.monitoring.set_signals("azure", {"credits": 0})
    wait_until(
        "azure's credits at 0",
        lambda: by_site(query(lab, 'hybridops_cloud_credits_available{cloud="azure"}')) == {"azure": 0.0},
        timeout=10,
    )
    assert not firing(lab, "HybridOpsNoWritablePrimary")
    # The site agents, the observers whose views start the failover.
    asyncio.run(agents_watching(lab))
    # Each standby's own agent sees onprem take its writes: one view each, silent briefly.
    for site, cloud in CLOUDS.items():
        (view,) = query(lab, substitute(QUERIES[SignalName.PRIMARY_SILENT_S], site, cloud))
        assert float(view["value"][1]) < 2.0, (site, view)

    # The disaster: the primary dies, the standbys keep answering.
    lab.kill_site("onprem")
    killed = time.monotonic()
    alerts = wait_until(
        "HybridOpsNoWritablePrimary firing in Alertmanager",
        lambda: firing(lab, "HybridOpsNoWritablePrimary"),
        timeout=30,
        interval=0.2,
    )
    took = time.monotonic() - killed
    print(f"HybridOpsNoWritablePrimary firing {took:.1f} s after the kill")
    # What the alert says, read from the servers: no server takes writes, onprem is down.
    assert writable_sites(lab) == [] and role(lab, "onprem") == "down"
    (alert,) = alerts
    assert alert["labels"]["severity"] == "critical"
    assert "runbook" not in alert["labels"]  # for people: the agents' alert starts the runbook
    (trigger,) = wait_until(
        "HybridOpsPrimaryNotTakingWrites firing",
        lambda: firing(lab, "HybridOpsPrimaryNotTakingWrites"),
        timeout=30,
        interval=0.2,
    )
    assert trigger["labels"]["runbook"] == "failover" and trigger["labels"]["site"] == "onprem"
    assert by_site(query(lab, "pg_up")) == {"onprem": 0.0, "azure": 1.0, "gcp": 1.0}
    # With the database down its exporter has no hybridops_pg_* series: the signal is 0.
    standby_up = query(lab, substitute(QUERIES[SignalName.STANDBY_UP], "onprem", "onprem"))
    assert [float(s["value"][1]) for s in standby_up] == [0.0]
    wait_until(
        "PostgresDown for onprem",
        lambda: [a["labels"]["site"] for a in firing(lab, "PostgresDown")] == ["onprem"],
        timeout=15,
    )

    # Alertmanager delivered to the receiver with the lab's token (no 401 in its log). The
    # monitored lab always runs the receiver: a receiver that is not running is a failure.
    assert lab.pid("alert-receiver"), "the alert receiver is not running"
    wait_until(
        "a webhook notification",
        lambda: _metric(lab, 'alertmanager_notifications_total{integration="webhook"}') > 0,
        timeout=15,
    )
    assert _metric(lab, 'alertmanager_notifications_failed_total{integration="webhook"}') == 0
    assert "status=401" not in lab.log("alert-receiver").read_text()

    # `lab down` leaves nothing behind.
    pids = [pid for name in lab.monitoring.process_names() if (pid := lab.pid(name))]
    assert len(pids) >= 9
    lab.down()
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == []
    assert all(v in ("stopped",) for k, v in lab.status().items() if k in lab.monitoring.process_names())


def _metric(lab: Lab, selector: str) -> float:
    """Sum of a metric on Alertmanager's own /metrics."""
    name, _, labels = selector.partition("{")
    wanted = [kv for kv in labels.rstrip("}").split(",") if kv]
    with urllib.request.urlopen(f"{lab.monitoring.alertmanager_url}/metrics", timeout=2) as resp:
        lines = resp.read().decode().splitlines()
    total = 0.0
    for line in lines:
        if line.startswith(name + "{") and all(kv in line for kv in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total
