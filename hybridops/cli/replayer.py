"""The replayer of today's workflows, as the workers run them: what every replay goes through
(the audit's, the tests', the bench's). :mod:`hybridops.audit.replay` is handed
:func:`make_replayer`, so the audit stays below the workflows it replays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.worker import Replayer

from hybridops.client import DATA_CONVERTER
from workflows.identity import IdentityInterceptor
from workflows.registry import WORKFLOWS, workflow_runner


def current_workflows() -> list[type]:
    """The workflow classes the workers register today (``workflows.registry.WORKFLOWS``), so
    a new runbook is replayed as soon as a worker serves it."""
    return list(WORKFLOWS)


def make_replayer(workflows: Sequence[type] | None = None, data_converter: Any = DATA_CONVERTER) -> Replayer:
    """A replayer of ``workflows`` (default: :func:`current_workflows`) with the workers'
    interceptors too, since the identity of an approval decides what its handler does."""
    return Replayer(
        workflows=list(workflows) if workflows is not None else current_workflows(),
        data_converter=data_converter,
        interceptors=[IdentityInterceptor()],
        workflow_runner=workflow_runner(strict=True),
    )
