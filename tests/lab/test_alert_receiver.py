"""The Alertmanager webhook receiver against the real dev server: one run per incident.

The receiver runs in-process (aiohttp's test server on a free port); its runs go to a task
queue of their own that no worker serves, so they stay as started and are terminated at the
end. No PostgreSQL lab is needed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from hybridops import metrics
from hybridops.alerts.receiver import AlertReceiver, tls_context
from hybridops.alerts.routes import RUNBOOKS, RoutesFile, RunbookSpec, incident_workflow_id, parse_routes
from hybridops.constants import ALERT_SIGNAL, TaskQueue, WorkflowType
from hybridops.contracts.base import AlertNotice
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import ConfigError
from hybridops.inventory import AlertsSettings
from tests.conftest import free_port
from tests.lab.helpers import eventually

TOKEN = "s3cret-token-for-tests-5f0c2a9e7d41b836"
ALERTNAME = "HybridOpsNoWritablePrimary"
T0 = datetime(2025, 3, 1, 4, 5, 6, 250000, tzinfo=UTC)

ROUTES: RoutesFile = parse_routes(
    {
        "routes": [
            {
                "name": "no-writable-primary",
                "match": {"alertname": ALERTNAME},
                "runbook": "failover",
                "input": {"target": "auto"},
                "auto": False,
            },
            {
                "name": "auto-failover",
                "match": {"alertname": "AutoFailover"},
                "runbook": "failover",
                "input": {"target": "gcp"},
                "auto": True,
            },
        ]
    }
)


def payload(
    group: str,
    *,
    status: str = "firing",
    starts: datetime = T0,
    alertname: str = ALERTNAME,
    drill: bool = False,
) -> dict[str, Any]:
    """A version-4 webhook notification for one alert group, as Alertmanager posts it."""
    labels = {"alertname": alertname, "severity": "critical", "runbook": "failover"}
    if drill:
        labels["drill"] = "true"
    ends = "0001-01-01T00:00:00Z" if status == "firing" else (starts + timedelta(minutes=5)).isoformat()
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "hybridops",
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "No writable PostgreSQL primary at any site"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "No writable PostgreSQL primary at any site"},
                "startsAt": starts.isoformat(),
                "endsAt": ends,
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


def new_group(alertname: str = ALERTNAME) -> str:
    return f'{{}}/{{severity="critical"}}:{{alertname="{alertname}", test="{uuid.uuid4().hex[:8]}"}}'


@dataclass
class Harness:
    client: Client
    http: TestClient[Any, Any]
    receiver: AlertReceiver
    suffix: str
    started: list[str] = field(default_factory=list)
    """Ids this receiver answered 202 for (terminated at the end)."""

    @property
    def queue(self) -> str:
        return TaskQueue.CONTROL.value + self.suffix

    async def post(
        self, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if raw is not None:
            resp = await self.http.post("/alerts", data=raw, headers=headers)
        else:
            resp = await self.http.post("/alerts", json=body, headers=headers)
        body_out: dict[str, Any] = await resp.json()
        if resp.status == 202:
            self.started.append(body_out["workflow_id"])
        return resp.status, body_out

    async def count(self) -> int:
        """Runs on this test's task queue, as the visibility API counts them."""
        return (await self.client.count_workflows(f"TaskQueue = '{self.queue}'")).count

    async def count_is(self, n: int) -> None:
        await eventually(f"{n} runs on {self.queue}", lambda: self._count_equals(n), timeout=10)

    async def _count_equals(self, n: int) -> bool:
        return await self.count() == n

    async def exists(self, wf_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(wf_id).describe()
            return True
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise

    async def recorded_input(self, wf_id: str) -> FailoverInput:
        history = await self.client.get_workflow_handle(wf_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        (inp,) = await self.client.data_converter.decode(started.input.payloads, [FailoverInput])
        assert isinstance(inp, FailoverInput)
        return inp

    async def signals(self, wf_id: str) -> list[AlertNotice]:
        history = await self.client.get_workflow_handle(wf_id).fetch_history()
        out = []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                attrs = event.workflow_execution_signaled_event_attributes
                assert attrs.signal_name == ALERT_SIGNAL
                (notice,) = await self.client.data_converter.decode(attrs.input.payloads, [AlertNotice])
                out.append(notice)
        return out


@pytest_asyncio.fixture
async def rx(client: Client) -> AsyncIterator[Harness]:
    suffix = f"-alerts-{uuid.uuid4().hex[:8]}"
    receiver = AlertReceiver(client, ROUTES, TOKEN, queue_suffix=suffix)
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    harness = Harness(client, http, receiver, suffix)
    try:
        yield harness
    finally:
        await http.close()
        ids = set(harness.started)
        async for wf in client.list_workflows(f"TaskQueue = '{harness.queue}'"):
            ids.add(wf.id)
        for wf_id in ids:
            try:
                await client.get_workflow_handle(wf_id).terminate("test over")
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # already ended
                    raise


async def another_receiver(h: Harness, *, recover: bool = False) -> TestClient[Any, Any]:
    """A second receiver process on the same queue: a restart, or the other of an HA pair."""
    receiver = AlertReceiver(h.client, ROUTES, TOKEN, queue_suffix=h.suffix)
    if recover:
        await receiver.recover()
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    return http


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def status_of(http: TestClient[Any, Any], body: dict[str, Any]) -> int:
    resp = await http.post("/alerts", json=body, headers=AUTH)
    await resp.read()
    return resp.status


# --------------------------------------------------------------------------- one run per incident


def counted(name: str, **labels: str) -> float:
    """A receiver counter's value in this process's metrics (hybridops/metrics.py)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_firing_starts_exactly_one_run_per_incident(rx: Harness) -> None:
    group = new_group()
    wf_id = incident_workflow_id("no-writable-primary", group, T0)
    route = {"route": "no-writable-primary"}
    before = {n: counted(n, **route) for n in ("received", "deduplicated", "runs_started")}

    status, body = await rx.post(payload(group))
    assert status == 202, body
    assert body["result"] == "started" and body["workflow_id"] == wf_id
    assert body["route"] == "no-writable-primary" and body["runbook"] == "failover"
    assert body["require_approval"] is True and body["run_id"]
    desc = await rx.client.get_workflow_handle(wf_id).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert desc.workflow_type == "FailoverWorkflow" and desc.task_queue == rx.queue
    await rx.count_is(1)

    # 20 resends: answered from the cache, nothing new.
    for _ in range(20):
        status, body = await rx.post(payload(group))
        assert (status, body["result"], body["duplicate_of"]) == (200, "duplicate", wf_id)
        assert body["source"] == "cache"
    # The metrics: 21 notifications of one alert received, one run started, 20 duplicates.
    assert counted("hybridops_alerts_received_total", **route) - before["received"] == 21
    assert counted("hybridops_alerts_runs_started_total", **route) - before["runs_started"] == 1
    assert counted("hybridops_alerts_deduplicated_total", **route) - before["deduplicated"] == 20

    # A storm of concurrent duplicates of a new incident: one start between them all.
    storm_group = new_group()
    storm_id = incident_workflow_id("no-writable-primary", storm_group, T0)
    answers = await asyncio.gather(*(rx.post(payload(storm_group)) for _ in range(40)))
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * 39 + [202], answers
    assert {b["workflow_id"] for _, b in answers} == {storm_id}

    # A second receiver (a restart, an HA pair) knows nothing: Temporal's id policy answers.
    other = await another_receiver(rx)
    try:
        resp = await other.post("/alerts", json=payload(group), headers=AUTH)
        body = await resp.json()
        assert resp.status == 200 and body["result"] == "duplicate" and body["source"] == "temporal"
        assert body["run_id"] == desc.run_id
        # Both at once, for a fresh incident: still one run.
        pair_group = new_group()
        statuses = await asyncio.gather(
            *(status_of(http, payload(pair_group)) for _ in range(10) for http in (other, rx.http))
        )
        assert sorted(statuses) == [200] * 19 + [202], statuses
    finally:
        await other.close()

    # A second, distinct alert group starts a second run.
    status, body = await rx.post(payload(new_group()))
    assert status == 202 and body["result"] == "started"
    await rx.count_is(4)  # group, storm_group, pair_group, and this one


async def test_a_run_that_ended_is_not_started_again(rx: Harness) -> None:
    group = new_group()
    wf_id = incident_workflow_id("no-writable-primary", group, T0)
    assert (await rx.post(payload(group)))[0] == 202
    await rx.client.get_workflow_handle(wf_id).terminate("operator: handled by hand")
    # A receiver that never saw it (restart): REJECT_DUPLICATE refuses a new run of that id.
    other = await another_receiver(rx)
    try:
        resp = await other.post("/alerts", json=payload(group), headers=AUTH)
        body = await resp.json()
        assert resp.status == 200 and body["result"] == "duplicate", body
        assert "ended" in body["detail"]
    finally:
        await other.close()
    await rx.count_is(1)


async def test_a_new_episode_waits_for_the_running_one(rx: Harness) -> None:
    """Prometheus restarted and the alert came back with a later startsAt: same incident."""
    group = new_group()
    first = incident_workflow_id("no-writable-primary", group, T0)
    assert (await rx.post(payload(group)))[0] == 202
    later = T0 + timedelta(minutes=2)
    status, body = await rx.post(payload(group, starts=later))
    assert (status, body["result"], body["duplicate_of"]) == (200, "duplicate", first), body
    # A restarted receiver learns the running runs from visibility at start-up.
    await rx.count_is(1)
    other = await another_receiver(rx, recover=True)
    try:
        resp = await other.post(
            "/alerts", json=payload(group, starts=later + timedelta(minutes=1)), headers=AUTH
        )
        body = await resp.json()
        assert resp.status == 200 and body["duplicate_of"] == first, body
        resp = await other.post("/alerts", json=payload(group), headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["source"], body["duplicate_of"]) == (200, "cache", first), body
    finally:
        await other.close()
    # Once the first run is over, the later episode is a new incident: it starts its own run.
    await rx.client.get_workflow_handle(first).terminate("over")
    second = incident_workflow_id("no-writable-primary", group, later)
    status, body = await rx.post(payload(group, starts=later))
    assert (status, body["workflow_id"]) == (202, second), body
    status, body = await rx.post(payload(group, starts=T0 + timedelta(hours=1)))
    assert (status, body["duplicate_of"]) == (200, second), body
    await rx.count_is(2)


async def test_auto_route_starts_without_approval(rx: Harness) -> None:
    group = new_group("AutoFailover")
    status, body = await rx.post(payload(group, alertname="AutoFailover"))
    assert status == 202 and body["route"] == "auto-failover" and body["require_approval"] is False
    inp = await rx.recorded_input(body["workflow_id"])
    assert inp.require_approval is False and inp.target == "gcp"


async def test_recorded_input_waits_for_approval(rx: Harness) -> None:
    group = new_group()
    status, body = await rx.post(payload(group))
    assert status == 202
    inp = await rx.recorded_input(body["workflow_id"])
    assert inp.require_approval is True
    assert inp.incident_started_at == T0
    assert inp.requested_by == "alert:no-writable-primary"
    assert inp.reason == f"alert {ALERTNAME}: No writable PostgreSQL primary at any site"
    assert inp.target == "auto"


# --------------------------------------------------------------------------- resolve, drill


async def test_resolved_signals_the_run(rx: Harness) -> None:
    group = new_group()
    wf_id = incident_workflow_id("no-writable-primary", group, T0)
    assert (await rx.post(payload(group)))[0] == 202
    status, body = await rx.post(payload(group, status="resolved"))
    assert (status, body["result"], body["workflow_id"]) == (200, "signalled", wf_id), body
    (notice,) = await rx.signals(wf_id)
    assert notice.status == "resolved" and notice.group_key == group
    assert notice.alertnames == [ALERTNAME] and notice.ended_at == T0 + timedelta(minutes=5)
    # A resend of the resolve is not delivered twice.
    status, body = await rx.post(payload(group, status="resolved"))
    assert (status, body["result"]) == (200, "duplicate")
    assert len(await rx.signals(wf_id)) == 1

    # The run has ended: 200 saying so (Alertmanager must not retry forever).
    await rx.client.get_workflow_handle(wf_id).terminate("over")
    other = await another_receiver(rx)
    try:
        resp = await other.post("/alerts", json=payload(group, status="resolved"), headers=AUTH)
        body = await resp.json()
        assert resp.status == 200 and body["result"] == "not_running", body
    finally:
        await other.close()
    # A resolve for an incident that never started a run: the same, and nothing is started.
    status, body = await rx.post(payload(new_group(), status="resolved"))
    assert (status, body["result"]) == (200, "not_running")
    await rx.count_is(1)


async def test_drill_alerts_start_nothing(rx: Harness) -> None:
    group = new_group()
    for status_name in ("firing", "resolved"):
        status, body = await rx.post(payload(group, drill=True, status=status_name))
        assert (status, body["result"]) == (200, "drill_not_started"), body
        assert body["detail"].startswith("drill: nothing started")
    assert not await rx.exists(incident_workflow_id("no-writable-primary", group, T0))
    assert not await rx.exists(incident_workflow_id("no-writable-primary", group, T0, drill=True))
    # Sentinel: a real start is seen by visibility, and it is the only run on the queue.
    assert (await rx.post(payload(new_group())))[0] == 202
    await rx.count_is(1)


async def test_a_drill_runbook_gets_its_own_id_never_the_production_one(
    rx: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No drill runbook is registered yet: a stand-in (the failover workflow type on the test's
    queue, which no worker serves) shows the path a real one will take."""
    monkeypatch.setitem(
        RUNBOOKS, "drill-standin", RunbookSpec(WorkflowType.FAILOVER, FailoverInput, TaskQueue.CONTROL)
    )
    routes = parse_routes(
        {
            "routes": [
                {
                    "name": "no-writable-primary",
                    "match": {"alertname": ALERTNAME},
                    "runbook": "failover",
                    "drill_runbook": "drill-standin",
                    "drill_input": {"target": "azure"},
                }
            ]
        }
    )
    receiver = AlertReceiver(rx.client, routes, TOKEN, queue_suffix=rx.suffix)
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    group = new_group()
    try:
        resp = await http.post("/alerts", json=payload(group, drill=True), headers=AUTH)
        body = await resp.json()
        assert resp.status == 202 and body["result"] == "drill_started", body
        assert body["runbook"] == "drill-standin"
        assert body["workflow_id"] == incident_workflow_id("no-writable-primary", group, T0, drill=True)
        assert (await rx.recorded_input(body["workflow_id"])).target == "azure"
        assert not await rx.exists(incident_workflow_id("no-writable-primary", group, T0))
    finally:
        await http.close()
    await rx.count_is(1)


# --------------------------------------------------------------------------- bad requests


async def test_bad_requests_start_nothing(rx: Harness) -> None:
    group = new_group()
    would_be = incident_workflow_id("no-writable-primary", group, T0)
    good = payload(group)
    refused = counted("hybridops_alerts_refused_total", status="401")

    status, body = await rx.post(good, token=None)
    assert status == 401 and body == {"error": "missing bearer token"}
    status, body = await rx.post(good, token="wrong")
    assert status == 401 and body == {"error": "wrong bearer token"}
    resp = await rx.http.post("/alerts", json=good, headers={"Authorization": f"Basic {TOKEN}"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert counted("hybridops_alerts_refused_total", status="401") - refused == 3

    status, body = await rx.post(None, raw=b'{"version": "4", "alerts": [')
    assert status == 400 and body["error"].startswith("body is not JSON")

    missing = payload(group)
    del missing["alerts"][0]["startsAt"]
    status, body = await rx.post(missing)
    assert status == 422 and [f["field"] for f in body["fields"]] == ["alerts.0.startsAt"], body
    status, body = await rx.post({**good, "version": "3"})
    assert status == 422 and body["fields"][0]["field"] == "version"
    status, body = await rx.post({**good, "alerts": []})
    assert status == 422 and body["fields"][0]["field"] == "alerts"
    status, body = await rx.post({**good, "status": "exploded"})
    assert status == 422 and body["fields"][0]["field"] == "status"
    status, body = await rx.post([good])
    assert status == 422

    unknown = payload(group, alertname="DiskAlmostFull")
    status, body = await rx.post(unknown)
    assert status == 404 and body["error"] == "no route matches these alerts"
    assert body["labels"] == [unknown["alerts"][0]["labels"]]

    assert not await rx.exists(would_be)
    # The receiver remembers nothing from them: the good notification still starts the run.
    status, body = await rx.post(good)
    assert (status, body["workflow_id"]) == (202, would_be)
    await rx.count_is(1)


async def test_healthz(rx: Harness, caplog: pytest.LogCaptureFixture) -> None:
    resp = await rx.http.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    # A receiver whose Temporal is gone.
    dead = await Client.connect("127.0.0.1:1", lazy=True, data_converter=pydantic_data_converter)
    receiver = AlertReceiver(dead, ROUTES, TOKEN)
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    try:
        with caplog.at_level("WARNING", logger="hybridops.alerts"):
            resp = await http.get("/healthz")
        # Unauthenticated: ok or not, never Temporal's address or error text; that goes to the log.
        assert resp.status == 503 and await resp.json() == {"status": "unavailable"}
        assert "127.0.0.1:1" not in await resp.text()
        assert any("healthz unavailable" in r.getMessage() for r in caplog.records)
        # An alert it cannot start: 503 so Alertmanager retries; not remembered as started.
        resp = await http.post("/alerts", json=payload(new_group()), headers=AUTH)
        assert resp.status == 503, await resp.text()
    finally:
        await http.close()


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer x" + TOKEN])
async def test_malformed_authorization_is_refused(rx: Harness, header: str) -> None:
    resp = await rx.http.post("/alerts", json=payload(new_group()), headers={"Authorization": header})
    assert resp.status == 401


# --------------------------------------------------------------------------- hostile bodies, budget


async def test_bodies_that_are_not_payloads_are_4xx_naming_why(rx: Harness) -> None:
    """Whatever the body, a 4xx with a clear message: never a 500, never a run."""
    cases: list[tuple[bytes, int, str]] = [
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"version": "4", "groupKey": "g\xff"}', 400, "not UTF-8"),
        (b'{"version": "4", "truncatedAlerts": NaN}', 400, "NaN is not JSON"),
        (b'{"version": "4", "groupKey": "\\ud800"}', 400, "unpaired surrogate"),
        (b"[]", 422, "must be a JSON object, not an array"),
        (b'"firing"', 422, "must be a JSON object, not a string"),
        (b"null", 422, "must be a JSON object, not null"),
    ]
    for raw, code, why in cases:
        status, body = await rx.post(None, raw=raw)
        assert status == code, (raw[:40], body)
        assert why in (body["error"] if code == 400 else body["fields"][0]["error"]), body
    group = new_group()
    naive = payload(group)
    naive["alerts"][0]["startsAt"] = "9999-12-31T23:59:59-23:00"
    status, body = await rx.post(naive)
    assert status == 422 and [f["field"] for f in body["fields"]] == ["alerts.0.startsAt"], body
    await rx.count_is(0)


async def test_a_body_over_the_limit_is_413(rx: Harness) -> None:
    receiver = AlertReceiver(rx.client, ROUTES, TOKEN, queue_suffix=rx.suffix, max_body_bytes=8192)
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    try:
        big = payload(new_group())
        big["commonAnnotations"]["description"] = "x" * 10_000
        resp = await http.post("/alerts", json=big, headers=AUTH)
        assert resp.status == 413, await resp.text()
        assert (await resp.json())["error"] == "body is larger than 8192 bytes (alerts.max_body_bytes)"
        # The default is explicit, and a normal notification is far below it.
        assert rx.receiver.app()._client_max_size == 1024 * 1024
        resp = await http.post("/alerts", json=payload(new_group()), headers=AUTH)
        assert resp.status == 202
    finally:
        await http.close()
    await rx.count_is(1)


async def test_the_start_budget_bounds_new_runs_not_duplicates(rx: Harness) -> None:
    """A token holder varying groupKey starts at most ``starts_per_minute`` runs; resends of
    known incidents (even from a receiver that never saw them) are answered, never throttled."""
    now = [1000.0]
    receiver = AlertReceiver(
        rx.client, ROUTES, TOKEN, queue_suffix=rx.suffix, starts_per_minute=2, clock=lambda: now[0]
    )
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    try:
        groups = [new_group() for _ in range(4)]
        assert [await status_of(http, payload(g)) for g in groups[:2]] == [202, 202]
        resp = await http.post("/alerts", json=payload(groups[2]), headers=AUTH)
        body = await resp.json()
        assert resp.status == 429, body
        assert int(resp.headers["Retry-After"]) == 30  # 2 a minute: one every 30 s
        assert "alerts.starts_per_minute" in body["error"]
        assert body["workflow_id"] == incident_workflow_id("no-writable-primary", groups[2], T0)
        # Duplicates do not count: from the cache, and from Temporal (started by another receiver).
        assert await status_of(http, payload(groups[0])) == 200
        assert (await rx.post(payload(groups[3])))[0] == 202
        resp = await http.post("/alerts", json=payload(groups[3]), headers=AUTH)
        assert resp.status == 200 and (await resp.json())["result"] == "duplicate"
        # Half a minute later one more start is in the budget, and only one.
        now[0] += 30
        assert await status_of(http, payload(groups[2])) == 202
        assert await status_of(http, payload(new_group())) == 429
    finally:
        await http.close()
    await rx.count_is(4)


@pytest.mark.parametrize(
    ("token", "why"),
    [("", "empty"), ("s3cret", "6 characters"), ("ab" * 20, "2 distinct"), (TOKEN[:31], "31 characters")],
)
async def test_a_weak_token_is_refused_at_start(client: Client, token: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"alerts.token_ref: .*{why}") as err:
        AlertReceiver(client, ROUTES, token)
    assert not token or token not in str(err.value)


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_the_listener_serves_tls_when_configured(rx: Harness, tmp_path: Path) -> None:
    assert tls_context(AlertsSettings()) is None
    cert, key = _self_signed(tmp_path, "receiver")
    _, other_key = _self_signed(tmp_path, "other")
    with pytest.raises(
        ConfigError, match=r"alerts\.tls_cert, alerts\.tls_key: not a certificate and its key"
    ):
        tls_context(AlertsSettings(tls_cert=cert, tls_key=other_key))
    with pytest.raises(ConfigError, match=r"alerts\.tls_key: no file"):
        tls_context(AlertsSettings(tls_cert=cert, tls_key=tmp_path / "missing.key"))

    tls = tls_context(AlertsSettings(tls_cert=cert, tls_key=key))
    runner = web.AppRunner(rx.receiver.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=trust) as resp:
                assert resp.status == 200 and await resp.json() == {"status": "ok"}
            with pytest.raises(aiohttp.ClientError):  # plain HTTP gets no answer
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    await resp.read()
    finally:
        await runner.cleanup()
