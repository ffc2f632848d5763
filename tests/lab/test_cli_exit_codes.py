"""A command's exit code is a contract: the real CLI, as its own process, run again and again
on every path a script meets (succeeded, held, failed, refused, Temporal unreachable), exits
with the documented code every time and never dies in the interpreter's teardown under the
SDK's threads (``Fatal Python error: PyGILState_Release``, then SIGABRT or SIGSEGV: sdk-python
issue #300, seen on about half of the held failovers before ``hybridops.client.exit_now``)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass

from temporalio.client import Client

from hybridops.cli.common import EXIT_CANNOT, EXIT_FAILED
from hybridops.inventory import TemporalSettings, write_inventory
from hybridops.lab import Lab
from tests.conftest import TEST_NET, lab_inventory
from tests.lab.helpers import ask, assert_one_writer, dns_points_at, eventually

TIMES = 5
"""How often each path runs: the crash came about every other exit."""

CRASH_SIGNS = ("Fatal Python error", "Segmentation fault", "Aborted", "Traceback")


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def cli(lab: Lab, *args: str, inventory: str | None = None) -> Ran:
    """``hybridops ARGS`` as its own process on the lab's inventory (or ``inventory``), without
    blocking this loop: the test's workers run in it."""
    env = {
        **os.environ,
        **lab.env(),
        "HYBRIDOPS_INVENTORY": inventory or str(lab.root / "inventory.yaml"),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hybridops.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def exits(ran: Ran, code: int, said: str, path: str) -> None:
    """The documented code, what the path says, and no sign of a crash on the way out."""
    assert ran.code == code, f"{path}: exit {ran.code}, not {code}\n{ran.out}\n{ran.err}"
    assert said in ran.out + ran.err, f"{path}: {said!r} not said\n{ran.out}\n{ran.err}"
    crash = [sign for sign in CRASH_SIGNS if sign in ran.err]
    assert not crash, f"{path}: {crash} on the way out\n{ran.err}"


async def test_every_path_exits_with_its_code_every_time(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    with socket.socket() as closed:
        closed.bind((f"{TEST_NET}.0.1", 0))
        host, port = closed.getsockname()
        away = lab.root / "inventory-temporal-away.yaml"
        write_inventory(inv.model_copy(update={"temporal": TemporalSettings(address=f"{host}:{port}")}), away)
        for _ in range(TIMES):
            # held: the primary is healthy, so the run stops before changing anything
            exits(await cli(lab, "failover"), EXIT_FAILED, "failover held", "held")
            # refused: bad input names the option and starts nothing
            exits(await cli(lab, "failover", "--target", "nowhere"), EXIT_CANNOT, "--target", "refused")
            # Temporal unreachable: one line, the address
            ran = await cli(lab, "failover", inventory=str(away))
            exits(ran, EXIT_CANNOT, f"cannot reach Temporal at {host}:{port}", "unreachable")
            # succeeded, a command that reads and ends well
            exits(await cli(lab, "decide"), 0, "candidates", "decide")
    assert dns_points_at(lab) == "onprem" and assert_one_writer(lab) == "onprem"

    # succeeded, a runbook (once: a failover leaves the old primary fenced, and the other
    # standby on the old timeline, so it is not run back and forth)
    ran = await cli(lab, "failover", "--planned", "--target", "azure")
    exits(ran, 0, "failover succeeded", "succeeded")
    assert assert_one_writer(lab) == "azure" and dns_points_at(lab) == "azure"
    # held again, now that azure is the primary: the reason is named
    ran = await cli(lab, "failover", "--planned", "--target", "azure")
    exits(ran, EXIT_FAILED, "the requested target azure is already the primary", "held on azure")
    assert assert_one_writer(lab) == "azure" and dns_points_at(lab) == "azure"


async def test_a_failed_run_exits_1_every_time(client: Client, lab: Lab, run_workers) -> None:
    """The promotion fails (an injected fault): the run compensates, exit 1, each time, and
    the lab is as it was."""
    inv = lab_inventory(lab, faults={"promote_standby": "fail"})
    await run_workers(client, inv)
    for _ in range(TIMES):
        ran = await cli(lab, "failover", "--planned", "--target", "azure")
        exits(ran, EXIT_FAILED, "failover compensated", "compensated")
        # The lab as it was: onprem the one writer, DNS at it, and azure streaming from it
        # again. The compensation restarts onprem; azure reconnects on its own a moment
        # later, and a run started before it does would find no fit standby (a restore).
        assert dns_points_at(lab) == "onprem" and assert_one_writer(lab) == "onprem"
        await eventually("azure streaming from onprem again", lambda: _streaming(lab, "azure"))
    assert dns_points_at(lab) == "onprem" and assert_one_writer(lab) == "onprem"


async def _streaming(lab: Lab, site: str) -> bool:
    """``site`` answers, streams, and has replayed all it received (the decision's standby
    and lag signals read from the server)."""
    row = ask(  # None while it restarts
        lab,
        site,
        "SELECT (SELECT status FROM pg_stat_wal_receiver),"
        " pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()",
    )
    return row is not None and row[0] == "streaming" and bool(row[1])
