"""``hybridops worker`` and ``hybridops serve ...``: the long-running processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from hybridops.cli.common import fail, inventory
from hybridops.cli.failures import command_group
from hybridops.constants import TaskQueue

serve_app = command_group("Long-running services.")


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


METRICS_HELP = "Serve this process's metrics on http://HOST:PORT/metrics (none by default)"


def worker(
    queue: Annotated[list[str] | None, typer.Option(help="Task queue(s) to serve; all by default")] = None,
    site: Annotated[
        list[str] | None,
        typer.Option(
            help="Be the agent of this site (its queue hybridops-db-SITE); run it on the server's host"
        ),
    ] = None,
    metrics_listen: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
) -> None:
    """Run a worker serving the task queues, or a site's agent (``python -m workers``, which
    this becomes)."""
    try:
        queues = [TaskQueue(q) for q in queue] if queue else ([] if site else list(TaskQueue))
    except ValueError:
        fail(f"queue: one of {[q.value for q in TaskQueue]}")
    inv = inventory()  # a bad inventory fails here, naming the key; the lab's environment is set
    for name in site or []:
        if name not in inv.sites:
            fail(f"site: {name!r} is not a site of the inventory ({sorted(inv.sites)})")
    args = [arg for q in queues for arg in ("--queue", q.value)]
    args += [arg for name in site or [] for arg in ("--site", name)]
    if metrics_listen is not None:
        args += ["--metrics-listen", metrics_listen]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "workers", *args])


@serve_app.command("alerts")
def serve_alerts(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default: alerts.listen)")] = None,
    metrics_listen: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
) -> None:
    """The Alertmanager webhook receiver: starts runbooks from alerts (one run per incident)."""
    from hybridops.alerts.receiver import serve_alerts as serve

    _log_to_stderr()
    asyncio.run(_with_metrics(metrics_listen, serve(inventory(), listen), sdk=True))


@serve_app.command("codec")
def serve_codec(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default: temporal.codec.listen)")] = None,
    metrics_listen: Annotated[str | None, typer.Option(help=METRICS_HELP)] = None,
) -> None:
    """The codec server for the Temporal UI and CLI: decrypts payloads for bearer-token holders."""
    from hybridops.codec_server import serve_codec as serve

    _log_to_stderr()
    # The codec server has no Temporal client: its endpoint has HybridOps' metrics only.
    asyncio.run(_with_metrics(metrics_listen, serve(inventory(), listen), sdk=False))


async def _with_metrics(listen: str | None, service: Coroutine[Any, Any, None], sdk: bool) -> None:
    """Run ``service`` with the process's metrics endpoint on ``listen`` (None: none)."""
    from hybridops.errors import ConfigError
    from hybridops.metrics import start_metrics

    try:
        endpoint = start_metrics(listen, sdk=sdk)
    except ConfigError as err:
        service.close()
        fail(str(err))
    try:
        await service
    finally:
        if endpoint is not None:
            endpoint.cancel()
