"""The ``hybridops`` command line: the top layer, above everything else in the repository.

The app is put together here from a module per command group, named after its runbook where
it has one (:mod:`.failover`, :mod:`.failback`, :mod:`.drill`, :mod:`.burst`,
:mod:`.bootstrap`), plus the lab, the long-running services, any run's approve and status,
the decision and the audit. They share :mod:`.common`; a failure ends as one line and an exit
code in :mod:`.failures`. No command module imports this one.

Exit codes: 0 done; 1 the run did not succeed, or what the command checks is not well (an
audit finding, drills overdue, a decision to hold); 2 the command could not run (bad
arguments, input or inventory, Temporal unreachable, no such run).
"""

from __future__ import annotations

import sys

from hybridops.cli import (
    audit,
    bootstrap,
    burst,
    decide,
    drill,
    failback,
    failover,
    inventory,
    lab,
    ready,
    runs,
    serve,
)
from hybridops.cli.failures import command_group
from hybridops.client import exit_now

app = command_group("HybridOps: DR and cloud-bursting runbooks as Temporal workflows.")

app.command()(failover.failover)
app.command()(failback.failback)
app.command()(bootstrap.bootstrap)
app.command()(decide.decide)
app.command()(ready.ready)
app.command()(runs.approve)
app.command()(runs.status)
app.command()(runs.pause)
app.command()(runs.resume)
app.command()(runs.retry)
app.command()(runs.skip)
app.command()(lab.demo)
app.command()(serve.worker)
app.add_typer(lab.lab_app, name="lab")
app.add_typer(serve.serve_app, name="serve")
app.add_typer(drill.drill_app, name="drill")
app.add_typer(drill.backup_app, name="backup")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(burst.burst_app, name="burst")
app.add_typer(inventory.inventory_app, name="inventory")


def main() -> None:
    """The console script: run the app, then leave at once with its exit code.

    The exit code is a contract scripts rely on: :func:`hybridops.client.exit_now` says why
    the process does not finalize."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code
    if isinstance(code, str):  # SystemExit("message"): print it as Python would
        print(code, file=sys.stderr)
        code = 1
    exit_now(code or 0)


__all__ = ["app", "main"]
