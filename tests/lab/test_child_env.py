"""PostgreSQL servers run with the allow-listed environment, never the worker's: read from the
servers' own ``/proc/<postmaster pid>/environ``, for those the lab started and for one the
driver restarted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drivers.postgres import make_postgres_driver
from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from tests.lab.helpers import eventually

CANARY = "worker-credential-canary-0f3a9c"


@pytest.fixture
def worker_secrets(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials in the worker's environment before the lab starts (the lab's own DNS keys,
    ``HYBRIDOPS_LAB_AWS_KEYS``, are there too)."""
    monkeypatch.setenv("HYBRIDOPS_TEST_WORKER_SECRET", CANARY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("PGPASSWORD", CANARY)
    return CANARY


def postmaster_pid(lab: Lab, site: str) -> int:
    return int((lab.data_dir(site) / "postmaster.pid").read_text().splitlines()[0])


def server_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()  # root reads any process's
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def assert_allow_listed(env: dict[str, str], where: str) -> None:
    assert env, f"{where}: no environment read"
    assert not [k for k in env if k.startswith("HYBRIDOPS_")], f"{where}: {sorted(env)}"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "PGPASSWORD" not in env, f"{where}: {sorted(env)}"
    assert not [k for k, v in env.items() if CANARY in v or "lab-secret" in v], f"{where}: a secret"


async def test_servers_never_see_the_workers_environment(worker_secrets: str, lab: Lab) -> None:
    assert "HYBRIDOPS_LAB_AWS_KEYS" in os.environ  # the lab's keys are the worker's
    for site in SITES:
        assert_allow_listed(server_environment(postmaster_pid(lab, site)), f"{site} (started by the lab)")

    driver = make_postgres_driver(lab.inventory())
    before = postmaster_pid(lab, "azure")
    await driver.fence("azure", "run-child-env")
    await driver.unfence("azure")

    async def restarted() -> bool:
        path = lab.data_dir("azure") / "postmaster.pid"
        return path.exists() and postmaster_pid(lab, "azure") != before

    await eventually("azure restarted by the driver", restarted)
    assert_allow_listed(server_environment(postmaster_pid(lab, "azure")), "azure (restarted by the driver)")
