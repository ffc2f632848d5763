"""Fuzz (hypothesis) the alert receiver over loopback: any body, any JSON, near-valid
Alertmanager notifications, right and wrong tokens. Every answer is 2xx or 4xx, never 5xx;
only a valid, routed, firing, non-drill notification starts a run, and every run started is one
the receiver answered 202 for, with an input that validates.

The receiver runs in-process against the session's dev server; its runs go to a task queue no
worker serves and are terminated at the end (as in test_alert_receiver.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hybridops.alerts.payload import AlertStatus, WebhookPayload
from hybridops.alerts.receiver import AlertReceiver
from hybridops.constants import TaskQueue
from hybridops.contracts.base import REASON_MAX
from hybridops.contracts.failover import FailoverInput
from tests.fuzz import body, json_values, notification
from tests.lab.helpers import eventually
from tests.lab.test_alert_receiver import ROUTES, TOKEN

EXAMPLES = 500
WRONG_TOKENS = [None, "", "wrong", TOKEN + "x", TOKEN[:-1], "\u00e9" * 40]


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def should_start(raw: bytes) -> bool:
    """Whether the receiver may start a run for this body: it is a valid payload, firing, not a
    drill, and a route matches (resends of one incident then answer 200 duplicate). JSON is
    RFC 8259 JSON: ``NaN`` and ``Infinity`` anywhere (pydantic's parser would take them in a
    field it ignores) make the body no JSON at all, as the receiver says."""
    try:
        json.loads(raw, parse_constant=_not_json)
        p = WebhookPayload.model_validate_json(raw)
    except (ValidationError, ValueError):
        return False
    return (
        p.status == AlertStatus.FIRING
        and not p.is_drill
        and ROUTES.route_for([a.labels for a in p.relevant]) is not None
    )


async def test_no_body_gets_a_5xx_and_only_valid_ones_start_runs(
    client: Client, record_property: Any
) -> None:
    suffix = f"-fuzz-{uuid.uuid4().hex[:8]}"
    queue = TaskQueue.CONTROL.value + suffix
    # The budget is opened wide so that a valid notification always starts (the budget has its
    # own test); everything else is the receiver as served.
    receiver = AlertReceiver(client, ROUTES, TOKEN, queue_suffix=suffix, starts_per_minute=10**6)
    http: TestClient[Any, Any] = TestClient(TestServer(receiver.app()))
    await http.start_server()
    loop = asyncio.get_running_loop()
    answers: dict[int, int] = {}
    started: set[str] = set()
    tried = 0

    async def post(raw: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        resp = await http.post("/alerts", data=raw, headers=headers)
        text = await resp.text()
        # A 500 from aiohttp is text/plain: kept as text, so the assertion shows the status.
        return resp.status, json.loads(text) if resp.content_type == "application/json" else {"text": text}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        raw=st.one_of(
            notification(valid=True).map(body),
            notification().map(body),
            notification().map(body),
            json_values.map(body),
            st.binary(max_size=64),
        ),
        token=st.one_of(st.just(TOKEN), st.just(TOKEN), st.just(TOKEN), st.sampled_from(WRONG_TOKENS)),
    )
    def one(raw: bytes, token: str | None) -> None:
        nonlocal tried
        tried += 1
        # Headers that are not latin-1 cannot be sent by aiohttp's client: those are not tried.
        if token is not None and not token.isascii():
            token = token.encode().decode("latin-1")
        status, answer = asyncio.run_coroutine_threadsafe(post(raw, token), loop).result(timeout=60)
        answers[status] = answers.get(status, 0) + 1
        assert status < 500, (status, answer, raw[:300])
        if token != TOKEN:
            assert status == 401, (status, answer)
            return
        expect = should_start(raw)
        if status == 202:
            assert expect, (answer, raw[:300])
            started.add(answer["workflow_id"])
        elif expect:
            assert status == 200 and answer["result"] == "duplicate", (status, answer, raw[:300])
        if 400 <= status < 500:
            assert answer.get("error"), answer

    try:
        await asyncio.to_thread(one)

        async def runs() -> int:
            return (await client.count_workflows(f"TaskQueue = '{queue}'")).count

        await eventually(f"{len(started)} runs on {queue}", lambda: _equals(runs, len(started)), timeout=15)
        for wf_id in sorted(started)[:20]:
            history = await client.get_workflow_handle(wf_id).fetch_history()
            attrs = history.events[0].workflow_execution_started_event_attributes
            (inp,) = await client.data_converter.decode(attrs.input.payloads, [FailoverInput])
            assert isinstance(inp, FailoverInput) and len(inp.reason) <= REASON_MAX
    finally:
        await http.close()
        async for wf in client.list_workflows(f"TaskQueue = '{queue}'"):
            try:
                await client.get_workflow_handle(wf.id).terminate("fuzz over")
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
    assert answers.get(202, 0) == len(started) > 0 and answers.get(401, 0) > 0
    assert sum(answers.get(c, 0) for c in (400, 422)) > 0
    record_property("inputs_tried", tried)
    record_property("answers", answers)
    print(
        f"webhook: {tried} inputs tried, answers {dict(sorted(answers.items()))}, {len(started)} runs started"
    )


async def _equals(count: Any, n: int) -> bool:
    return bool(await count() == n)
