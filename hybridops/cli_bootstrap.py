"""``hybridops bootstrap``: the control node's zero-touch bring-up."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hybridops.bootstrap_models import BootstrapInput, BootstrapResult, BootstrapStep
from hybridops.cli import _inventory, _run, _ui_link, console, watch
from hybridops.client import connect
from hybridops.constants import TaskQueue, WorkflowType


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

    async def main() -> dict[str, Any]:
        client = await connect(inv.temporal)
        handle = await client.start_workflow(
            WorkflowType.BOOTSTRAP.value,
            inp,
            id=wf_id,
            task_queue=inv.queue(TaskQueue.CONTROL),
            result_type=BootstrapResult,
        )
        if not json_out:
            console.print(f"started {wf_id}: {_ui_link(inv, wf_id)}")
        return await watch(handle, quiet=json_out)

    data = _run(main())
    if json_out:
        print(json.dumps(data, indent=2))
    else:
        console.print(f"\nbootstrap {data.get('status')}: evidence {data.get('evidence_dir')}")
        if data.get("error"):
            console.print(f"  error: {data['error']}")
    if data.get("status") != "succeeded":
        raise typer.Exit(1)
