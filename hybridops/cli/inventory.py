"""``hybridops inventory check``: an inventory validated offline, before anyone relies on it.

Schema and references (every key named when wrong), each site's driver and agent queue, every
secret reference well-formed (``--resolve`` also resolves them here, printing none), and, per
runbook and target, whether the drivers offer every capability the runbook needs (DESIGN.md
rule 14): the same check a run makes before its first change.

Exit codes: 0 the inventory is valid and every runbook is ready; 1 the inventory is valid, but
a runbook is not ready: a capability it needs is missing (the report names the site or
component, the driver and the capability), and its runs would refuse before their first
change, until a driver that offers it is configured; 2 the inventory is not valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from drivers.lazy import Drivers
from drivers.secrets import resolve_reference
from drivers.secrets.stores import STORES
from hybridops.capabilities import runbook_needs, unmet
from hybridops.cli.common import EXIT_CANNOT, EXIT_FAILED, console, fail, print_json
from hybridops.cli.failures import command_group
from hybridops.errors import ConfigError
from hybridops.inventory import AppsVia, Inventory, PostgresKind, inventory_path, load_inventory
from hybridops.policy import load_policy
from hybridops.secrets import SCHEMES as KERNEL_SCHEMES
from hybridops.secrets import references

SCHEMES = (*KERNEL_SCHEMES, *STORES)
"""Every kind of secret reference: the kernel's and the stores' (drivers/secrets)."""

inventory_app = command_group("The inventory: what the platform is made of.")


class RunbookCheck(BaseModel):
    """Whether one runbook, in one direction, has what it needs."""

    runbook: str
    ready: bool
    missing: list[str] = []
    """Capabilities it needs and no driver offers: the run would refuse before any change."""
    without: list[str] = []
    """Best-effort steps it would skip (and say so)."""


def runbook_checks(inv: Inventory, offered: dict[str, Any], drivers: dict[str, str]) -> list[RunbookCheck]:
    """Each runbook the inventory can run, in each direction, against what its drivers offer."""
    home = next(name for name, s in inv.sites.items() if s.cloud is None)
    clouds = [name for name, s in inv.sites.items() if s.cloud is not None]
    plans = runbook_needs(home, clouds, bool(inv.apps) and inv.app_database.via == AppsVia.INFRA)
    out = []
    for runbook, needs in plans:
        missing, without = unmet(needs, offered, drivers)
        out.append(RunbookCheck(runbook=runbook, ready=not missing, missing=missing, without=without))
    return out


def site_line(inv: Inventory, name: str) -> str:
    site = inv.site(name)
    kind = inv.site_driver(name)
    where = (
        f"cluster {site.cnpg.cluster} in {site.cnpg.namespace}"
        if kind == PostgresKind.CNPG and site.cnpg
        else ""
    )
    where = where or (f"data directory {site.data_dir}" if site.data_dir else "")
    place = site.cloud.value if site.cloud else "on-prem"
    return f"{name} ({place}): {kind.value}, queue {inv.site_queue(name)}" + (f", {where}" if where else "")


@inventory_app.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(help="The inventory file (default: $HYBRIDOPS_INVENTORY, else the lab's)")
    ] = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="The inventory file, as an option (instead of FILE)")
    ] = None,
    resolve: Annotated[
        bool, typer.Option(help="Also resolve every secret reference here (values are never printed)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Validate an inventory offline: schema, references, and per runbook whether its drivers
    can do what it needs. Exit 0: valid, every runbook ready; 1: valid, a runbook not ready (a
    missing capability, named: its runs refuse before any change); 2: not valid."""
    if file is not None and inventory is not None and file != inventory:
        fail(f"two inventories: {file} and --inventory {inventory}; give one")
    path = file or inventory or inventory_path()
    try:
        inv = load_inventory(path)
        load_policy(inv.policy)
        offered, drivers = Drivers(inv).offered()
    except ConfigError as err:
        fail(str(err))
    refs = references(inv)
    problems = [
        f"{key}: {ref!r} has no known scheme ({', '.join(s + ':' for s in SCHEMES)})"
        for key, ref in refs
        if ref.partition(":")[0] not in SCHEMES
    ]
    if resolve and not problems:
        for _key, ref in refs:
            try:
                resolve_reference(ref)
            except ConfigError as err:
                problems.append(str(err))
    checks = runbook_checks(inv, offered, drivers)
    if as_json:
        print_json(
            {
                "inventory": str(path),
                "valid": not problems,
                "problems": problems,
                "sites": {n: inv.site_driver(n).value for n in inv.sites},
                "capabilities": offered,
                "drivers": drivers,
                "runbooks": [c.model_dump() for c in checks],
            }
        )
    else:
        console.print(
            f"inventory {path}: {'valid' if not problems else 'NOT valid'} (placement {inv.placement.value})"
        )
        for name in inv.sites:
            console.print(f"  {site_line(inv, name)}", highlight=False, soft_wrap=True)
        console.print(
            f"  secret references: {len(refs)}" + (", resolved" if resolve and not problems else "")
        )
        for problem in problems:
            console.print(f"  [red]problem:[/red] {problem}", highlight=False, soft_wrap=True)
        for c in checks:
            verdict = "[green]ready[/green]" if c.ready else "[red]not ready[/red]"
            console.print(f"{c.runbook}: {verdict}", highlight=False)
            for line in c.missing:
                console.print(f"  missing: {line}", highlight=False, soft_wrap=True)
            for line in c.without:
                console.print(f"  without: {line}", highlight=False, soft_wrap=True)
        waiting = [c.runbook for c in checks if not c.ready]
        if waiting and not problems:
            console.print(
                f"valid; not ready: {', '.join(waiting)} (exit {EXIT_FAILED}: each of these runs would"
                " refuse before its first change, naming what is missing)",
                highlight=False,
                soft_wrap=True,
            )
    if problems:
        raise typer.Exit(EXIT_CANNOT)
    if not all(c.ready for c in checks):
        raise typer.Exit(EXIT_FAILED)
