"""Capabilities (DESIGN.md rule 14): declared by the driver classes, recorded by the plan step,
checked before a run's first change, and reported by ``hybridops inventory check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from drivers.lazy import Drivers
from hybridops.capabilities import Capability, burst_needs, failback_needs, failover_needs, require, unmet
from hybridops.cli import app
from hybridops.errors import CapabilityMissing
from hybridops.inventory import InfraKind, load_inventory, parse_inventory
from workflows.steps import FENCE, FOLLOW, PROMOTE, Where

EXAMPLE = Path(__file__).parents[2] / "runbooks" / "inventory.example.yaml"
EVERYTHING = {
    "postgres:onprem": list(Capability),
    "postgres:gcp": list(Capability),
    "infra": list(Capability),
    "dns": list(Capability),
}
DRIVERS = {"postgres:onprem": "A", "postgres:gcp": "C", "infra": "I", "dns": "D"}


@pytest.mark.parametrize(
    ("component", "capability", "needs", "words"),
    [
        ("postgres:gcp", Capability.PROMOTE, failover_needs("gcp", "onprem", True), "promote gcp"),
        ("postgres:onprem", Capability.FENCE, failover_needs("gcp", "onprem", True), "fence onprem"),
        ("infra", Capability.PREPARE_CLUSTER, failover_needs("gcp", "onprem", True), "prepare gcp"),
        ("infra", Capability.REPOINT_APPS, failover_needs("gcp", "onprem", True), "point the apps at gcp"),
        (
            "postgres:gcp",
            Capability.SWITCHOVER,
            failback_needs("onprem", "gcp", False),
            "pause writes on gcp",
        ),
        ("postgres:onprem", Capability.PROMOTE, failback_needs("onprem", "gcp", False), "promote onprem"),
        ("dns", Capability.WEIGHTED, burst_needs(), "shift part of the traffic"),
        ("infra", Capability.NODE_POOLS, burst_needs(), "node pool"),
    ],
)
def test_each_missing_capability_is_named(
    component: str, capability: Capability, needs: list, words: str
) -> None:
    offered = {**EVERYTHING, component: [c for c in Capability if c != capability]}
    missing, _ = unmet(needs, offered, DRIVERS)
    assert len(missing) == 1, missing
    where = component.replace("postgres:", "sites.")
    assert missing[0].startswith(f"{where} ({DRIVERS[component]}) has no {capability.value!r} capability")
    assert words in missing[0]


def test_rejoin_needs_either_rewind_or_reclone() -> None:
    needs = failback_needs("onprem", "gcp", False)
    reclone_only = {**EVERYTHING, "postgres:onprem": [c for c in Capability if c != Capability.REWIND]}
    assert unmet(needs, reclone_only, DRIVERS) == ([], [])
    neither = [c for c in Capability if c not in (Capability.REWIND, Capability.RECLONE)]
    missing, without = unmet(
        needs, {**EVERYTHING, "postgres:onprem": neither, "postgres:gcp": neither}, DRIVERS
    )
    rejoin = "has no 'rewind' or 'reclone' capability, needed to rejoin"
    assert missing == [f"sites.onprem (A) {rejoin} onprem as a standby of gcp"]
    # The old primary's own rejoin is best effort: a warning, not a refusal.
    assert without == [f"sites.gcp (C) {rejoin} gcp as a standby of onprem"]


def test_a_history_without_capabilities_is_not_checked() -> None:
    assert unmet(failover_needs("gcp", "onprem", True), {}, {}) == ([], [])


def test_a_driver_call_without_its_capability_raises_naming_it() -> None:
    class Plain:
        capabilities = frozenset({Capability.FENCE})

    require(Plain(), Capability.FENCE)
    with pytest.raises(CapabilityMissing, match="driver Plain has no 'promote' capability"):
        require(Plain(), Capability.PROMOTE)


def test_the_drivers_offer_what_their_classes_declare() -> None:
    inv = load_inventory(EXAMPLE)
    offered, drivers = Drivers(inv).offered()
    assert set(offered) == {"postgres:onprem", "postgres:azure", "postgres:gcp", "infra", "dns", "backup"}
    assert drivers["postgres:onprem"] == "LocalPostgresDriver"
    assert Capability.REWIND in offered["postgres:onprem"]
    assert Capability.WEIGHTED in offered["dns"]


def test_steps_on_a_site_go_to_its_agent_queue() -> None:
    where = Where("queues", "-t1", {"onprem": "hybridops-db-onprem-t1", "gcp": "hybridops-db-gcp-t1"}, 2.0)
    assert where.queue_of(FENCE, FENCE.input(site="onprem")) == "hybridops-db-onprem-t1"
    assert where.queue_of(PROMOTE, PROMOTE.input(site="gcp")) == "hybridops-db-gcp-t1"
    # What only needs SQL runs on the reader queue; a run from before site agents, as it did.
    assert where.queue_of(FOLLOW, FOLLOW.input(sites=["gcp"], new_primary="azure")) == "hybridops-db-t1"
    assert Where("queues", "-t1").queue_of(PROMOTE, PROMOTE.input(site="gcp")) == "hybridops-db-t1"


def test_inventory_check_reports_each_runbook(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["inventory", "check", str(EXAMPLE), "--json"])
    report = json.loads(out.output)
    assert report["valid"] and report["problems"] == []
    runbooks = {r["runbook"]: r for r in report["runbooks"]}
    assert set(runbooks) >= {"failover to azure", "failover to gcp", "failback from gcp", "burst"}
    assert out.exit_code == (0 if all(r["ready"] for r in runbooks.values()) else 1)


def test_inventory_check_of_the_example_is_ready_with_what_it_goes_without() -> None:
    """The example (production's shape: infra by Terraform, apps through GitOps) is valid and
    every runbook is ready: the apps are repointed through GitOps (``app_database.via``), not
    by Terraform; what a runbook goes without is named."""
    out = CliRunner().invoke(app, ["inventory", "check", "--inventory", str(EXAMPLE)])
    assert out.exit_code == 0, out.output
    assert f"inventory {EXAMPLE}: valid" in out.output
    assert "failover to azure: ready" in out.output and "failover to gcp: ready" in out.output
    assert "sites.gcp (CnpgPostgresDriver) has no 'rewind' or 'reclone' capability" in out.output


def test_inventory_check_names_a_missing_capability_and_exits_1(tmp_path: Path) -> None:
    """The same with the apps left to the infra driver (``app_database.via: infra``): Terraform
    cannot repoint apps, so every failover and failback is not ready, named, exit 1."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["app_database"]["via"] = "infra"
    changed = tmp_path / "inventory.yaml"
    changed.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(app, ["inventory", "check", "--inventory", str(changed)])
    assert out.exit_code == 1, out.output
    assert "failover to azure: not ready" in out.output and "burst: ready" in out.output
    assert "infra (TerraformInfraDriver) has no 'repoint_apps' capability" in out.output
    assert "valid; not ready: failover to azure, failover to gcp" in out.output


def test_the_example_is_production_shaped() -> None:
    """onprem and azure on site agents, gcp on CloudNativePG, the clusters by Terraform."""
    inv = load_inventory(EXAMPLE)
    assert {n: inv.site_driver(n).value for n in inv.sites} == {
        "onprem": "agent",
        "azure": "agent",
        "gcp": "cnpg",
    }
    assert inv.infra.driver == InfraKind.TERRAFORM and inv.infra.terraform.work_root is not None


def test_inventory_check_names_a_bad_reference_and_exits_2(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["sites"]["azure"]["password_ref"] = "vault-typo:secret/pg"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(app, ["inventory", "check", str(path)])
    assert out.exit_code == 2, out.output
    assert "sites.azure.password_ref" in out.output and "vault-typo" in out.output


def test_inventory_check_of_an_invalid_inventory_names_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert data["sites"]["gcp"]["driver"] == "cnpg"
    del data["sites"]["gcp"]["cnpg"]  # the driver without its cluster settings
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(app, ["inventory", "check", str(path)])
    assert out.exit_code == 2
    assert "sites.gcp.cnpg: required by postgres driver 'cnpg'" in out.output


def test_two_sites_may_not_share_an_agent_queue() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["sites"]["azure"]["queue"] = "hybridops-db-onprem"
    with pytest.raises(Exception, match="two sites share the agent queue 'hybridops-db-onprem'"):
        parse_inventory(data)


def test_the_legacy_local_driver_reads_as_agent() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["postgres"]["driver"] = "local"
    assert parse_inventory(data).site_driver("onprem").value == "agent"


def test_restore_mode_needs_restore_primary_and_a_backup_restore() -> None:
    """Restore mode asks the target's driver for ``restore_primary`` (not ``promote``) and the
    backup driver for ``restore``; the CloudNativePG driver declares no ``restore_primary``
    (its recovery bootstrap is not built), so a restore-mode run to a CNPG site is refused
    before its first change, naming the site, the driver and the capability."""
    from drivers.postgres.cnpg import CnpgPostgresDriver
    from drivers.postgres.local import LocalPostgresDriver

    needs = failover_needs("gcp", "onprem", False, restore=True)
    assert not any(Capability.PROMOTE in n.any_of for n in needs)
    assert Capability.RESTORE_PRIMARY in LocalPostgresDriver.capabilities
    assert Capability.RESTORE_PRIMARY not in CnpgPostgresDriver.capabilities
    offered = {
        **EVERYTHING,
        "postgres:gcp": sorted(CnpgPostgresDriver.capabilities),
        "backup": [Capability.BACKUP, Capability.RESTORE],
    }
    missing, _ = unmet(needs, offered, {**DRIVERS, "postgres:gcp": "CnpgPostgresDriver", "backup": "B"})
    assert missing == [
        "sites.gcp (CnpgPostgresDriver) has no 'restore_primary' capability, needed to start gcp as"
        " the primary from a restored backup"
    ]
