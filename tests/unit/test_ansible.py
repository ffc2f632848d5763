"""The Ansible runner, for real: ``infra/ansible/network-validation.yml`` run through
ansible-runner and ``ansible-playbook`` against localhost (connection local), probing sockets the
tests open (and ports nobody listens on) in the session's loopback net. Then every playbook is
syntax-checked and ``infra/ansible/`` linted (``ansible-lint --offline``, production profile)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.ansible import AnsibleRunner, HostsUnreachable, PlaybookFailed
from drivers.process import REDACTED
from hybridops.errors import ConfigError
from tests.conftest import TEST_NET
from tests.progress import ProgressRecorder

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "infra" / "ansible"
BIN = Path(sys.executable).parent
ADDRESS = f"{TEST_NET}.250.1"
SECRET = "validation-Token-Zq8d0NotShowMe"
LOCAL = {
    "all": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    }
}
FAIL_TASK = "Fail when an endpoint is unreachable"


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A TCP port on :data:`ADDRESS` that accepts connections, while in the block."""
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def closed_port() -> int:
    """A port on :data:`ADDRESS` nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def runner(tmp_path: Path, **kwargs: Any) -> AnsibleRunner:
    return AnsibleRunner(PLAYBOOKS, tmp_path / "work", timeout=120, **kwargs)


def endpoints(**ports: int) -> list[dict[str, Any]]:
    return [{"name": name, "host": ADDRESS, "port": port} for name, port in ports.items()]


async def test_all_reachable_changes_nothing_and_heartbeats(tmp_path: Path) -> None:
    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    with listening() as db, listening() as api:
        result = await env.run(
            runner(tmp_path).run_playbook,
            "network-validation.yml",
            LOCAL,
            {"endpoints": endpoints(db=db, api=api), "connect_timeout": 1},
        )
    assert result.ok and result.status == "successful" and result.rc == 0
    assert result.changed is False
    recap = result.hosts["localhost"]
    assert recap.ok >= 4 and recap.changed == 0 and recap.failed == 0 and recap.unreachable == 0
    assert result.failed_tasks == []
    tasks = {b["task"] for b in beats}
    assert {"Connect to each endpoint", "Report reachable endpoints"} <= tasks
    assert all(b["playbook"] == "network-validation.yml" for b in beats)
    assert max(b["ok"] for b in beats) >= 4 and all(b["failed"] == 0 for b in beats)
    assert list((tmp_path / "work").iterdir()) == []  # the private data directory is gone


async def test_an_unreachable_endpoint_is_named(tmp_path: Path) -> None:
    dead = closed_port()
    with listening() as db, pytest.raises(PlaybookFailed) as failed:
        await runner(tmp_path).run_playbook(
            "network-validation.yml",
            LOCAL,
            {"endpoints": endpoints(db=db, registry=dead), "connect_timeout": 1},
        )
    err = failed.value
    assert not err.retryable
    assert err.hosts == ["localhost"]
    assert f"registry ({ADDRESS}:{dead})" in str(err)
    assert "db (" not in str(err)
    [task] = err.failed_tasks
    assert task.task == FAIL_TASK and task.host == "localhost" and "registry" in task.message
    assert err.result is not None and err.result.hosts["localhost"].failed == 1


async def test_check_mode(tmp_path: Path) -> None:
    with listening() as db:
        result = await runner(tmp_path).run_playbook(
            "network-validation.yml",
            LOCAL,
            {"endpoints": endpoints(db=db), "connect_timeout": 1},
            check=True,
        )
    assert result.check and result.ok and not result.changed
    assert result.hosts["localhost"].ok >= 3


async def test_secret_extravars_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANSIBLE_TOKEN", SECRET)
    beats: list[dict[str, Any]] = []
    env = ProgressRecorder(beats)
    # a careless playbook that prints a secret: the name of an endpoint made from it
    named = [{"name": "svc-{{ validation_token }}", "host": ADDRESS, "port": closed_port()}]
    r = runner(tmp_path, secret_extravars={"validation_token": "env:TEST_ANSIBLE_TOKEN"})
    with pytest.raises(PlaybookFailed) as failed:
        extravars = {"endpoints": named, "connect_timeout": 1}
        await env.run(r.run_playbook, "network-validation.yml", LOCAL, extravars)
    assert SECRET not in str(failed.value)
    assert f"svc-{REDACTED}" in str(failed.value)
    assert SECRET not in failed.value.result.model_dump_json()  # type: ignore[union-attr]
    assert beats and SECRET not in repr(beats)
    assert list((tmp_path / "work").iterdir()) == []  # extravars file and events removed
    with pytest.raises(ConfigError, match="both plain and secret: validation_token"):
        await r.run_playbook("network-validation.yml", LOCAL, {"validation_token": "x"})


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client")
async def test_an_unreachable_host_is_retryable(tmp_path: Path) -> None:
    inventory = {
        "all": {
            "hosts": {
                "edge-1": {
                    "ansible_host": ADDRESS,
                    "ansible_port": closed_port(),
                    "ansible_connection": "ssh",
                    "ansible_ssh_common_args": "-o ConnectTimeout=2 -o BatchMode=yes",
                }
            },
            "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
        }
    }
    with pytest.raises(HostsUnreachable) as failed:
        # facts are not gathered: resolving the endpoint's name is the first task to need the host
        endpoint = {"name": "db", "host": "localhost", "port": 5432}
        await runner(tmp_path).run_playbook("network-validation.yml", inventory, {"endpoints": [endpoint]})
    assert failed.value.retryable
    assert failed.value.hosts == ["edge-1"]
    assert "edge-1" in str(failed.value)


async def test_unknown_playbook_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a file"):
        await runner(tmp_path).run_playbook("../packer/rke2-node.pkr.hcl", LOCAL)


def test_every_playbook_passes_syntax_check() -> None:
    playbooks = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))
    assert {"network-validation.yml", "rke2-server.yml", "jenkins.yml", "gitops-enroll.yml"} <= set(playbooks)
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", *playbooks],
        cwd=PLAYBOOKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(not (BIN / "ansible-lint").exists(), reason="ansible-lint not installed")
def test_ansible_lint_offline() -> None:
    done = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor", "."],
        cwd=PLAYBOOKS,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("tool", ["flux", "argocd"])
def test_gitops_enroll_writes_an_external_secret_never_a_secret(tool: str) -> None:
    """The repository credentials reach the cluster as an ExternalSecret that names the token's
    key in the cloud's secret store; no template of the role makes a plain Secret, and no
    value passes through Ansible (issue 17 item 3)."""
    import json

    import jinja2

    role = PLAYBOOKS / "roles" / "gitops_enroll"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(role / "templates"), undefined=jinja2.StrictUndefined
    )
    env.filters["to_json"] = json.dumps
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    variables = {
        **defaults,
        "ansible_managed": "managed",
        "gitops_enroll_tool": tool,
        "gitops_enroll_git_token_key": "gitops-repo-token",
    }
    manifest = yaml.safe_load(env.get_template("git-credentials.yaml.j2").render(**variables))
    assert manifest["kind"] == "ExternalSecret"
    spec = manifest["spec"]
    assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "cloud-secrets"}
    assert spec["data"] == [{"secretKey": "token", "remoteRef": {"key": "gitops-repo-token"}}]
    assert spec["target"]["template"]["data"]["password"] == "{{ .token }}"
    if tool == "argocd":
        labels = spec["target"]["template"]["metadata"]["labels"]
        assert labels == {"argocd.argoproj.io/secret-type": "repository"}
    assert "gitops_enroll_git_token" not in defaults, "no token variable: nothing to pass"
    for template in (role / "templates").iterdir():
        assert "kind: Secret\n" not in template.read_text(), template.name
