"""Payload encryption on a real run: the server's history holds no clear text.

A failover with an approval gate runs in the lab with workers and a client built by
``hybridops.client.data_converter`` from an inventory with a key. Its raw history, read from
the server by a client WITHOUT the codec, must not contain the input's reason, the result's
approver or the approval's comment, and every payload in it must be sealed; the same history
fetched through the codec (what ``hybridops audit`` does) decodes and replays.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.common import HeaderCodecBehavior
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from hybridops.audit import fetch_history
from hybridops.cli.replayer import make_replayer
from hybridops.client import data_converter
from hybridops.codec import ENCODING, key_id_of
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, RunStatus
from hybridops.contracts.failover import FailoverInput
from hybridops.identity import IdentityClientInterceptor, local_identity
from hybridops.inventory import CodecSettings, Inventory
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_failed_over, assert_one_writer, eventually, start
from workflows.failover import FailoverWorkflow

KEY_ENV = "HYBRIDOPS_TEST_CODEC_KEY"


def _payloads(message: Message) -> list[Payload]:
    """Every Payload in a proto message, wherever it sits."""
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        items = (
            [value]
            if isinstance(value, Message)
            else list(value.values() if hasattr(value, "keys") else value)
        )
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            else:
                found += _payloads(item)
    return found


def _wire(events: Iterable[Message]) -> bytes:
    """The events as the server stores and sends them (protobuf bytes)."""
    return b"".join(e.SerializeToString() for e in events)


async def _encrypted_setup(
    temporal_env: WorkflowEnvironment, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> tuple[Inventory, Client]:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    base = lab_inventory(lab)
    codec = CodecSettings.model_validate(
        {"keys": [{"id": "lab-2026-12", "key_ref": f"env:{KEY_ENV}"}], "active_key_id": "lab-2026-12"}
    )
    inv = lab_inventory(lab, temporal=base.temporal.model_copy(update={"codec": codec}))
    identity = local_identity(inv.temporal)
    client = await temporal_env.connect_client(
        data_converter=data_converter(inv.temporal),
        identity=identity,
        interceptors=[IdentityClientInterceptor(identity)],  # approvals need an identity
        header_codec_behavior=HeaderCodecBehavior.CODEC,  # as hybridops.client.connect does
    )
    return inv, client


async def _at_gate(client: Client, inv: Inventory, reason: str):  # type: ignore[no-untyped-def]
    handle = await start(
        client,
        inv,
        FailoverInput(
            require_approval=True,
            reason=reason,
            requested_by="codec-test-starter",
            only_if_primary_down=False,  # the rejection test fails over a healthy primary
        ),
    )

    async def waiting() -> bool:
        prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
        return prog.waiting_for_approval

    await eventually("the approval gate", waiting)
    return handle


async def test_history_on_the_server_has_no_clear_text(
    temporal_env: WorkflowEnvironment, lab: Lab, run_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv, client = await _encrypted_setup(temporal_env, lab, monkeypatch)
    await run_workers(client, inv)
    lab.break_site("onprem")
    tag = uuid.uuid4().hex[:8]
    reason = f"reason-{tag}-datacenter-flood"
    approver = f"approver-{tag}"
    comment = f"comment-{tag}-go-ahead"
    handle = await _at_gate(client, inv, reason)
    record = await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by=approver, comment=comment), result_type=ApprovalRecord
    )
    assert record.by == approver
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    assert [(a.by, a.comment) for a in result.approvals] == [(approver, comment)]

    plain = await temporal_env.connect_client(data_converter=pydantic_data_converter)
    raw = await plain.get_workflow_handle(handle.id).fetch_history()
    # Raw bytes, not to_json(): the JSON export base64-encodes payload data, where clear text
    # would hide from a substring search.
    wire = _wire(raw.events)
    for secret in (reason, approver, comment, tag, "codec-test-starter"):
        assert secret.encode() not in wire, f"{secret!r} in the server's history"
    payloads = [p for e in raw.events for p in _payloads(e)]
    # The SDK's own bookkeeping of a local activity (the marker's "data": seq, attempt,
    # activity type, times) and of a patch (its id) is not a user payload and stays JSON;
    # everything else is sealed.
    markers = [
        e.marker_recorded_event_attributes
        for e in raw.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    bookkeeping = [m.details["data"].payloads[0] for m in markers if "data" in m.details] + [
        p for m in markers if m.marker_name == "core_patch" for d in m.details.values() for p in d.payloads
    ]
    # The patch's search attribute (TemporalChangeVersion): search attributes stay plain, so
    # that they can be searched (runbooks/security.md).
    bookkeeping += [
        p
        for e in raw.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        for p in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields.values()  # noqa: E501
    ]
    sealed = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    clear = [p for p in payloads if p.metadata.get("encoding") != ENCODING and p not in bookkeeping]
    assert len(sealed) > 10
    assert clear == [], f"{len(clear)} of {len(payloads)} payloads in clear"
    print(f"{len(sealed)} payloads sealed; {len(bookkeeping)} local-activity markers' bookkeeping in JSON")
    assert {key_id_of(p) for p in sealed} == {"lab-2026-12"}

    # Through the codec, as `hybridops audit` reads it: decoded, and it replays cleanly.
    decoded = await fetch_history(client, handle.id)
    assert decoded.history is not None and not decoded.error
    decoded_wire = _wire(decoded.history.events)
    assert reason.encode() in decoded_wire and comment.encode() in decoded_wire
    await make_replayer([FailoverWorkflow]).replay_workflow(decoded.history)

    # The evidence's history.json is the sealed history; the audit opens it with the
    # inventory's key: the report names the approver, the evidence checks out, it replays.
    folder = Path(inv.output_dir) / "failover" / handle.id
    exported = WorkflowHistory.from_json(handle.id, (folder / "history.json").read_text())
    assert reason.encode() not in _wire(exported.events) and comment.encode() not in _wire(exported.events)
    env = {**os.environ, **lab.env(), "HYBRIDOPS_INVENTORY": str(lab.root / "inventory.yaml")}
    hybridops = str(Path(sys.executable).parent / "hybridops")
    report = [hybridops, "audit", "report", handle.id]
    for cmd in ([*report, "--history", str(folder / "history.json")], report):  # the file, the server
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "evidence intact" in out.stdout, out.stdout + out.stderr
    assert "succeeded" in out.stdout and "1 approvals" in out.stdout, out.stdout
    assert f"approved by **{approver}**" in (folder / "audit" / "report.md").read_text()
    replayed = subprocess.run(
        [hybridops, "audit", "replay", handle.id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert [r["outcome"] for r in json.loads(replayed.stdout)["results"]] == ["clean"]
    # The end state: the target the one writable server, DNS at it, onprem fenced.
    assert_failed_over(lab, result.target)


async def test_a_rejection_message_is_not_in_clear_either(
    temporal_env: WorkflowEnvironment, lab: Lab, run_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rejection's failure message quotes the comment: it is an encoded attribute."""
    inv, client = await _encrypted_setup(temporal_env, lab, monkeypatch)
    await run_workers(client, inv)
    tag = uuid.uuid4().hex[:8]
    comment = f"comment-{tag}-not-tonight"
    handle = await _at_gate(client, inv, f"reason-{tag}")
    await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by=f"rejecter-{tag}", approve=False, comment=comment)
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert comment in str(failure.value.cause)  # the codec client reads the message back

    plain = await temporal_env.connect_client(data_converter=pydantic_data_converter)
    raw = await plain.get_workflow_handle(handle.id).fetch_history()
    wire = _wire(raw.events)
    assert tag.encode() not in wire
    assert b"Encoded failure" in wire
    decoded = await fetch_history(client, handle.id)
    assert decoded.history is not None and comment.encode() in _wire(decoded.history.events)
    # Rejected at the gate, before fencing: onprem still the one writable server.
    assert assert_one_writer(lab) == "onprem"
