"""``hybridops bootstrap``: the control node's zero-touch bring-up."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from hybridops.cli.common import RunEnding, inventory, print_ending, print_headline, run_runbook
from hybridops.constants import WorkflowType
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult, BootstrapStep
from hybridops.inventory import Inventory


def print_bootstrap_summary(ending: RunEnding[BootstrapResult], inv: Inventory) -> None:
    """A bootstrap's outcome and its error (its steps were shown as they passed)."""
    dry_run = ending.result is not None and ending.result.input.dry_run
    print_headline(ending, "bootstrap", ("dry run:", "yes" if dry_run else None))
    print_ending(ending, inv)


def bootstrap(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ansible check mode, Packer validate")] = False,
    step: Annotated[list[BootstrapStep] | None, typer.Option(help="Only these steps (repeat)")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bring up the control node: network, images, RKE2, Jenkins, GitOps. Run it again after a
    failure: converged steps report unchanged."""
    inv = inventory()
    inp = BootstrapInput(
        dry_run=dry_run, steps=step or list(BootstrapStep), requested_by=os.environ.get("USER", "cli")
    )
    wf_id = f"bootstrap-{datetime.now(UTC):%Y%m%dT%H%M%S}"

    run_runbook(inv, WorkflowType.BOOTSTRAP, inp, wf_id, BootstrapResult, json_out, print_bootstrap_summary)
