"""Terraform state locks, read without Terraform (drivers/terraform/state.py): a lock held by
another process (the real ``terraform`` waiting at its apply prompt, where installed, and a
process holding the fcntl lock as Terraform does), a lock info file left by a killed
Terraform, a free state, a remote backend; and the infra drivers' ``state_locks``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.infra.lab import LabInfraDriver
from drivers.infra.terraform import TerraformInfraDriver
from drivers.terraform.state import LockState, StateLock, lock_info_path, read_lock, state_path
from hybridops.inventory import InfraKind, InfraSettings, TerraformSettings

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fcntl(F_SETLK), as Terraform's local backend
print("held", flush=True)
sys.stdin.read()
"""


def poll(what: str, read: Callable[[], StateLock], want: LockState, timeout: float = 60) -> StateLock:
    """``read()`` until its state is ``want``, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found.state == want:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not {want} within {timeout:g} s: {found}")
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    config = tmp_path / "lab"
    shutil.copytree(TF / "lab", config)
    return config


@pytest.fixture
def holder(root: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start a process that holds the fcntl lock of a file until its stdin closes."""
    started: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> subprocess.Popen[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def test_free_locked_stale_and_no_state(root: Path, holder: Callable[[Path], subprocess.Popen[str]]) -> None:
    fresh = read_lock(root, "burst")
    assert fresh.state == LockState.FREE and fresh.note == "no state yet" and fresh.backend == "local"
    state = state_path(root, "burst")
    assert state == root / "terraform.tfstate.d" / "burst" / "terraform.tfstate"
    proc = holder(state)
    bare = read_lock(root, "burst")
    assert bare.state == LockState.LOCKED and bare.holder_pid == proc.pid and "no lock info" in bare.note
    info = {
        "ID": "1f1f",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "alice@ops-1",
        "Version": "1.11.4",
        "Created": "2026-12-01T03:00:00Z",
        "Path": "terraform.tfstate.d/burst/terraform.tfstate",
    }
    lock_info_path(state).write_text(json.dumps(info))
    held = read_lock(root, "burst", name="azure")
    assert held.state == LockState.LOCKED and held.root == "azure"
    assert (held.lock_id, held.who, held.operation, held.created) == (
        "1f1f",
        "alice@ops-1",
        "OperationTypeApply",
        "2026-12-01T03:00:00Z",
    )
    assert held.state_file == "terraform.tfstate.d/burst/terraform.tfstate"
    assert str(root) not in repr(held), "no path of this machine in a recorded reading"
    proc.kill()
    proc.wait()
    stale = read_lock(root, "burst")
    assert stale.state == LockState.STALE and stale.who == "alice@ops-1" and stale.holder_pid is None
    lock_info_path(state).unlink()
    assert read_lock(root, "burst").state == LockState.FREE


def test_the_default_workspace_and_a_backend_path(root: Path) -> None:
    assert state_path(root) == root / "terraform.tfstate"
    assert state_path(root, "default", {"path": "s/x.tfstate"}) == root / "s" / "x.tfstate"
    assert lock_info_path(root / "s" / "x.tfstate") == root / "s" / ".x.tfstate.lock.info"


@pytest.mark.parametrize(("target", "backend"), [("azure", "azurerm"), ("gcp", "gcs")])
def test_a_remote_backend_is_unknown_with_a_note(target: str, backend: str) -> None:
    found = read_lock(TF / target, "burst")
    assert found.state == LockState.UNKNOWN and found.backend == backend
    assert "credentials" in found.note and found.root == target


async def test_the_terraform_driver_reads_one_lock_per_root(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(TF, config)
    settings = InfraSettings(
        driver=InfraKind.TERRAFORM,
        terraform=TerraformSettings(
            config_root=config,
            work_root=tmp_path / "work",
            targets={"azure": "azure", "gcp": "gcp", "x": "lab"},
        ),
    )
    locks = await TerraformInfraDriver(settings).state_locks()
    assert [(lock.root, lock.state) for lock in locks] == [
        ("azure", LockState.UNKNOWN),
        ("gcp", LockState.UNKNOWN),
        ("lab", LockState.FREE),
    ]
    lab = InfraSettings(driver=InfraKind.LAB, apps_dir=tmp_path / "apps")
    assert await LabInfraDriver(lab).state_locks() == []


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_real_terraform_holding_its_lock_then_killed(root: Path, tmp_path: Path) -> None:
    """A real ``terraform apply`` waiting at its prompt holds the lock (who and when from its
    lock info); answered ``no``, it unlocks; killed while holding it, it leaves a stale info."""
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1"}

    def tf(*args: str) -> None:
        subprocess.run(["terraform", f"-chdir={root}", *args], env=env, check=True, capture_output=True)

    def apply() -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["terraform", f"-chdir={root}", "apply", "-no-color", "-var", "node_count=1"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    tf("init", "-input=false", "-no-color")
    tf("workspace", "new", "-no-color", "burst")
    proc = apply()
    try:
        held = poll("the apply's lock", lambda: read_lock(root, "burst"), LockState.LOCKED)
        assert held.operation == "OperationTypeApply" and held.lock_id and held.who and held.created
        proc.communicate("no\n", timeout=60)
        assert read_lock(root, "burst").state == LockState.FREE
        proc = apply()
        poll("the second apply's lock", lambda: read_lock(root, "burst"), LockState.LOCKED)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stale = read_lock(root, "burst")
        assert stale.state == LockState.STALE and stale.operation == "OperationTypeApply", stale
    finally:
        proc.kill()
        proc.wait()
