"""Where histories come from: exported ``history.json`` files, or the Temporal server.

A history file is the JSON the server exports (``WorkflowHistory.to_json``, the UI's and the
``temporal`` CLI's download): an evidence folder's ``history.json``, or a stored history
``<name>.history.json`` (``tests/histories/``). The JSON does not always carry the workflow
id; the started event's ``workflow_id`` is used when present, else the name: the evidence
folder's (``<workflow-id>/history.json``) or the file's (``<workflow-id>.history.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import PayloadCodec

from hybridops.codec import decode_history
from hybridops.errors import HybridOpsError

HISTORY_FILE = "history.json"
"""An evidence folder's export of the run's history."""
HISTORY_SUFFIX = ".history.json"
"""A stored history's file name ends so (``tests/histories/``)."""


@dataclass
class HistorySource:
    """One history to audit, or why it could not be read."""

    label: str
    """Where it came from: a file path, or ``server:<workflow id>``."""
    workflow_id: str
    history: WorkflowHistory | None = None
    error: str = ""
    sealed: WorkflowHistory | None = None
    """The history as stored, when ``history`` is its decryption (:func:`decrypted`)."""

    @property
    def workflow_type(self) -> str:
        """The workflow type on the history's start event ('' when unreadable)."""
        if self.history is None or not self.history.events:
            return ""
        first = self.history.events[0]
        if not first.HasField("workflow_execution_started_event_attributes"):
            return ""
        return first.workflow_execution_started_event_attributes.workflow_type.name

    @property
    def run_id(self) -> str:
        if self.history is None or not self.history.events:
            return ""
        first = self.history.events[0]
        return first.workflow_execution_started_event_attributes.original_execution_run_id


def workflow_id_for(path: Path) -> str:
    """The workflow id a history file's name implies."""
    if path.name == HISTORY_FILE:
        return path.parent.name
    if path.name.endswith(HISTORY_SUFFIX):
        return path.name.removesuffix(HISTORY_SUFFIX)
    return path.stem


def is_history_file(path: Path) -> bool:
    return path.is_file() and (path.name == HISTORY_FILE or path.name.endswith(HISTORY_SUFFIX))


def find_history_files(root: Path) -> list[Path]:
    """Every history file under ``root`` (or ``root`` itself when it is one), sorted."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.json") if is_history_file(p))


def load_history_file(path: Path) -> HistorySource:
    """Read one history file; an unreadable one is returned with its error, never raised."""
    fallback = workflow_id_for(path)
    try:
        data = json.loads(path.read_text())
        history = WorkflowHistory.from_json(fallback, data)
    except (OSError, ValueError, TypeError, AttributeError) as err:  # json and protobuf parse errors
        return HistorySource(str(path), fallback, error=f"unreadable history: {err}")
    if not history.events or not history.events[0].HasField("workflow_execution_started_event_attributes"):
        return HistorySource(str(path), fallback, error="not a workflow history (no start event)")
    wf_id = history.events[0].workflow_execution_started_event_attributes.workflow_id or fallback
    return HistorySource(str(path), wf_id, WorkflowHistory(wf_id, history.events))


def load_history_files(paths: Iterable[Path]) -> list[HistorySource]:
    return [load_history_file(p) for p in paths]


async def fetch_history(client: Client, workflow_id: str, run_id: str | None = None) -> HistorySource:
    """The run's history from the server (the latest run when ``run_id`` is None)."""
    label = f"server:{workflow_id}" + (f"/{run_id}" if run_id else "")
    try:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except Exception as err:  # not found, no permission: reported per id
        return HistorySource(label, workflow_id, error=f"cannot fetch history: {err}")
    return await decrypted(HistorySource(label, workflow_id, history), client.data_converter.payload_codec)


async def decrypted(src: HistorySource, codec: PayloadCodec | None) -> HistorySource:
    """``src`` with its payloads decrypted by the inventory's codec (:mod:`hybridops.codec`),
    so the audit reads it as plain JSON; as it is without a codec or a history. A payload
    sealed by a key no longer configured makes it unreadable, with the key id."""
    if codec is None or src.history is None:
        return src
    try:
        history = await decode_history(src.history, codec)
    except HybridOpsError as err:
        return HistorySource(src.label, src.workflow_id, error=f"cannot decrypt history: {err}")
    return HistorySource(src.label, src.workflow_id, history, sealed=src.history)


def closed_runs_query(workflow_types: Iterable[str]) -> str:
    """The visibility query for every closed run of ``workflow_types``."""
    types = " OR ".join(f"WorkflowType = '{t}'" for t in sorted(workflow_types))
    return f"({types}) AND ExecutionStatus != 'Running'"


async def fetch_closed_runs(client: Client, workflow_types: Iterable[str]) -> list[HistorySource]:
    """The history of every closed run of ``workflow_types`` that visibility lists."""
    out = []
    async for execution in client.list_workflows(closed_runs_query(workflow_types)):
        out.append(await fetch_history(client, execution.id, execution.run_id))
    return out
