"""The Packer runner against a fake ``packer`` (tests/fakes/packer) at the process boundary: the
real runner builds the command lines, var files and environments, parses the machine-readable
output, heartbeats, maps failures and stops the tool on timeout; the fake checks what it is given,
records it and answers in Packer's documented format. Then the template under ``infra/packer/``
is parsed and checked against what the runner passes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import hcl2
import pytest

from drivers.packer import (
    PackerAuthError,
    PackerBuildFailed,
    PackerInitFailed,
    PackerRunner,
    PackerTemplateInvalid,
    PackerTimeout,
    parse_line,
)
from drivers.process import REDACTED
from hybridops.errors import ConfigError
from tests.progress import ProgressRecorder

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "packer"
TEMPLATE = ROOT / "infra" / "packer"
SECRET = "azure-client-Secret-Zq8d0NotShowMe"
CANARY = "worker-credential-that-must-not-leak"
QEMU = "qemu.rke2-node"
AZURE = "azure-arm.rke2-node"
VARIABLES = {"run_id": "burst-42", "output_dir": "output/rke2-node"}


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "fake-packer"
    d.mkdir()
    monkeypatch.setenv("TEST_PKR_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("ARM_CLIENT_SECRET", CANARY)  # the worker's own: must not reach packer
    return d


def runner(state: Path, tmp_path: Path, fail: str = "", **kwargs: Any) -> PackerRunner:
    env = {
        # The fake's `#!/usr/bin/env python3` finds this interpreter, not a slower one (a pyenv
        # shim starts a shell first): a timeout test's SIGINT must meet the fake, not its launcher.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_PACKER_DIR": str(state),
        "FAKE_PACKER_EXPECT_ENV": "PKR_VAR_azure_client_secret",
        "FAKE_PACKER_SECRET_ENV": "PKR_VAR_azure_client_secret",
        "FAKE_PACKER_FAIL": fail,
        **kwargs.pop("fake_env", {}),
    }
    return PackerRunner(
        TEMPLATE,
        tmp_path / "work",
        binary=str(FAKE),
        secret_env={"PKR_VAR_azure_client_secret": "env:TEST_PKR_CLIENT_SECRET"},
        env=env,
        **kwargs,
    )


def calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_parse_line_unescapes_commas_and_newlines() -> None:
    msg = parse_line("1700000000,azure-arm.x,artifact,0,string,a%!(PACKER_COMMA) b\\nc")
    assert msg is not None
    assert (msg.timestamp, msg.target, msg.type) == (1700000000, "azure-arm.x", "artifact")
    assert msg.data == ["0", "string", "a, b\nc"]
    assert parse_line("==> not machine readable") is None
    assert parse_line("") is None


async def test_init_validate_build(state: Path, tmp_path: Path) -> None:
    r = runner(state, tmp_path)
    await r.init()
    validation = await r.validate(VARIABLES)
    assert validation.template == "packer"
    beats: list[Any] = []
    env = ProgressRecorder(beats)
    result = await env.run(r.build, VARIABLES)

    assert result.builds == [QEMU, AZURE]
    assert result.artifact_ids == {
        QEMU: ["VM"],
        AZURE: [
            "/subscriptions/0000-fake/resourceGroups/hybridops-images/providers/"
            "Microsoft.Compute/images/rke2-node-v1-31-4-rke2r1-burst-42"
        ],
    }
    qemu, azure = result.artifacts
    assert qemu.builder_id == "transcend.qemu"
    assert qemu.files == ["output/rke2-node/rke2-node-v1-31-4-rke2r1-burst-42.qcow2"]
    assert qemu.files_count == 1
    assert azure.builder_id == "Azure.ResourceManagement.VMImage"
    assert "ManagedImageLocation: westeurope, eu\n" in azure.string  # commas and newlines unescaped
    assert beats and all(b["phase"] == "build" for b in beats)
    assert {b["build"] for b in beats} >= {QEMU, AZURE}
    assert beats[-1]["artifacts"] == 2

    recorded = calls(state)
    assert [c["argv"][1] for c in recorded] == ["init", "validate", "build"]
    build_argv = recorded[-1]["argv"]
    assert build_argv[2:5] == ["-machine-readable", "-color=false", "-force"]
    assert build_argv[-1] == str(TEMPLATE)
    for call in recorded:
        assert SECRET not in json.dumps(call["argv"])
        assert "PKR_VAR_azure_client_secret" in call["env"]
        assert "ARM_CLIENT_SECRET" not in call["env"]  # the worker's own credentials stay out
    assert json.loads(recorded[-1]["var_file"]) == VARIABLES
    assert not list((tmp_path / "work").glob("vars-*"))  # var files removed


async def test_build_only_one_source(state: Path, tmp_path: Path) -> None:
    result = await runner(state, tmp_path).build(VARIABLES, only=[QEMU])
    assert result.artifact_ids == {QEMU: ["VM"]}
    assert f"-only={QEMU}" in calls(state)[-1]["argv"]


async def test_validate_errors_are_fatal_and_name_the_problem(state: Path, tmp_path: Path) -> None:
    with pytest.raises(PackerTemplateInvalid) as missing:
        await runner(state, tmp_path).validate({"output_dir": "x"})
    assert 'Unset variable "run_id"' in str(missing.value)
    assert not missing.value.retryable
    with pytest.raises(PackerTemplateInvalid) as unsupported:
        await runner(state, tmp_path, fail="validate=error").validate(VARIABLES)
    assert "disk_sise" in str(unsupported.value)
    assert unsupported.value.ids == {"template": "packer", "command": "validate"}


async def test_failed_build_is_named_redacted_and_keeps_other_artifacts(state: Path, tmp_path: Path) -> None:
    with pytest.raises(PackerBuildFailed) as failed:
        await runner(state, tmp_path, fail="build=error").build(VARIABLES)
    err = failed.value
    assert err.retryable
    assert list(err.errors) == [AZURE]
    assert "capacity exhausted" in str(err) and AZURE in str(err)
    assert SECRET not in str(err) and SECRET not in json.dumps(err.errors)
    assert REDACTED in str(err)
    assert [a.build for a in err.artifacts] == [QEMU]


async def test_auth_failure_is_fatal(state: Path, tmp_path: Path) -> None:
    with pytest.raises(PackerAuthError) as failed:
        await runner(state, tmp_path, fail="build=auth").build(VARIABLES)
    assert "AADSTS7000215" in str(failed.value)
    assert not failed.value.retryable


async def test_init_failure_is_retryable(state: Path, tmp_path: Path) -> None:
    with pytest.raises(PackerInitFailed) as failed:
        await runner(state, tmp_path, fail="init=error").init()
    assert failed.value.retryable
    assert "Failed to install plugin" in str(failed.value)


async def test_a_secret_never_reaches_argv(state: Path, tmp_path: Path) -> None:
    secret_like_build = "qemu.Zq8d0NotShowMe"
    r = runner(state, tmp_path)
    r.secret_env["PKR_VAR_other"] = "env:TEST_PKR_OTHER"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEST_PKR_OTHER", secret_like_build)
        with pytest.raises(ConfigError, match="a secret would be in its command line"):
            await r.build(VARIABLES, only=[secret_like_build])
    assert calls(state) == []  # never started
    with pytest.raises(ConfigError, match="not build names"):
        await r.build(VARIABLES, only=["qemu.x,azure-arm.y"])


async def test_timeout_interrupts_then_reports(state: Path, tmp_path: Path) -> None:
    # The fake's build takes 30 s; the runner's timeout (2 s) and grace (5 s) end it long before.
    r = runner(state, tmp_path, timeout=2.0, interrupt_grace=5.0, fake_env={"FAKE_PACKER_SLOW": "30"})
    started = time.monotonic()
    with pytest.raises(PackerTimeout) as timed_out:
        await r.build(VARIABLES)
    assert timed_out.value.retryable
    wait_for(lambda: (state / "interrupted").exists(), what="the fake to clean up on SIGINT")
    assert time.monotonic() - started < 30  # interrupted, not waited out


def test_template_declares_what_the_runner_and_provisioner_use() -> None:
    with (TEMPLATE / "rke2-node.pkr.hcl").open() as f:
        config = hcl2.load(f)
    sources = {f"{t}.{n}".replace('"', "") for s in config["source"] for t, v in s.items() for n in v}
    assert sources == {QEMU, AZURE}
    variables = {name: body for v in config["variable"] for name, body in v.items()}
    names = {n.strip('"') for n in variables}
    assert {"run_id", "azure_client_secret"} <= names
    secret = next(body for n, body in variables.items() if n.strip('"') == "azure_client_secret")
    assert secret.get("sensitive") is True
    build = config["build"][0]
    ansible = next(p['"ansible"'] for p in build["provisioner"] if '"ansible"' in p)
    playbook = ansible["playbook_file"].split("/../", 1)[1].rstrip('"')
    assert (TEMPLATE.parent / playbook).is_file()
    assert (TEMPLATE / "cloud-init.pkrtpl.yaml").is_file()
