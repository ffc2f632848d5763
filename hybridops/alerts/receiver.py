"""``hybridops serve alerts``: the Alertmanager webhook receiver that starts runbooks safely.

The HTTP contract (``POST /alerts``, Alertmanager webhook payload version "4"):

====  =====================================================================================
code  when, and the JSON body
====  =====================================================================================
202   a run was started: ``{"result": "started" | "drill_started", "workflow_id", "run_id",
      "route", "runbook", "require_approval"}``
200   nothing new was started, on purpose: ``{"result": ..., "workflow_id", "route", "detail"}``
      with ``result`` one of ``duplicate`` (plus ``duplicate_of``: the run this incident
      already has), ``signalled`` (a resolve delivered to its run), ``not_running`` (a
      resolve for a run that has ended or never started), ``drill_not_started``
401   missing or wrong bearer token: ``{"error"}`` (and ``WWW-Authenticate: Bearer``)
400   the body is not JSON (not UTF-8, nested too deeply, ``NaN``): ``{"error"}``
413   the body is larger than ``alerts.max_body_bytes``: ``{"error"}``
422   the JSON is not a version-4 payload: ``{"error", "fields": [{"field", "error"}]}``
404   no route matches: ``{"error", "labels": [the label sets seen]}``
429   the start budget (``alerts.starts_per_minute``) is spent: ``{"error", "workflow_id",
      "route"}`` and ``Retry-After`` (seconds); nothing was started
503   Temporal could not be reached: ``{"error"}``; nothing was started, Alertmanager retries
====  =====================================================================================

Every 4xx starts nothing and changes nothing. Alertmanager retries 5xx only, so a resolve
for a run that has ended gets 200, not 404. A 429 is not retried at once: Alertmanager sends
the group again at its next ``group_interval``, by when the budget has refilled.

``GET /healthz`` (no token): 200 ``{"status": "ok"}`` when the Temporal frontend answers, else
503 ``{"status": "unavailable"}``; why goes to the log, never to an unauthenticated caller.

One run per incident: the workflow id is derived from the route, the alert group and the
episode (:func:`~hybridops.alerts.routes.incident_workflow_id`), and the start uses
``USE_EXISTING`` and ``REJECT_DUPLICATE``, so resends, storms, HA Alertmanager pairs and
receiver restarts all land on the same run. A bounded in-memory cache answers known ids
without calling Temporal, and concurrent duplicates share one start call. While a group's run
is running, a later episode of the same group (Prometheus lost the alert's state) is answered
as its duplicate; :meth:`AlertReceiver.recover` relearns the running runs after a restart.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from hybridops import metrics
from hybridops.alerts.limits import StartBudget, check_token
from hybridops.alerts.payload import AlertStatus, WebhookPayload
from hybridops.alerts.routes import (
    DRILL_WORKFLOW_ID_PREFIX,
    WORKFLOW_ID_PREFIX,
    Route,
    RoutesFile,
    group_prefix,
    incident_workflow_id,
    load_routes,
    runbook_spec,
)
from hybridops.client import connect
from hybridops.constants import ALERT_SIGNAL
from hybridops.contracts.base import AlertNotice
from hybridops.errors import ConfigError, RetryableError
from hybridops.inventory import AlertsSettings, Inventory, parse_listen
from hybridops.secrets import resolve_secret

log = logging.getLogger("hybridops.alerts")

ALERTS_PATH = "/alerts"
HEALTH_PATH = "/healthz"
DEFAULT_CACHE_SIZE = 10_000
"""Ids remembered (started, duplicate, resolved): about 1 MB; the oldest are forgotten first,
after which Temporal's id policies still answer."""
HEALTH_TIMEOUT = timedelta(seconds=2)
MAX_LABEL_SETS = 20
"""How many distinct label sets a 404 body shows."""
DEFAULT_STARTS_PER_MINUTE = AlertsSettings.model_fields["starts_per_minute"].default
DEFAULT_MAX_BODY_BYTES = AlertsSettings.model_fields["max_body_bytes"].default


class Result(StrEnum):
    """What a notification did (the ``result`` of a 200/202 body)."""

    STARTED = "started"
    DRILL_STARTED = "drill_started"
    DUPLICATE = "duplicate"
    SIGNALLED = "signalled"
    NOT_RUNNING = "not_running"
    DRILL_NOT_STARTED = "drill_not_started"
    THROTTLED = "throttled"
    """Not a 200/202: the start budget was spent (429)."""


@dataclass(frozen=True)
class _Known:
    """What the receiver already knows about an id."""

    duplicate_of: str
    run_id: str | None
    detail: str


class _Lru:
    """A bounded map; the least recently used entry goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[str, _Known] = OrderedDict()

    def get(self, key: str) -> _Known | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: _Known) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def _reply(code: int, /, headers: dict[str, str] | None = None, **body: Any) -> web.Response:
    return web.json_response(body, status=code, headers=headers)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class AlertReceiver:
    """The webhook receiver: authenticates, validates, routes, then starts or signals.

    ``queue_suffix`` is the inventory's ``task_queue_suffix`` (the tests and the bench give
    each run their own, so no worker picks the runs up). ``starts_per_minute`` and
    ``max_body_bytes`` are the inventory's ``alerts`` settings; ``clock`` (monotonic seconds)
    drives the start budget. A weak token is a ConfigError here, before anything listens.
    """

    def __init__(
        self,
        client: Client,
        routes: RoutesFile,
        token: str,
        *,
        queue_suffix: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
        starts_per_minute: float = DEFAULT_STARTS_PER_MINUTE,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_token(token)
        self._budget = StartBudget(starts_per_minute, clock)
        """One budget for the one token: whoever holds it, however they vary ``groupKey``."""
        self._max_body = max_body_bytes
        self._client = client
        self._routes = routes
        self._token = token.encode()
        self._suffix = queue_suffix
        self._known = _Lru(cache_size)
        self._inflight: dict[str, asyncio.Task[tuple[Result, _Known]]] = {}
        self._latest: OrderedDict[str, str] = OrderedDict()
        """Per group prefix, the last id started: an earlier episode still running blocks a
        new one (one failover at a time per alert group)."""
        self._cache_size = cache_size

    def app(self) -> web.Application:
        """The aiohttp application."""
        # aiohttp's own default is 1 MiB too; set from the settings, so it is a decision.
        app = web.Application(client_max_size=self._max_body)
        app.router.add_post(ALERTS_PATH, self.handle_alerts)
        app.router.add_get(HEALTH_PATH, self.handle_health)
        return app

    # ------------------------------------------------------------------ HTTP

    async def handle_health(self, request: web.Request) -> web.Response:
        # Unauthenticated: the answer says ok or not, nothing about Temporal (its address, its
        # errors); the reason is logged for the operator.
        try:
            ok = await self._client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        except Exception as err:  # any failure to reach the frontend means unhealthy
            log.warning("healthz unavailable: temporal %s: %s", type(err).__name__, err)
            return _reply(503, status="unavailable")
        if not ok:
            log.warning("healthz unavailable: temporal is not serving")
            return _reply(503, status="unavailable")
        return _reply(200, status="ok")

    async def handle_alerts(self, request: web.Request) -> web.Response:
        """``POST /alerts``; every refusal (4xx, 5xx) counted by its status."""
        response = await self._handle_alerts(request)
        if response.status >= 400:
            metrics.ALERTS_REFUSED.labels(str(response.status)).inc()
        return response

    async def _handle_alerts(self, request: web.Request) -> web.Response:
        remote = request.remote or "-"
        refused = self._check_token(request.headers.get("Authorization"))
        if refused:
            log.warning("alert refused status=401 reason=%r remote=%s", refused, remote)
            return web.json_response({"error": refused}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("alert refused status=413 reason='body too large' remote=%s", remote)
            return _reply(413, error=f"body is larger than {self._max_body} bytes (alerts.max_body_bytes)")
        data, why = _parse_json(raw)
        if why:
            log.warning("alert refused status=400 reason=%r remote=%s", why, remote)
            return _reply(400, error=f"body is not JSON: {why}")
        if not isinstance(data, dict):
            log.warning("alert refused status=422 fields='(top level)' remote=%s", remote)
            return _reply(
                422,
                error="not an Alertmanager version 4 payload",
                fields=[{"field": "(top level)", "error": f"must be a JSON object, not {_json_type(data)}"}],
            )
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as err:
            fields = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(top level)", "error": e["msg"]}
                for e in err.errors()
            ]
            log.warning(
                "alert refused status=422 fields=%s remote=%s", ",".join(f["field"] for f in fields), remote
            )
            return _reply(422, error="not an Alertmanager version 4 payload", fields=fields)
        route = self._routes.route_for([a.labels for a in payload.relevant])
        # By route, not alert name: the routes file bounds the label's values, a sender does not.
        metrics.ALERTS_RECEIVED.labels(route.name if route else "").inc(len(payload.relevant))
        if route is None:
            label_sets: list[dict[str, str]] = []
            for a in payload.relevant:
                if a.labels not in label_sets and len(label_sets) < MAX_LABEL_SETS:
                    label_sets.append(a.labels)
            log.warning(
                "alert refused status=404 reason='no route' alertnames=%s remote=%s",
                ",".join(payload.alertnames),
                remote,
            )
            return _reply(404, error="no route matches these alerts", labels=label_sets)
        try:
            return await self._act(route, payload)
        except (RPCError, RuntimeError) as err:  # RuntimeError: the SDK could not (re)connect
            message = err.message if isinstance(err, RPCError) else str(err)
            log.error("alert failed status=503 route=%s error=%s", route.name, message)
            return _reply(503, error=f"temporal: {message}")

    def _check_token(self, header: str | None) -> str:
        """Empty when the bearer token is right; why not otherwise."""
        if not header:
            return "missing bearer token"
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "missing bearer token"
        # surrogatepass: a header with undecodable bytes is a wrong token, not an encode error.
        if not hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), self._token):
            return "wrong bearer token"
        return ""

    # ------------------------------------------------------------------ actions

    async def _act(self, route: Route, payload: WebhookPayload) -> web.Response:
        drill = payload.is_drill
        if drill and route.drill_runbook is None:
            log.info(
                "alert drill route=%s status=%s alertnames=%s: nothing started (route has no drill_runbook)",
                route.name,
                payload.status.value,
                ",".join(payload.alertnames),
            )
            return _reply(
                200,
                result=Result.DRILL_NOT_STARTED,
                route=route.name,
                detail="drill: nothing started (the route has no drill_runbook)",
            )
        wf_id = incident_workflow_id(route.name, payload.group_key, payload.incident_started_at, drill=drill)
        if payload.status == AlertStatus.RESOLVED:
            return await self._resolve(route, payload, wf_id)
        return await self._fire(route, payload, wf_id, drill)

    async def _fire(self, route: Route, payload: WebhookPayload, wf_id: str, drill: bool) -> web.Response:
        known = self._known.get(wf_id)
        if known is not None:
            log.info(
                "alert duplicate route=%s workflow_id=%s of=%s source=cache",
                route.name,
                wf_id,
                known.duplicate_of,
            )
            return self._duplicate(route, wf_id, known, "cache")
        if wf_id in self._inflight:
            # Another request is starting this run right now. Answer at once: if that start
            # fails, its own request gets the 503 and Alertmanager retries the group.
            log.info(
                "alert duplicate route=%s workflow_id=%s of=%s source=in-flight", route.name, wf_id, wf_id
            )
            return self._duplicate(route, wf_id, _Known(wf_id, None, "start in flight"), "in-flight")
        task = asyncio.create_task(self._start(route, payload, wf_id, drill))
        self._inflight[wf_id] = task
        task.add_done_callback(lambda _: self._inflight.pop(wf_id, None))
        result, outcome = await asyncio.shield(task)
        if result == Result.DUPLICATE:
            return self._duplicate(route, wf_id, outcome, "temporal")
        if result == Result.THROTTLED:
            retry = self._budget.retry_after()
            return _reply(
                429,
                headers={"Retry-After": str(retry)},
                error=f"start budget spent: at most {self._budget.capacity:g} new runs a minute"
                f" (alerts.starts_per_minute); retry after {retry} s",
                route=route.name,
                workflow_id=wf_id,
            )
        runbook = route.drill_runbook if drill else route.runbook
        return _reply(
            202,
            result=result,
            route=route.name,
            runbook=runbook,
            workflow_id=wf_id,
            run_id=outcome.run_id,
            require_approval=None if drill else not route.auto,
        )

    def _duplicate(self, route: Route, wf_id: str, known: _Known, source: str) -> web.Response:
        metrics.ALERTS_DEDUPLICATED.labels(route.name).inc()
        return _reply(
            200,
            result=Result.DUPLICATE,
            route=route.name,
            workflow_id=wf_id,
            duplicate_of=known.duplicate_of,
            run_id=known.run_id,
            source=source,
            detail=known.detail,
        )

    async def _start(
        self, route: Route, payload: WebhookPayload, wf_id: str, drill: bool
    ) -> tuple[Result, _Known]:
        """Start the incident's run, or find the run it already has. Logs one line."""
        prefix = group_prefix(route.name, payload.group_key, drill=drill)
        earlier = await self._running_episode(prefix, wf_id)
        if earlier is not None:
            # Not cached: once the earlier run ends, this episode starts its own (as it would
            # after a restart), so every resend asks again (one describe call).
            known = _Known(earlier, None, "an earlier episode of this alert group is still running")
            log.info(
                "alert duplicate route=%s workflow_id=%s of=%s source=earlier-episode",
                route.name,
                wf_id,
                earlier,
            )
            return Result.DUPLICATE, known
        runbook = route.drill_runbook if drill else route.runbook
        assert runbook is not None
        spec = runbook_spec(runbook)
        reason = self._reason(route, payload)
        inp = route.build_input(drill=drill, incident_started_at=payload.incident_started_at, reason=reason)
        if not self._budget.take():
            return await self._throttled(route, wf_id)
        try:
            handle = await self._start_workflow(
                spec.workflow_type.value, inp, wf_id, spec.task_queue.value, reason
            )
        except WorkflowAlreadyStartedError as err:
            self._budget.give_back()
            # REJECT_DUPLICATE: this incident's run has already ended.
            known = _Known(wf_id, err.run_id, "this incident's run has already ended")
            self._known.put(wf_id, known)
            log.info("alert duplicate route=%s workflow_id=%s source=temporal closed=true", route.name, wf_id)
            return Result.DUPLICATE, known
        except BaseException:
            self._budget.give_back()  # nothing was started
            raise
        self._remember_latest(prefix, wf_id)
        if not _was_started(handle):
            self._budget.give_back()
            known = _Known(wf_id, handle.result_run_id, "this incident's run is already running")
            self._known.put(wf_id, known)
            log.info(
                "alert duplicate route=%s workflow_id=%s source=temporal running=true", route.name, wf_id
            )
            return Result.DUPLICATE, known
        known = _Known(wf_id, handle.result_run_id, "started by an earlier notification of this incident")
        self._known.put(wf_id, known)
        metrics.ALERTS_STARTED.labels(route.name).inc()
        log.info(
            "alert started route=%s runbook=%s workflow_id=%s run_id=%s require_approval=%s drill=%s",
            route.name,
            runbook,
            wf_id,
            handle.result_run_id,
            not route.auto,
            drill,
        )
        return (Result.DRILL_STARTED if drill else Result.STARTED), known

    async def _start_workflow(
        self, workflow_type: str, inp: Any, wf_id: str, task_queue: str, reason: str
    ) -> WorkflowHandle[Any, Any]:
        return await self._client.start_workflow(
            workflow_type,
            inp,
            id=wf_id,
            task_queue=task_queue + self._suffix,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=reason[:200],
        )

    async def _throttled(self, route: Route, wf_id: str) -> tuple[Result, _Known]:
        """The budget is spent: a duplicate of a run that exists is still a duplicate (a
        receiver that restarted has no cache), anything else waits for the budget."""
        try:
            desc = await self._client.get_workflow_handle(wf_id).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            known = _Known(wf_id, desc.run_id, "this incident already has a run")
            self._known.put(wf_id, known)
            log.info(
                "alert duplicate route=%s workflow_id=%s source=temporal throttled=true", route.name, wf_id
            )
            return Result.DUPLICATE, known
        log.warning(
            "alert refused status=429 reason='start budget spent' route=%s workflow_id=%s per_minute=%g",
            route.name,
            wf_id,
            self._budget.capacity,
        )
        return Result.THROTTLED, _Known(wf_id, None, "start budget spent")

    async def _running_episode(self, prefix: str, wf_id: str) -> str | None:
        """Another run of the same route and alert group that is still running, if any.

        A group can get a new episode without its incident being over (Prometheus restarted and
        lost the alert's ``for`` state; an HA replica reported an earlier ``startsAt``). The
        receiver remembers the last id per group (from its own starts, and from
        :meth:`recover` at start-up); only that id is described, and only when it differs.
        """
        latest = self._latest.get(prefix)
        if latest is None or latest == wf_id:
            return None
        try:
            desc = await self._client.get_workflow_handle(latest).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return latest if desc.status == WorkflowExecutionStatus.RUNNING else None

    async def recover(self) -> int:
        """Learn the alert-started runs that are running (after a restart): one visibility
        query at start-up instead of one per new incident. Returns how many it found.

        Visibility is eventually consistent, so a run started a moment before may be missed;
        that only weakens the earlier-episode guard: Temporal's id policies still give one run
        per episode.
        """
        query = (
            f"(WorkflowId STARTS_WITH '{WORKFLOW_ID_PREFIX}-' OR WorkflowId STARTS_WITH"
            f" '{DRILL_WORKFLOW_ID_PREFIX}-') AND ExecutionStatus = 'Running'"
        )
        found = 0
        try:
            async for wf in self._client.list_workflows(query):
                prefix = wf.id.rpartition("-")[0] + "-"
                if prefix not in self._latest:
                    self._remember_latest(prefix, wf.id)
                self._known.put(wf.id, _Known(wf.id, wf.run_id, "started before this receiver started"))
                found += 1
        except RPCError as err:
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            log.warning(
                "alert receiver: visibility query refused (%s): running runs not recovered", err.message
            )
        return found

    def _remember_latest(self, prefix: str, wf_id: str) -> None:
        self._latest[prefix] = wf_id
        self._latest.move_to_end(prefix)
        while len(self._latest) > self._cache_size:
            self._latest.popitem(last=False)

    @staticmethod
    def _reason(route: Route, payload: WebhookPayload) -> str:
        first = next((a for a in payload.relevant if route.matches(a.labels)), payload.alerts[0])
        name = first.labels.get("alertname", route.name)
        summary = first.annotations.get("summary") or payload.common_annotations.get("summary", "")
        return f"alert {name}: {summary}" if summary else f"alert {name}"

    async def _resolve(self, route: Route, payload: WebhookPayload, wf_id: str) -> web.Response:
        key = wf_id + "#resolved"
        known = self._known.get(key)
        if known is not None:
            log.info("alert duplicate route=%s workflow_id=%s resolved=true source=cache", route.name, wf_id)
            return self._duplicate(route, wf_id, known, "cache")
        notice = AlertNotice(
            status=payload.status.value,
            received_at=datetime.now(UTC),
            group_key=payload.group_key,
            alertnames=payload.alertnames,
            ended_at=payload.ended_at,
        )
        try:
            await self._client.get_workflow_handle(wf_id).signal(ALERT_SIGNAL, notice)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("alert resolved route=%s workflow_id=%s: no running run to signal", route.name, wf_id)
            return _reply(
                200,
                result=Result.NOT_RUNNING,
                route=route.name,
                workflow_id=wf_id,
                detail="resolved: this incident has no running run (ended, or never started)",
            )
        self._known.put(key, _Known(wf_id, None, "the resolve was already delivered"))
        log.info("alert signalled route=%s workflow_id=%s signal=%s", route.name, wf_id, ALERT_SIGNAL)
        return _reply(
            200,
            result=Result.SIGNALLED,
            route=route.name,
            workflow_id=wf_id,
            detail=f"resolved: signal {ALERT_SIGNAL!r} delivered",
        )


def _parse_json(raw: bytes) -> tuple[Any, str]:
    """The body as JSON, or why it is not: strict JSON (no ``NaN``/``Infinity``), UTF-8, and not
    nested deeper than the interpreter can parse (a RecursionError is not a ValueError)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 (byte {err.start})"
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as err:
        return None, str(err)
    if "\\u" in text:
        # An escaped lone surrogate ("\ud800") parses, but no UTF-8 (a history, a log) holds it.
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as err:
            return None, f"an unpaired surrogate ({err.object[err.start]!a}) is not text"
    return data, ""


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _was_started(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the start created a run (False: ``USE_EXISTING`` returned the running one).

    The SDK keeps the server's StartWorkflowExecutionResponse on the handle; its ``started``
    field is what tells the two apart.
    """
    resp = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(resp, "started", True))


# --------------------------------------------------------------------------- serving


def routes_for(inv: Inventory) -> RoutesFile:
    """The inventory's routes file, else ``runbooks/alert-routes.yaml``."""
    return load_routes(inv.alerts.routes)


def token_for(inv: Inventory) -> str:
    """The bearer token Alertmanager must send; a ConfigError naming the key when it is absent
    or weak (:func:`~hybridops.alerts.limits.check_token`)."""
    if inv.alerts.token_ref is None:
        raise ConfigError(
            "alerts.token_ref: required to serve alerts (a secret reference, env:NAME or file:PATH,"
            " to the bearer token Alertmanager sends)"
        )
    token = resolve_secret(inv.alerts.token_ref) or ""
    check_token(token)
    return token


def tls_context(settings: AlertsSettings) -> ssl.SSLContext | None:
    """The listener's TLS context (``alerts.tls_cert`` and ``alerts.tls_key``), or None for
    plain HTTP; a ConfigError naming the key when the files do not load."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    for key, path in (("alerts.tls_cert", settings.tls_cert), ("alerts.tls_key", settings.tls_key)):
        if not Path(path).is_file():
            raise ConfigError(f"{key}: no file at {path}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, ValueError) as err:
        raise ConfigError(f"alerts.tls_cert, alerts.tls_key: not a certificate and its key: {err}") from None
    return ctx


async def serve_alerts(inv: Inventory, listen: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests, exit."""
    host, port = parse_listen(listen or inv.alerts.listen, "alerts.listen")
    routes = routes_for(inv)
    token = token_for(inv)
    tls = tls_context(inv.alerts)
    try:
        client = await connect(inv.temporal)
    except RuntimeError as err:  # the SDK's "Failed client connect"
        raise RetryableError(f"temporal.address {inv.temporal.address}: {err}") from None
    receiver = AlertReceiver(
        client,
        routes,
        token,
        queue_suffix=inv.task_queue_suffix,
        starts_per_minute=inv.alerts.starts_per_minute,
        max_body_bytes=inv.alerts.max_body_bytes,
    )
    log.info("alert receiver recovered %d running alert-started runs", await receiver.recover())
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
        log.info(
            "alert receiver listening on %s://%s:%d%s (%d routes: %s)",
            "https" if tls else "http",
            host,
            port,
            ALERTS_PATH,
            len(routes.routes),
            ", ".join(r.name for r in routes.routes),
        )
        await stop.wait()
        log.info("alert receiver stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
