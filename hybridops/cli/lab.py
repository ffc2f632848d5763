"""``hybridops lab ...`` and ``hybridops demo``: the embedded lab on this machine."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hybridops.cli.common import (
    EXIT_FAILED,
    console,
    err_console,
    fail,
    home_lab,
    print_topology,
    run_and_watch,
    watch_started,
)
from hybridops.cli.failover import print_summary
from hybridops.cli.failures import command_group
from hybridops.constants import WorkflowType
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.errors import HybridOpsError
from hybridops.inventory import INVENTORY_ENV, DnsKind

if TYPE_CHECKING:
    from hybridops.lab import Lab

lab_app = command_group("The embedded lab on this machine.")
signals_app = command_group(
    "The lab's fake cloud signals (billing, capacity, app metrics).", no_args_is_help=False
)
lab_app.add_typer(signals_app, name="signals")


def _lab() -> Lab:
    return home_lab()


def _print_lab_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err_console.print(f"[bold red]WARNING:[/bold red] [red]{warning}[/red]")


@lab_app.command("up")
def lab_up(
    writer: bool = True,
    monitoring: Annotated[
        bool | None,
        typer.Option("--monitoring/--no-monitoring", help="Prometheus, Alertmanager; default: if installed"),
    ] = None,
    dns: Annotated[
        DnsKind | None,
        typer.Option(
            "--dns",
            help="route53 (moto's Route53 API) or rfc2136 (a real BIND, TSIG updates, the writer"
            " resolving through DNS); default: as the lab last ran, else $HYBRIDOPS_LAB_DNS, else route53",
        ),
    ] = None,
) -> None:
    """Start Temporal, PostgreSQL (primary + 2 standbys), DNS, monitoring, a worker and the writer."""
    lab = _lab()
    inv = lab.up(writer=writer, monitoring=monitoring, first_backup=True, dns=dns)
    console.print(f"lab up; inventory {lab.root / 'inventory.yaml'}")
    if lab.monitored:
        mon = lab.monitoring
        console.print(f"Prometheus: {mon.prometheus_url}  Alertmanager: {mon.alertmanager_url}")
    console.print(f"Temporal UI: {inv.temporal.ui_url}")
    if lab.dns_stale:
        err_console.print(f"[yellow]{lab.dns_note}[/yellow]")
    else:
        console.print(lab.dns_note)
    # The lab is up (exit 0), but a split brain must be impossible to miss.
    _print_lab_warnings(lab.warnings())
    # The rest is up; a server that could not start is named with why, and the exit says so.
    for reason in lab.sites_down.values():
        err_console.print(f"error: {reason}", markup=False, highlight=False, soft_wrap=True)
    if lab.sites_down:
        raise typer.Exit(EXIT_FAILED)


@lab_app.command("down")
def lab_down() -> None:
    """Stop everything the lab started."""
    _lab().down()
    console.print("lab down")


@lab_app.command("status")
def lab_status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each part of the lab, and the role of each database."""
    lab = _lab()
    status = lab.status()
    if json_out:
        print(json.dumps(status, indent=2))
        return
    table = Table("part", "state")
    for k, v in status.items():
        if k not in ("root", "ports", "warnings", "addresses"):
            table.add_row(k, str(v))
    console.print(table)
    for name, url in status["addresses"].items():
        console.print(f"{name + ':':<18} {url}", highlight=False, soft_wrap=True)
    if "Prometheus" in status["addresses"]:
        from hybridops.lab.status import grafana_hint

        console.print(grafana_hint(status["addresses"]["Prometheus"]), highlight=False)
    if status.get("dns") == "running":
        # The same reading the runbooks make: every server asked, DNS asked, findings named.
        from drivers.lazy import Drivers

        os.environ.update(lab.env())
        print_topology(asyncio.run(Drivers(lab.inventory()).topology.read()))
    _print_lab_warnings(status["warnings"])


def _site(site: str, field: str = "site") -> str:
    if site not in ("onprem", "azure", "gcp"):
        fail(f"{field}: unknown site {site!r} (onprem, azure or gcp)")
    return site


@lab_app.command("break")
def lab_break(
    sites: Annotated[list[str], typer.Argument(help="The sites whose hosts die: onprem, azure, gcp")],
) -> None:
    """The disaster: kill each SITE's database server and agent (as if its host died). Two
    sites (``lab break onprem azure``) leave one standby: stop it too (``lab stop-server gcp``)
    and no standby is fit to promote, so the failover restores from the archive."""
    lab = _lab()
    for site in sites:
        _site(site, "sites")
    if len(set(sites)) != len(sites):
        fail("sites: a site is named twice")
    # The first one named is the incident's (its time is where the RTO counts from).
    for site in reversed(sites):
        at = lab.break_site(site)
        console.print(f"{site} killed at {at.isoformat()}")


@lab_app.command("stop-server")
def lab_stop_server(site: str) -> None:
    """Stop SITE's database server cleanly; its host and agent stay up. A stopped standby is
    not fit to promote (restore mode: the failover restores a backup there instead)."""
    _lab().postgres.stop_server(_site(site))
    console.print(f"{site}'s server stopped")


@lab_app.command("freeze")
def lab_freeze(
    site: Annotated[str, typer.Argument(help="The site whose server hangs: onprem, azure, gcp")],
    seconds: Annotated[
        float | None,
        typer.Option("--for", min=0.0, help="Thaw it after this many seconds (a blip); default: stay frozen"),
    ] = None,
) -> None:
    """A hung server: every process of SITE's server stopped (SIGSTOP), as a stuck disk or a
    paused VM leaves it: its port still accepts connections, nothing answers, its agent lives.
    Frozen past the policy's blip tolerance (2 s), the primary's agents find it silent and the
    failover alert starts a run, which isolates it; ``--for 2`` is a blip: it must start
    nothing. ``lab thaw`` wakes it."""
    lab = _lab()
    at = lab.freeze_site(_site(site))
    console.print(f"{site}'s server frozen at {at.isoformat()}")
    if seconds is None:
        return
    try:
        time.sleep(seconds)  # the freeze's length is the command's point
    finally:  # an interrupted blip is thawed too: nothing left frozen behind the command
        try:
            at = lab.thaw_site(site)
        except HybridOpsError:
            console.print(f"{site}'s server is not running now (a failover isolated it): nothing to thaw")
        else:
            console.print(f"{site}'s server thawed at {at.isoformat()}")


@lab_app.command("thaw")
def lab_thaw(site: Annotated[str, typer.Argument(help="The frozen site: onprem, azure, gcp")]) -> None:
    """Wake the server ``lab freeze`` stopped (SIGCONT). A failover may have isolated it
    meanwhile: then there is nothing to wake, and it says so."""
    at = _lab().thaw_site(_site(site))
    console.print(f"{site}'s server thawed at {at.isoformat()}")


@lab_app.command("cut")
def lab_cut(
    observer: Annotated[str, typer.Argument(help="The site whose agent is cut off: onprem, azure, gcp")],
    site: Annotated[
        str | None, typer.Argument(help="The server it no longer reaches; default: every other site's")
    ] = None,
) -> None:
    """A network partition: OBSERVER's agent no longer reaches SITE's server (its probes hang,
    as on a black-holed route); every other path stays up. One agent cut off from the primary
    is one view: it must start no failover. ``lab heal`` restores."""
    cut = _lab().cut(observer, site)
    console.print(f"cut: {', '.join(cut)}")


@lab_app.command("heal")
def lab_heal(
    observer: Annotated[str | None, typer.Argument(help="Whose links to heal; default: all")] = None,
    site: Annotated[str | None, typer.Argument(help="The server; default: every site's")] = None,
) -> None:
    """Restore the links ``lab cut`` cut (all of them by default)."""
    cut = _lab().heal(observer, site)
    console.print(f"still cut: {', '.join(cut)}" if cut else "no link cut")


@lab_app.command("load")
def lab_load(load: Annotated[float, typer.Argument(help="The on-prem load a burst reads, 0..1")]) -> None:
    """Set the lab's on-prem load (what a burst's hold loop reads)."""
    _lab().set_load(load)
    console.print(f"on-prem load: {load:g}")


@lab_app.command("reset")
def lab_reset() -> None:
    """Back to the starting topology (onprem primary, two standbys, DNS at onprem)."""
    _lab().reset()
    console.print("lab reset: onprem primary, azure and gcp standbys")


@signals_app.command("set")
def lab_signals_set(
    cloud: str,
    values: Annotated[list[str], typer.Argument(help="KEY=VALUE ..., e.g. credits=0 latency_ms=250")],
) -> None:
    """Change CLOUD's values; the lab's cloud exporter serves them from its next scrape."""
    parsed: dict[str, float] = {}
    for item in values:
        key, sep, value = item.partition("=")
        try:
            parsed[key] = float(value) if sep else float("nan")
        except ValueError:
            parsed[key] = float("nan")
        if parsed[key] != parsed[key]:
            fail(f"{item!r}: expected KEY=NUMBER")
    now = _lab().monitoring.set_signals(cloud, parsed)
    console.print(f"{cloud}: " + ", ".join(f"{k}={v:g}" for k, v in now.items()))


@signals_app.command("show")
def lab_signals_show() -> None:
    """The values the lab's cloud exporter serves."""
    lab = _lab()
    if not lab.monitoring.signals_file.exists():
        fail("no cloud signals yet: the lab has not run with monitoring (hybridops lab up --monitoring)")
    print(json.dumps(lab.monitoring.read_signals(), indent=2))


@lab_app.command("writer", hidden=True)
def lab_writer(seconds: float = 0.0) -> None:
    """Run the workload writer in the foreground."""
    from hybridops.lab.writer import main

    main(seconds or None)


DETECTION_WAIT_S = 30.0
"""How long the demo waits for the agents' alert to start the failover before it starts one."""


def demo(keep: bool = True) -> None:
    """The main job on the embedded lab: up, writer running, onprem killed, failover, summary."""
    lab = _lab()
    console.print("[bold]1. lab up[/bold] (Temporal, PostgreSQL onprem + azure + gcp, DNS, worker, writer)")
    if (lab.root / "pg").exists():  # a lab from an earlier run: back to the starting topology,
        lab.stop_code()  # with this checkout's code
        lab.reset()
    inv = lab.up(first_backup=True)
    os.environ[INVENTORY_ENV] = str(lab.root / "inventory.yaml")
    from hybridops.lab.processes import wait_until
    from hybridops.workload import read_ledger

    wait_until(
        "the writer's first 200 writes",
        lambda: lab.ledger.exists() and len(read_ledger(lab.ledger)) >= 200,
        timeout=60,
    )
    console.print(f"   writer running: {len(read_ledger(lab.ledger))} writes acknowledged on onprem")
    # With monitoring, the production path: the site agents see the primary take no write,
    # their alert starts the failover. Without it (its binaries missing), the demo starts it.
    detecting = lab.monitoring_running()
    if detecting:
        wait_until("every site agent watching onprem", lambda: lab.agents_watching("onprem"), timeout=60)
        console.print("   site agents watching: each writes to onprem 10 times a second")
    console.print("[bold]2. disaster[/bold]: hybridops lab break onprem")
    at = lab.break_site("onprem")
    console.print(f"   onprem killed at {at.isoformat()}")
    ending = None
    if detecting:
        console.print(
            "[bold]3. failover[/bold]: started by the agents' alert (HybridOpsPrimaryNotTakingWrites)"
        )
        ending = watch_started(inv, WorkflowType.FAILOVER, at, DETECTION_WAIT_S, FailoverResult)
        if ending is None:
            console.print(f"   no alert-started run within {DETECTION_WAIT_S:g} s: starting one")
    if ending is None:
        console.print("[bold]3. failover[/bold] (target auto)")
        inp = FailoverInput(incident_started_at=at, reason="demo: onprem killed", requested_by="make demo")
        wf_id = f"failover-demo-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        ending = run_and_watch(inv, WorkflowType.FAILOVER, inp, wf_id, FailoverResult, json_out=False)
    print_summary(ending, inv)
    console.print("\nThe lab is still running: explore the run in the Temporal UI.")
    console.print(
        "  hybridops lab status   |   hybridops lab reset   |   hybridops lab down   (or make down)"
    )
    if ending.status != "succeeded":
        raise typer.Exit(EXIT_FAILED)
