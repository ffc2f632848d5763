"""``python -m workers [--queue Q ...] [--metrics-listen HOST:PORT]``: the worker process, one
per host or per queue. With ``--metrics-listen`` it serves its metrics (hybridops/metrics.py),
and a worker of the control queue also reads the runs' state for them (workers/observe.py).

The inventory comes from ``$HYBRIDOPS_INVENTORY`` (or the default path), as for every
HybridOps process. ``hybridops worker`` checks its arguments and the inventory, then becomes
this process (``exec``), so the command line never imports the workers it starts.

Exit codes: 2 when it cannot run (bad queue, inventory, Temporal unreachable), with one
``error:`` line; otherwise it serves until interrupted (0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from hybridops.client import connect, exit_now, unreachable_reason
from hybridops.constants import TaskQueue
from hybridops.errors import ConfigError
from hybridops.inventory import load_inventory
from hybridops.metrics import start_metrics
from workers.main import run_workers
from workers.observe import observe


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/unit/test_stack.py checks the compose file's commands against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m workers", description="A HybridOps worker: serves task queues."
    )
    parser.add_argument(
        "--queue",
        action="append",
        choices=[q.value for q in TaskQueue],
        help="a task queue to serve (repeat for several); all by default, none with --site",
    )
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        help="be the agent of this site (repeat for several): serve its queue, hybridops-db-SITE,"
        " with the steps that touch its server and files; run it on the server's host",
    )
    parser.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve the SDK's and HybridOps' metrics on http://HOST:PORT/metrics; none by default",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queues = [TaskQueue(q) for q in args.queue] if args.queue else ([] if args.site else list(TaskQueue))
    try:
        inv = load_inventory()
        for site in args.site:
            inv.site(site)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    async def serve() -> None:
        try:
            # Before the client connects: the SDK's runtime is built with its exporter.
            endpoint = start_metrics(args.metrics_listen)
        except ConfigError as err:
            raise SystemExit(f"error: {err}") from None
        try:
            client = await connect(inv.temporal)
        except RuntimeError as err:
            reason = unreachable_reason(err)
            if reason is None:
                raise
            raise SystemExit(f"error: cannot reach Temporal at {inv.temporal.address} ({reason})") from None
        tasks = [run_workers(client, inv, queues, args.site)]
        if endpoint is not None and TaskQueue.CONTROL in queues:
            tasks.append(observe(client, inv))
        await asyncio.gather(*tasks)

    try:
        asyncio.run(serve())
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    exit_now(main())
