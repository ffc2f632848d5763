"""The one place a failure a user meets becomes one clear line and an exit code.

Every command group is made with :func:`command_group`, whose commands run inside
:meth:`GuardedGroup.invoke`: a known failure (the inventory, an input, Temporal unreachable or
refusing, a run that failed) prints ``error: ...`` and exits with :data:`common.EXIT_CANNOT`
(2) or, for a run that failed, :data:`common.EXIT_FAILED` (1). Anything else is a bug and keeps
its traceback, as does every failure with ``HYBRIDOPS_DEBUG`` set.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from pydantic import ValidationError
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from typer.core import TyperGroup

from hybridops.cli.common import EXIT_CANNOT, EXIT_FAILED, fail, temporal_address
from hybridops.errors import HybridOpsError

DEBUG_ENV = "HYBRIDOPS_DEBUG"
"""Set (to anything) to get a failure's traceback instead of its one line."""


def explain(err: Exception) -> tuple[str, int] | None:
    """The line and the exit code for ``err``; None when it is not a failure a user meets
    (a bug: its traceback is what to report)."""
    if isinstance(err, HybridOpsError):  # the inventory, an input, Temporal unreachable, ...
        return str(err), EXIT_CANNOT
    if isinstance(err, ValidationError):
        return invalid_input(err), EXIT_CANNOT
    if isinstance(err, WorkflowAlreadyStartedError):
        return f"a run with id {err.workflow_id} already exists: give another --id", EXIT_CANNOT
    if isinstance(err, WorkflowFailureError):
        return f"the run failed: {cause_of(err.cause)}", EXIT_FAILED
    if isinstance(err, WorkflowUpdateFailedError):
        return f"refused by the run: {cause_of(err.cause)}", EXIT_CANNOT
    if isinstance(err, WorkflowQueryRejectedError | WorkflowQueryFailedError):
        return f"the run did not answer: {err}", EXIT_CANNOT
    if isinstance(err, ApplicationError):  # an activity called here (decide, backup push)
        return cause_of(err), EXIT_CANNOT
    if isinstance(err, RPCError):
        return rpc_failure(err), EXIT_CANNOT
    if isinstance(err, RPCTimeoutOrCancelledError):
        where = temporal_address() or "the inventory's temporal.address"
        return f"Temporal at {where} did not answer in time: {err}", EXIT_CANNOT
    if isinstance(err, OSError):  # a file or a socket of this machine
        return str(err), EXIT_CANNOT
    return None


def invalid_input(err: ValidationError) -> str:
    """``invalid BurstInput: traffic_share: Input should be ... (got 500)``: each field that
    is wrong, by name. Only numbers are echoed (a string may be anything, a secret too)."""
    problems = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(the input)"
        got = e.get("input")
        shown = f" (got {got!r})" if isinstance(got, bool | int | float) else ""
        problems.append(f"{where}: {e['msg']}{shown}")
    return f"invalid {err.title}: " + "; ".join(problems)


def cause_of(err: BaseException | None) -> str:
    """The innermost message of a failure chain (the activity's error under the workflow's)."""
    while isinstance(err, FailureError) and err.cause is not None:
        err = err.cause
    if isinstance(err, ApplicationError) and err.type:
        return f"{err.type}: {err.message}"
    if isinstance(err, FailureError):
        return err.message
    return str(err)


def rpc_failure(err: RPCError) -> str:
    where = temporal_address() or "the inventory's temporal.address"
    if err.status == RPCStatusCode.UNAVAILABLE:
        return f"lost the connection to Temporal at {where}: {err.message}"
    if err.status == RPCStatusCode.NOT_FOUND:
        return err.message
    return f"Temporal at {where} refused: {err.status.name if err.status else 'error'}: {err.message}"


class GuardedGroup(TyperGroup):
    """A command group whose commands' known failures end as one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise  # an exit code already chosen, or ^C: as Typer ends them
        except Exception as err:  # usage errors are not among explain's, and end as Typer says
            known = explain(err)
            if known is None or os.environ.get(DEBUG_ENV):
                raise
            fail(*known)


def command_group(help: str, no_args_is_help: bool = True) -> typer.Typer:
    """A Typer app (or sub-app) whose commands fail as :func:`explain` says."""
    return typer.Typer(
        cls=GuardedGroup, help=help, no_args_is_help=no_args_is_help, pretty_exceptions_enable=False
    )
