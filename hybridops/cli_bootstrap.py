"""``hybridops bootstrap``: the control node's zero-touch bring-up."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from hybridops.cli import _inventory, console, run_and_watch
from hybridops.constants import WorkflowType
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult, BootstrapStep


def bootstrap(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ansible check mode, Packer validate")] = False,
    step: Annotated[list[BootstrapStep] | None, typer.Option(help="Only these steps (repeat)")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bring up the control node: network, images, RKE2, Jenkins, GitOps. Run it again after a
    failure: converged steps report unchanged."""
    inv = _inventory()
    inp = BootstrapInput(
        dry_run=dry_run, steps=step or list(BootstrapStep), requested_by=os.environ.get("USER", "cli")
    )
    wf_id = f"bootstrap-{datetime.now(UTC):%Y%m%dT%H%M%S}"

    data = run_and_watch(inv, WorkflowType.BOOTSTRAP, inp, wf_id, BootstrapResult, json_out)
    if not json_out:
        console.print(f"\nbootstrap {data.get('status')}: evidence {data.get('evidence_dir')}")
        if data.get("error"):
            console.print(f"  error: {data['error']}")
    if data.get("status") != "succeeded":
        raise typer.Exit(1)
