"""The Terraform runner against a fake ``terraform`` (tests/fakes/terraform) at the process
boundary: the real runner builds the command lines and environments, reads the ``-json`` UI
stream and the ``show -json`` plan, heartbeats, maps failures and stops the tool on
cancellation; the fake checks what it is given and records it. Then the HCL under
``infra/terraform/`` is parsed and checked against what the runner passes and reads, and, where a
real ``terraform`` is installed, the runner drives it through the ``lab`` root."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import hcl2
import psutil
import pytest

from drivers.process import REDACTED
from drivers.terraform import (
    TerraformAuthError,
    TerraformFailed,
    TerraformRunner,
    TerraformStateLocked,
    TerraformTimeout,
    UnexpectedDeletion,
    address_allowed,
)
from hybridops.errors import ConfigError
from tests.progress import ProgressRecorder

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "terraform"
TF = ROOT / "infra" / "terraform"
SECRET = "azure-client-secret-Zq8~d0NotShowMe"
CANARY = "worker-credential-that-must-not-leak"
POOL = "module.nodepool.azurerm_kubernetes_cluster_node_pool.this"
SUBNET = "module.network.azurerm_subnet.burst"
DRIVER_VARIABLES = {"node_count", "node_pool_name", "run_id"}
"""What the infra driver passes to every root configuration."""
DRIVER_OUTPUTS = {"node_pool_name", "node_count", "cluster_endpoint"}
"""What the infra driver reads from every root configuration."""


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def wait_for_async(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "fake-terraform"
    d.mkdir()
    monkeypatch.setenv("TEST_TF_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("ARM_ACCESS_KEY", CANARY)  # the worker's own: must not reach terraform
    return d


def runner(state: Path, tmp_path: Path, workspace: str = "burst-1", **kwargs: Any) -> TerraformRunner:
    fake_env = kwargs.pop("fake_env", {})
    return TerraformRunner.for_target(
        TF,
        "azure",
        tmp_path / "work",
        workspace=workspace,
        binary=str(FAKE),
        secret_env={"ARM_CLIENT_SECRET": "env:TEST_TF_CLIENT_SECRET"},
        env={
            "ARM_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
            "FAKE_TF_DIR": str(state),
            "FAKE_TF_EXPECT_ENV": "ARM_CLIENT_SECRET,ARM_SUBSCRIPTION_ID",
            "FAKE_TF_SECRET_ENV": "ARM_CLIENT_SECRET",
            **fake_env,
        },
        backend_config={"container_name": "tfstate", "key": "burst.tfstate"},
        **kwargs,
    )


def calls(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


async def test_plan_apply_output_with_heartbeats(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path)
    await tf.prepare()
    plan = await tf.plan({"node_count": 3, "node_pool_name": "burst", "run_id": "wf-1"})
    assert plan.create == [SUBNET, POOL] and plan.update == plan.delete == plan.replace == []
    assert plan.counts == {"create": 2, "update": 0, "delete": 0, "replace": 0}
    assert Path(plan.plan_file).stat().st_mode & 0o077 == 0

    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    result = await env.run(tf.apply, plan)
    assert (result.added, result.changed, result.removed) == (2, 0, 0)
    assert result.completed == [SUBNET, POOL]
    assert [b["done"] for b in beats if b["phase"] == "apply"][-1] == 2
    assert all(b["total"] == 2 for b in beats)
    assert not Path(plan.plan_file).exists()  # applied once

    outputs = await tf.output()
    assert outputs["node_count"] == 3 and outputs["node_pool_name"] == "burst"
    assert outputs["cluster_endpoint"].startswith("https://")
    assert "kube_config" not in outputs  # sensitive: never in a result

    scaled = await tf.plan({"node_count": 5, "node_pool_name": "burst", "run_id": "wf-1"})
    assert scaled.update == [POOL] and scaled.changes == 1

    recorded = calls(state)
    assert [c["argv"][1] for c in recorded] == [
        "init",
        "workspace",
        "plan",
        "show",
        "apply",
        "output",
        "plan",
        "show",
    ]
    assert all(c["argv"][0] == f"-chdir={TF / 'azure'}" for c in recorded)
    for call in recorded:
        assert not any(SECRET in arg or CANARY in arg for arg in call["argv"])
        assert call["present"] == ["ARM_CLIENT_SECRET", "ARM_SUBSCRIPTION_ID"]
        assert "ARM_ACCESS_KEY" not in call["env_keys"]  # the worker's environment is not inherited
        assert call["tf"]["TF_IN_AUTOMATION"] == "1"
        assert call["tf"]["TF_DATA_DIR"] == str(tmp_path / "work" / "azure" / "burst-1" / ".terraform")
    plan_argv = next(c["argv"] for c in recorded if c["argv"][1] == "plan")
    assert "-json" in plan_argv and "-input=false" in plan_argv
    assert any(a.startswith("-out=") for a in plan_argv) and any(
        a.startswith("-var-file=") for a in plan_argv
    )
    assert not any(a.startswith("-var=") for a in plan_argv)
    init_argv = recorded[0]["argv"]
    backend = [a for a in init_argv if a.startswith("-backend-config=")]
    assert len(backend) == 1 and not any("tfstate" in a for a in init_argv)  # no value in argv
    assert json.loads((state / "backend.json").read_text()) == {
        "container_name": "tfstate",
        "key": "burst.tfstate",
    }
    assert not Path(backend[0].removeprefix("-backend-config=")).exists()  # removed after init
    assert recorded[-1]["workspace"] == "burst-1"


async def test_destroy_removes_everything(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path)
    await tf.prepare()
    await tf.apply(await tf.plan({"node_count": 2}))
    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    result = await env.run(tf.destroy, {"node_count": 2})
    assert result.removed == 2 and sorted(result.completed) == sorted([SUBNET, POOL])
    assert beats[-1]["phase"] == "destroy" and beats[-1]["done"] == beats[-1]["total"] == 2
    assert await tf.output() == {}
    again = await tf.destroy({"node_count": 2})  # idempotent
    assert again.removed == 0


async def test_state_locked_names_the_lock(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path)
    await tf.prepare()
    lock = {
        "ID": "9d4c2b1a-0e8f-4a6b-b7c5-3e2d1f0a9b8c",
        "Path": "tfstate/burst-1.tfstate",
        "Operation": "OperationTypeApply",
        "Who": "jenkins@ctrl-01",
        "Version": "1.11.4",
        "Created": "2025-03-02 09:41:07.123456 +0000 UTC",
    }
    (state / "lock-burst-1.json").write_text(json.dumps(lock))
    with pytest.raises(TerraformStateLocked) as caught:
        await tf.plan({"node_count": 1})
    err = caught.value
    assert err.retryable
    assert (err.lock_id, err.who, err.created) == (lock["ID"], lock["Who"], lock["Created"])
    assert err.operation == "OperationTypeApply"
    assert "jenkins@ctrl-01" in str(err) and lock["ID"] in str(err)


@pytest.mark.parametrize(
    ("fail", "provider"),
    [("plan=auth-azurerm", "azurerm"), ("plan=auth-google", "google"), ("init=auth-azurerm", "azurerm")],
)
async def test_auth_errors_are_fatal(state: Path, tmp_path: Path, fail: str, provider: str) -> None:
    tf = runner(state, tmp_path, fake_env={"FAKE_TF_FAIL": fail})
    with pytest.raises(TerraformAuthError) as caught:
        await tf.prepare()
        await tf.plan({"node_count": 1})
    assert not caught.value.retryable
    assert caught.value.ids["provider"] == provider
    assert caught.value.ids["command"] == fail.partition("=")[0]


async def test_unexpected_deletion_refused_unless_allowed(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf = runner(state, tmp_path)
    await tf.prepare()
    await tf.apply(await tf.plan({"node_count": 2}))
    tf.env["FAKE_TF_PLAN"] = "deletions"
    with pytest.raises(UnexpectedDeletion) as caught:
        await tf.plan({"node_count": 2})
    assert not caught.value.retryable
    assert caught.value.addresses == [SUBNET, POOL]
    assert SUBNET in str(caught.value) and POOL in str(caught.value)
    assert not list((tmp_path / "work" / "azure" / "burst-1").glob("*.tfplan"))  # discarded

    partly = runner(
        state, tmp_path, allow_delete=["module.network.*"], fake_env={"FAKE_TF_PLAN": "deletions"}
    )
    with pytest.raises(UnexpectedDeletion) as caught:
        await partly.plan({"node_count": 2})
    assert caught.value.addresses == [POOL]

    plan = await tf.plan({"node_count": 2}, allow_delete=["module.network.*", POOL])
    assert plan.delete == [SUBNET] and plan.replace == [POOL]


def test_address_patterns() -> None:
    assert address_allowed("terraform_data.node[3]", ["terraform_data.node[*]"])
    assert not address_allowed("terraform_data.nodes", ["terraform_data.node[*]"])
    assert address_allowed('module.x["a"].r.y', ["module.x[*].*"])
    assert not address_allowed("module.network.azurerm_subnet.burst", [])


async def test_other_failures_carry_diagnostics_without_secrets(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path, fake_env={"FAKE_TF_FAIL": "plan=error"})
    await tf.prepare()
    with pytest.raises(TerraformFailed) as caught:
        await tf.plan({"node_count": 1})
    err = caught.value
    assert err.retryable
    assert SECRET not in str(err) and REDACTED in str(err)
    assert "unexpected status 400" in str(err) and POOL in str(err)
    assert err.diagnostics and all(SECRET not in d for d in err.diagnostics)


async def test_apply_errored(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path, fake_env={"FAKE_TF_FAIL": "apply=errored"})
    await tf.prepare()
    plan = await tf.plan({"node_count": 40})
    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    with pytest.raises(TerraformFailed, match="QuotaExceeded"):
        await env.run(tf.apply, plan)
    assert beats[-1]["resource"] == POOL and beats[-1]["done"] == 1


async def test_secret_in_argv_refused(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path)
    with pytest.raises(ConfigError, match="secret would be in its command line"):
        await tf._checked(
            ["init", "-input=false", "-no-color", f"-backend-config=access_key={SECRET}"], timeout=10
        )
    assert not (state / "calls.jsonl").exists()


async def test_backend_values_never_reach_argv(state: Path, tmp_path: Path) -> None:
    """Even a value that should not be there (a key with template characters and quotes)
    travels in the 0600 file, read back exactly."""
    tf = runner(state, tmp_path)
    odd = 'acc"ount ${not.a.template} %{if} \\ end'
    tf.backend_config.update({"storage_account_name": odd, "access_key": SECRET})
    await tf.init()
    init = calls(state)[0]
    assert not any(SECRET in a or "ount" in a for a in init["argv"])
    read = json.loads((state / "backend.json").read_text())
    assert read["storage_account_name"].replace("$${", "${").replace("%%{", "%{") == odd
    assert read["access_key"] == SECRET
    with pytest.raises(ConfigError, match="backend_config key"):
        tf.backend_config["bad key"] = "x"
        await tf.init()


async def test_missing_binary(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path)
    tf.binary = str(tmp_path / "no-terraform-here")
    with pytest.raises(ConfigError, match="not found"):
        await tf.init()


async def test_cancel_interrupts_and_waits_for_the_lock_release(state: Path, tmp_path: Path) -> None:
    tf = runner(state, tmp_path, fake_env={"FAKE_TF_SLOW_APPLY": "60"}, interrupt_grace=20)
    await tf.prepare()
    plan = await tf.plan({"node_count": 2})
    task = asyncio.create_task(tf.apply(plan))
    await wait_for_async(lambda: (state / "apply-started").exists(), what="the apply to start")
    assert (state / "lock-burst-1.json").exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # cancellation returned only after terraform released its lock and exited
    assert (state / "lock-released").exists()
    assert not (state / "lock-burst-1.json").exists()


async def test_cancel_kills_terraform_that_ignores_sigint(state: Path, tmp_path: Path) -> None:
    tf = runner(
        state,
        tmp_path,
        fake_env={"FAKE_TF_SLOW_APPLY": "60", "FAKE_TF_IGNORE_SIGINT": "1"},
        interrupt_grace=0.5,
    )
    await tf.prepare()
    plan = await tf.plan({"node_count": 2})
    task = asyncio.create_task(tf.apply(plan))
    await wait_for_async(lambda: (state / "apply-started").exists(), what="the apply to start")
    pid = json.loads((state / "lock-burst-1.json").read_text())["fake_pid"]
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 10
    assert (state / "sigint-ignored").exists()

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await wait_for_async(gone, what="the killed terraform to be gone")


async def test_timeout_interrupts_then_raises(state: Path, tmp_path: Path) -> None:
    # 3 s, not 1: at load 11 the fake's Python had not reached its SIGINT handler within 1 s
    # (its interpreter start), died of the interrupt and kept the lock (seen twice).
    tf = runner(state, tmp_path, fake_env={"FAKE_TF_SLOW_APPLY": "60"}, timeout=3.0, interrupt_grace=20)
    await tf.prepare()
    plan = await tf.plan({"node_count": 2})
    with pytest.raises(TerraformTimeout) as caught:
        await tf.apply(plan)
    assert caught.value.retryable
    assert (state / "lock-released").exists()


# -- the HCL --------------------------------------------------------------------------------


def _name(label: str) -> str:
    return label.strip('"')


def _body(body: dict[str, Any]) -> dict[str, Any]:
    """A block's attributes (python-hcl2 adds ``__is_block__`` and keeps string quotes)."""
    return {k: v.strip('"') if isinstance(v, str) else v for k, v in body.items() if not k.startswith("__")}


def parse_dir(directory: Path) -> dict[str, dict[str, Any]]:
    """Every block of the ``.tf`` files in ``directory``: kind -> name -> body."""
    blocks: dict[str, dict[str, Any]] = {"variable": {}, "output": {}, "module": {}, "resource": {}}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as f:
            parsed = hcl2.load(f)
        for kind in ("variable", "output", "module"):
            for item in parsed.get(kind, []):
                blocks[kind].update({_name(k): _body(v) for k, v in item.items()})
        for item in parsed.get("resource", []):
            for rtype, named in item.items():
                for name, body in named.items():
                    blocks["resource"][f"{_name(rtype)}.{_name(name)}"] = _body(body)
    return blocks


def test_every_tf_file_parses() -> None:
    files = sorted(TF.rglob("*.tf"))
    assert len(files) >= 20
    for path in files:
        with path.open() as f:
            hcl2.load(f)


@pytest.mark.parametrize("root", ["azure", "gcp", "lab"])
def test_roots_take_what_the_driver_passes_and_give_what_it_reads(root: str) -> None:
    blocks = parse_dir(TF / root)
    assert set(blocks["variable"]) >= DRIVER_VARIABLES, f"{root}: variables"
    assert set(blocks["output"]) >= DRIVER_OUTPUTS, f"{root}: outputs"
    for name, body in blocks["module"].items():
        source = str(body["source"])
        assert (TF / root / source).resolve().is_dir(), f"{root}: module {name} source {source}"
        module_vars = parse_dir((TF / root / source).resolve())["variable"]
        required = {n for n, v in module_vars.items() if "default" not in v}
        given = set(body) - {"source", "count", "for_each", "providers", "depends_on"}
        assert required <= given, f"{root}: module {name} misses {required - given}"
        assert given <= set(module_vars), f"{root}: module {name} has unknown {given - set(module_vars)}"


def test_node_pool_modules() -> None:
    aks = parse_dir(TF / "modules" / "aks-nodepool")["resource"]
    assert "azurerm_kubernetes_cluster_node_pool.this" in aks
    gke = parse_dir(TF / "modules" / "gke-nodepool")["resource"]
    assert "google_container_node_pool.this" in gke
    lab = parse_dir(TF / "lab")["resource"]
    assert set(lab) == {"terraform_data.pool", "terraform_data.node"}  # built in: no provider


GCP_NETWORK = TF / "modules" / "network" / "gcp"
AZURE_NETWORK = TF / "modules" / "network" / "azure"
HUB = "google_network_connectivity_hub"
SPOKE = "google_network_connectivity_spoke"
TUNNEL = "google_compute_vpn_tunnel"
SPOKE_LINKS = {
    "linked_vpc_network",
    "linked_vpn_tunnels",
    "linked_interconnect_attachments",
    "linked_router_appliance_instances",
}
SECRET_NAME = re.compile(r"secret|shared_key|password|psk", re.IGNORECASE)
VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")


def tf_dirs() -> list[Path]:
    """Every directory holding ``.tf`` files: the roots and the modules."""
    return sorted({path.parent for path in TF.rglob("*.tf")})


def _block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The one nested block ``name`` of a resource (python-hcl2 gives a list of one)."""
    blocks = body[name]
    assert isinstance(blocks, list) and len(blocks) == 1, name
    block: dict[str, Any] = blocks[0]
    return block


def _of_type(resources: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {address: body for address, body in resources.items() if address.startswith(f"{rtype}.")}


def _attributes(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """Every attribute under ``node``, nested blocks included: (path, key, value)."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__"):
                continue
            if isinstance(value, dict | list):
                found += _attributes(value, f"{path}.{key}")
            else:
                found.append((path, key, value))
    elif isinstance(node, list):
        for item in node:
            found += _attributes(item, path)
    return found


def test_the_gcp_network_module_is_an_ncc_hub_with_its_spokes() -> None:
    resources = parse_dir(GCP_NETWORK)["resource"]
    hubs = _of_type(resources, HUB)
    spokes = _of_type(resources, SPOKE)
    assert len(hubs) == 1, hubs
    hub_names = {address.split(".", 1)[1] for address in hubs}
    assert len(spokes) >= 4, spokes  # the VPC, on-prem over VPN, Azure over VPN, Interconnect
    kinds: dict[str, list[str]] = {}
    for address, body in spokes.items():
        refs = re.findall(rf"\b{HUB}\.(\w+)", str(body["hub"]))
        assert refs and set(refs) <= hub_names, f"{address}: hub {body['hub']} is not this module's hub"
        links = SPOKE_LINKS & set(body)
        assert len(links) == 1, f"{address}: exactly one linked_* block, has {links}"
        kinds.setdefault(links.pop(), []).append(address)
    assert len(kinds["linked_vpc_network"]) == 1
    assert len(kinds["linked_vpn_tunnels"]) >= 2  # on-prem and Azure
    assert len(kinds["linked_interconnect_attachments"]) == 1
    vpc = _block(spokes[kinds["linked_vpc_network"][0]], "linked_vpc_network")
    assert "network" in str(vpc["uri"])


def test_each_vpn_spoke_links_tunnels_of_this_module() -> None:
    resources = parse_dir(GCP_NETWORK)["resource"]
    tunnels = {address.split(".", 1)[1] for address in _of_type(resources, TUNNEL)}
    assert tunnels
    vpn_spokes = {a: b for a, b in _of_type(resources, SPOKE).items() if "linked_vpn_tunnels" in b}
    assert vpn_spokes
    for address, body in vpn_spokes.items():
        linked = _block(body, "linked_vpn_tunnels")
        refs = re.findall(rf"\b{TUNNEL}\.(\w+)", str(linked["uris"]))
        assert refs and set(refs) <= tunnels, (
            f"{address}: uris {linked['uris']} are not this module's tunnels"
        )
        assert linked["site_to_site_data_transfer"] is True, address
    for address, body in _of_type(resources, TUNNEL).items():
        for ref in ("google_compute_ha_vpn_gateway.", "google_compute_router."):
            assert ref in str(body["vpn_gateway"]) + str(body["router"]), f"{address}: {ref}"
        assert "google_compute_external_vpn_gateway." in str(body["peer_external_gateway"]), address
    for rtype in ("google_compute_router_interface", "google_compute_router_peer"):
        for address, body in _of_type(resources, rtype).items():
            assert body.get("for_each") == "${local.tunnels}", f"{address}: one per tunnel"
    attachment = next(
        b for b in _of_type(resources, SPOKE).values() if "linked_interconnect_attachments" in b
    )
    assert "var.interconnect_attachment_ids" in str(attachment["count"])  # none without attachment ids


def test_the_azure_network_module_is_gcps_vpn_peer() -> None:
    resources = parse_dir(AZURE_NETWORK)["resource"]
    (gateway,) = _of_type(resources, "azurerm_virtual_network_gateway").values()
    assert (gateway["type"], gateway["vpn_type"]) == ("Vpn", "RouteBased")
    assert gateway["active_active"] is True and gateway["bgp_enabled"] is True
    assert "var.bgp_asn" in str(_block(gateway, "bgp_settings")["asn"])
    (subnet,) = (b for b in _of_type(resources, "azurerm_subnet").values() if b["name"] == "GatewaySubnet")
    assert "count" in subnet
    assert _of_type(resources, "azurerm_public_ip") and _of_type(resources, "azurerm_local_network_gateway")
    for address, body in _of_type(resources, "azurerm_virtual_network_gateway_connection").items():
        assert body["type"] == "IPsec" and body["bgp_enabled"] is True, address
        assert "azurerm_local_network_gateway." in str(body["local_network_gateway_id"]), address


@pytest.mark.parametrize("module", [GCP_NETWORK, AZURE_NETWORK], ids=["gcp", "azure"])
def test_network_modules_create_only_what_is_asked_for(module: Path) -> None:
    """Every resource has a count or for_each, so a deployment without a given attachment (or
    without the connectivity at all) creates none of it."""
    resources = parse_dir(module)["resource"]
    for address, body in resources.items():
        assert "count" in body or "for_each" in body, f"{module.name}: {address} is unconditional"
    variables = parse_dir(module)["variable"]
    flag = "ncc_enabled" if module == GCP_NETWORK else "vpn_gateway_enabled"
    assert variables[flag]["default"] is False  # off unless the deployment turns it on


@pytest.mark.parametrize("directory", tf_dirs(), ids=lambda d: str(d.relative_to(TF)))
def test_every_variable_used_is_declared(directory: Path) -> None:
    used = set(VAR_REF.findall("\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))))
    declared = set(parse_dir(directory)["variable"])
    assert used <= declared, f"{directory.relative_to(TF)}: undeclared {sorted(used - declared)}"


@pytest.mark.parametrize("directory", tf_dirs(), ids=lambda d: str(d.relative_to(TF)))
def test_no_shared_key_is_a_literal(directory: Path) -> None:
    """A key or secret comes in as a sensitive variable without a default (the deployment feeds
    it from the secret store, as ``TF_VAR_...``); no attribute holding one is a literal."""
    blocks = parse_dir(directory)
    variables = blocks["variable"]
    for name, body in variables.items():
        if SECRET_NAME.search(name):
            assert body.get("sensitive") is True, f"{directory.name}: variable {name} must be sensitive"
            assert body.get("default") is None, f"{directory.name}: variable {name} has a default"
    for kind in ("resource", "module"):
        for address, body in blocks[kind].items():
            for path, key, value in _attributes(body):
                if not SECRET_NAME.search(key) or "lifecycle" in path:
                    continue
                refs = VAR_REF.findall(str(value))
                assert isinstance(value, str) and value.startswith("${") and refs, (
                    f"{directory.name}: {address}{path}.{key} is a literal"
                )
                for ref in refs:
                    assert variables[ref].get("sensitive") is True, (
                        f"{directory.name}: {address}{path}.{key} takes var.{ref}, not sensitive"
                    )


def test_no_key_literal_anywhere_in_the_text() -> None:
    literal = re.compile(r'^\s*\w*(secret|shared_key|password|psk)\w*\s*=\s*"', re.IGNORECASE | re.MULTILINE)
    for path in sorted(TF.rglob("*.tf")):
        assert not literal.search(path.read_text()), f"{path.relative_to(TF)}: a secret given as a literal"


def _console(directory: Path, expression: str, variables: dict[str, str], tmp_path: Path) -> Any:
    """``expression`` evaluated by ``terraform console`` in ``directory`` (no provider needed
    when it declares no resources), as JSON."""
    binary = shutil.which("terraform")
    assert binary is not None
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    argv = [binary, f"-chdir={directory}", "console"]
    argv += [f"-var={name}={value}" for name, value in variables.items()]
    done = subprocess.run(
        argv,
        input=f"jsonencode({expression})\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "TF_CLI_CONFIG_FILE": str(cli_config)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(json.loads(done.stdout))


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_gcp_tunnels_follow_their_inputs(tmp_path: Path) -> None:
    """The module's ``locals`` block (less the two lines that read the network resources),
    evaluated by the real ``terraform console`` with its variables: no tunnel without
    ``ncc_enabled`` or peer IPs, two per peer otherwise, on the HA VPN's interfaces 0 and 1,
    each with a link-local /30."""
    text = (GCP_NETWORK / "main.tf").read_text()
    start = text.index("\nlocals {\n")
    block = text[start : text.index("\n}\n", start) + 3]
    scratch = tmp_path / "locals"
    scratch.mkdir()
    (scratch / "main.tf").write_text("\n".join(line for line in block.splitlines() if "network_" not in line))
    shutil.copy(GCP_NETWORK / "variables.tf", scratch)
    required = {"network_name": "vpc", "project": "p", "region": "europe-west1"}
    expression = (
        "{ for key, t in local.tunnels : key => [t.interface, t.peer_interface, "
        "cidrhost(t.cidr, 1), cidrhost(t.cidr, 2), t.peer_asn] }"
    )
    peers = {"onprem_peer_ips": '["203.0.113.10"]', "azure_gateway_ips": '["198.51.100.1","198.51.100.2"]'}
    assert _console(scratch, expression, required, tmp_path) == {}
    assert _console(scratch, expression, {**required, **peers}, tmp_path) == {}  # ncc_enabled off
    assert _console(scratch, expression, {**required, "ncc_enabled": "true"}, tmp_path) == {}
    assert _console(scratch, expression, {**required, **peers, "ncc_enabled": "true"}, tmp_path) == {
        "onprem-0": [0, 0, "169.254.10.1", "169.254.10.2", 65010],
        "onprem-1": [1, 0, "169.254.10.5", "169.254.10.6", 65010],  # one device IP: both tunnels to it
        "azure-0": [0, 0, "169.254.21.1", "169.254.21.2", 65515],
        "azure-1": [1, 1, "169.254.22.1", "169.254.22.2", 65515],
    }


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt(tmp_path: Path) -> None:
    """``terraform fmt`` parses and formats without providers (``validate`` would need them)."""
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    binary = shutil.which("terraform")
    assert binary is not None
    done = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-list=true", str(TF)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "TF_CLI_CONFIG_FILE": str(cli_config)},
        check=False,
    )
    assert done.returncode == 0, f"not formatted: {done.stdout}{done.stderr}"


# -- the real terraform ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
async def test_real_terraform_drives_the_lab_root(tmp_path: Path) -> None:
    config = tmp_path / "config" / "lab"
    shutil.copytree(TF / "lab", config)  # the lab keeps local state next to its configuration
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    tf = TerraformRunner.for_target(
        config.parent,
        "lab",
        tmp_path / "work",
        workspace="burst-real",
        env={"TF_CLI_CONFIG_FILE": str(cli_config)},
        timeout=120,
        interrupt_grace=10,
    )
    await tf.prepare()
    await tf.prepare()  # idempotent

    plan = await tf.plan({"node_count": 2, "run_id": "wf-real"})
    assert sorted(plan.create) == ["terraform_data.node[0]", "terraform_data.node[1]", "terraform_data.pool"]
    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    applied = await env.run(tf.apply, plan)
    assert applied.added == 3 and len(applied.completed) == 3
    assert beats[-1]["done"] == beats[-1]["total"] == 3
    outputs = await tf.output()
    assert outputs["node_count"] == 2 and outputs["node_pool_name"] == "burst"

    assert (await tf.plan({"node_count": 2, "run_id": "wf-real"})).changes == 0
    with pytest.raises(UnexpectedDeletion) as caught:
        await tf.plan({"node_count": 1, "run_id": "wf-real"})
    assert caught.value.addresses == ["terraform_data.node[1]"]
    scale_in = await tf.plan({"node_count": 1, "run_id": "wf-real"}, allow_delete=["terraform_data.node[*]"])
    assert scale_in.delete == ["terraform_data.node[1]"]
    await tf.apply(scale_in)
    assert (await tf.output())["node_count"] == 1

    with pytest.raises(TerraformFailed, match="node_count"):
        await tf.plan({"node_count": -1})

    destroyed = await tf.destroy({"node_count": 1, "run_id": "wf-real"})
    assert destroyed.removed == 2
    assert await tf.output() == {}
    assert (config / "terraform.tfstate.d" / "burst-real").is_dir()
    assert not Path(plan.plan_file).exists() and not Path(scale_in.plan_file).exists()  # applied once
