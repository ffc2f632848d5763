"""The one allow-list every child environment is built from (hybridops.childenv)."""

from __future__ import annotations

import pytest

from drivers.postgres import binaries as pgbin
from drivers.process import tool_environment
from hybridops.childenv import SAFE_ENV, child_environment

CANARY = "worker-credential-canary-77c1"


@pytest.fixture(autouse=True)
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HYBRIDOPS_TEST_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD", "TEMPORAL_API_KEY"):
        monkeypatch.setenv(name, CANARY)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


def no_worker_secret(env: dict[str, str]) -> bool:
    return CANARY not in env.values() and not any(k.startswith("HYBRIDOPS_") for k in env)


def test_child_environment_is_the_allow_list_plus_what_the_caller_sets() -> None:
    env = child_environment({"WALG_S3_PREFIX": "s3://b/p"}, inherited=("PGPASSFILE",))
    assert no_worker_secret(env)
    assert env["PATH"] == "/usr/bin:/bin" and env["WALG_S3_PREFIX"] == "s3://b/p"
    assert env["PGPASSFILE"] == "/nonexistent/pgpass"
    assert set(env) <= {*SAFE_ENV, "PGPASSFILE", "WALG_S3_PREFIX"}


def test_postgresql_servers_get_nothing_of_libpq_clients_get_its_settings() -> None:
    server = pgbin.tool_env("pg_ctl")
    assert no_worker_secret(server) and "PGPASSFILE" not in server and "PGPASSWORD" not in server
    client = pgbin.tool_env("pg_rewind", {"PGPASSWORD": "site-password-1"})
    assert client["PGPASSFILE"] == "/nonexistent/pgpass" and client["PGPASSWORD"] == "site-password-1"
    assert CANARY not in client.values()


def test_tool_environment_resolves_only_its_own_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ARM_SECRET", "arm-client-secret-1")
    env, secrets = tool_environment(
        ("TF_CLI_CONFIG_FILE",), {"ARM_SUBSCRIPTION_ID": "sub"}, {"ARM_CLIENT_SECRET": "env:TEST_ARM_SECRET"}
    )
    assert no_worker_secret(env) and env["ARM_CLIENT_SECRET"] == "arm-client-secret-1"
    assert secrets == ["arm-client-secret-1"] and "TEST_ARM_SECRET" not in env
