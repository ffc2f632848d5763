"""Capabilities are checked before the first change (DESIGN.md rule 14): a runbook that needs
one its inventory's drivers do not offer refuses, naming the site or component, the driver and
the capability, and nothing changes (topology and DNS as before)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.failback import FailbackResult
from hybridops.inventory import InfraKind, InfraSettings, TerraformSettings
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer, dns_points_at, fenced, role, start


def untouched(lab: Lab) -> None:
    assert dns_points_at(lab) == "onprem"
    assert role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    assert not fenced(lab, "onprem")
    assert not (lab.root / "clusters" / "azure.json").exists()
    assert assert_one_writer(lab) == "onprem"


async def refusal(handle: Any) -> str:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details: dict[str, Any] = failure.value.cause.details[0]  # type: ignore[attr-defined]
    assert details["point_of_no_return_passed"] is False
    assert all(s["outcome"] != "changed" for s in details["steps"]), details["steps"]
    error: str = details["error"]
    return error


async def test_failover_refuses_an_infra_driver_that_cannot_repoint_apps(
    client: Client, lab: Lab, run_workers: Any, tmp_path: Any
) -> None:
    """``infra: terraform`` repoints no apps (that is GitOps' job): a failover with apps to
    repoint refuses at its decision, before it fences or promotes anything."""
    (tmp_path / "roots" / "azure").mkdir(parents=True)
    infra = InfraSettings(
        driver=InfraKind.TERRAFORM,
        terraform=TerraformSettings(config_root=tmp_path / "roots", work_root=tmp_path / "work"),
    )
    inv = lab_inventory(lab, infra=infra)
    await run_workers(client, inv)
    error = await refusal(await start(client, inv, {"target": "azure", "only_if_primary_down": False}))
    assert "CapabilityMissing" in error or "capability" in error
    assert "infra (TerraformInfraDriver) has no 'repoint_apps' capability" in error
    assert "nothing was changed" in error
    untouched(lab)


async def test_failover_without_apps_needs_no_repoint(
    client: Client, lab: Lab, run_workers: Any, tmp_path: Any
) -> None:
    """The same inventory with no apps to repoint passes the check: what is refused is only
    what is needed (here the run then fails at prepare_target, whose terraform binary is
    missing: a configuration error, not retried; still nothing changed)."""
    (tmp_path / "roots" / "azure").mkdir(parents=True)
    infra = InfraSettings(
        driver=InfraKind.TERRAFORM,
        terraform=TerraformSettings(
            config_root=tmp_path / "roots", work_root=tmp_path / "work", binary=str(tmp_path / "no-terraform")
        ),
    )
    inv = lab_inventory(lab, infra=infra, apps=[])
    await run_workers(client, inv)
    error = await refusal(await start(client, inv, {"target": "azure", "only_if_primary_down": False}))
    assert "capability" not in error and "terraform binary" in error, error
    untouched(lab)


async def test_failback_refuses_when_home_cannot_rejoin(
    client: Client, lab: Lab, run_workers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home site whose driver can neither rewind nor re-clone cannot become a standby again:
    the failback refuses before it touches anything, naming the site and the driver."""
    from drivers.postgres.local import LocalPostgresDriver
    from hybridops.capabilities import Capability

    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem", agent=False)
    result = await (await start(client, inv, {"target": "azure"})).result()
    assert result.status == "succeeded" and dns_points_at(lab) == "azure"
    lab.pg_start("onprem")  # back, fenced: read-only
    monkeypatch.setattr(
        LocalPostgresDriver,
        "capabilities",
        LocalPostgresDriver.capabilities - {Capability.REWIND, Capability.RECLONE},
    )
    handle = await client.start_workflow(
        WorkflowType.FAILBACK.value,
        {},
        id=f"test-failback-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=FailbackResult,
    )
    error = await refusal(handle)
    assert "sites.onprem (LocalPostgresDriver) has no 'rewind' or 'reclone' capability" in error
    assert dns_points_at(lab) == "azure" and assert_one_writer(lab) == "azure"
    assert fenced(lab, "onprem")
