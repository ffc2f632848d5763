"""The ``cnpg`` PostgreSQL driver against a fake Kubernetes API (``tests/fakes/kubeapi.py``): the
real ``kubernetes`` client talks HTTP to it, and it answers and moves the ``Cluster`` status as
the API server and CloudNativePG do. SQL finds no server here (the sites' addresses refuse
connections): the driver's best-effort positions are absent, the API's answers stand."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from drivers import kube
from drivers.loader import driver_class
from drivers.postgres import PostgresDriver, make_postgres_driver
from drivers.postgres.cnpg import (
    FENCED_BY,
    FENCED_INSTANCES,
    PROMOTED_BY,
    CnpgAuthFailed,
    CnpgPostgresDriver,
    decode_token,
)
from drivers.postgres.registry import DRIVERS
from hybridops.capabilities import Capability
from hybridops.errors import (
    CapabilityMissing,
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    PreconditionFailed,
)
from hybridops.inventory import Inventory, PostgresKind, parse_inventory
from hybridops.lsn import format_lsn, parse_lsn
from tests.fakes.kubeapi import FakeKubeApi

TOKEN = "kube-tok-7a6b5c-very-secret"
TOKEN_ENV = "HYBRIDOPS_TEST_CNPG_TOKEN"
RUN = "failover-2026-12-03-cnpg"
NS = "db"
HOSTS = {"onprem": "127.91.201.1", "azure": "127.91.201.2", "gcp": "127.91.201.3"}
"""Loopback addresses where no PostgreSQL listens: SQL is refused at once."""
EXTERNAL = {"onprem": HOSTS["onprem"], "pg-azure": HOSTS["azure"], "pg-gcp": HOSTS["gcp"]}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def kubeapi(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeKubeApi]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    fake = FakeKubeApi(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


def inventory(url: str, timeout_s: float = 5.0, **azure: Any) -> Inventory:
    port = closed_port()

    def cnpg(cluster: str) -> dict[str, Any]:
        return {
            "cluster": cluster,
            "namespace": NS,
            "api_url": url,
            "token_ref": f"env:{TOKEN_ENV}",
            "timeout_s": timeout_s,
            "poll_s": 0.005,
        }

    return parse_inventory(
        {
            "sites": {
                "onprem": {"host": HOSTS["onprem"], "port": port, "data_dir": "/srv/pg"},
                "azure": {
                    "cloud": "azure",
                    "host": HOSTS["azure"],
                    "port": port,
                    "driver": "cnpg",
                    "cnpg": {**cnpg("pg-azure"), **azure},
                },
                "gcp": {
                    "cloud": "gcp",
                    "host": HOSTS["gcp"],
                    "port": port,
                    "driver": "cnpg",
                    "cnpg": cnpg("pg-gcp"),
                },
            },
            "dns": {"zone": "corp.example.com", "record": "db.corp.example.com"},
        }
    )


def driver(fake: FakeKubeApi, **azure: Any) -> PostgresDriver:
    return make_postgres_driver(inventory(fake.url, **azure))


def replicas_of_onprem(fake: FakeKubeApi, distributed: bool = True) -> None:
    fake.add_cluster("pg-azure", NS, replica_of="onprem", distributed=distributed, external=EXTERNAL)
    fake.add_cluster("pg-gcp", NS, replica_of="onprem", external=EXTERNAL)


def azure_primary(fake: FakeKubeApi) -> None:
    """After a failover: azure the primary (handing over to gcp when demoted), gcp its replica."""
    fake.add_cluster("pg-azure", NS, source="pg-gcp", external=EXTERNAL, timeline=2)
    fake.add_cluster("pg-gcp", NS, replica_of="pg-azure", external=EXTERNAL, timeline=2)


def no_token(err: BaseException | str) -> str:
    text = str(err)
    assert TOKEN not in text
    return text


# --------------------------------------------------------------------------- declared


def test_capabilities_are_what_cloudnativepg_does() -> None:
    assert driver_class(DRIVERS, PostgresKind.CNPG, "sites.gcp.driver") is CnpgPostgresDriver
    assert CnpgPostgresDriver.capabilities == {
        Capability.PROMOTE,
        Capability.FENCE,
        Capability.FOLLOW,
        Capability.SWITCHOVER,
    }
    assert Capability.REWIND not in CnpgPostgresDriver.capabilities
    assert Capability.RECLONE not in CnpgPostgresDriver.capabilities
    inv = inventory("http://127.0.0.1:1")
    per_site = make_postgres_driver(inv)
    assert per_site.capabilities_of("azure") == CnpgPostgresDriver.capabilities
    assert Capability.REWIND in per_site.capabilities_of("onprem")


async def test_rewind_is_refused_naming_driver_and_capability(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    with pytest.raises(CapabilityMissing) as caught:
        await driver(kubeapi).rewind("azure", "onprem", RUN)
    assert caught.value.ids["driver"] == "cnpg" and caught.value.ids["capability"] == "rewind"
    assert kubeapi.seen == []


# --------------------------------------------------------------------------- assess


async def test_assess_a_replica_cluster(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    state = await driver(kubeapi).assess("azure")
    assert state.reachable and state.in_recovery and state.read_only
    assert state.timeline == 1 and state.upstream == "onprem"
    assert not state.fenced and state.promoted_by is None
    assert state.system_identifier == "7311111111111111111"  # the status's; SQL did not answer
    assert state.replay_lsn is None and state.error == ""
    assert [s.path for s in kubeapi.seen] == [
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NS}/clusters/pg-azure"
    ]
    assert {s.auth for s in kubeapi.seen} == {f"Bearer {TOKEN}"}


async def test_assess_a_primary_cluster(kubeapi: FakeKubeApi) -> None:
    azure_primary(kubeapi)
    pg = driver(kubeapi)
    azure, gcp = await pg.assess("azure"), await pg.assess("gcp")
    assert azure.writable and azure.timeline == 2 and azure.upstream is None
    assert gcp.in_recovery and gcp.upstream == "azure"


async def test_assess_a_fenced_cluster(kubeapi: FakeKubeApi) -> None:
    azure_primary(kubeapi)
    kubeapi.cluster("pg-azure", NS)["metadata"]["annotations"][FENCED_INSTANCES] = '["*"]'
    state = await driver(kubeapi).assess("azure")
    assert state.fenced and not state.reachable and not state.writable
    assert "fenced" in state.error and state.fenced_by is None  # a human's fence, not a run's


async def test_assess_never_raises_for_an_api_that_does_not_answer(kubeapi: FakeKubeApi) -> None:
    pg = make_postgres_driver(inventory(f"http://127.0.0.1:{closed_port()}"))
    state = await pg.assess("azure")
    assert not state.reachable and state.in_recovery is None
    assert "read Cluster db/pg-azure" in state.error


async def test_assess_names_refused_credentials_without_the_token(
    kubeapi: FakeKubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas_of_onprem(kubeapi)
    kubeapi.token = "another-token-entirely"
    state = await driver(kubeapi).assess("azure")
    assert not state.reachable and "HTTP 401" in no_token(state.error)


# --------------------------------------------------------------------------- promote


def patches(fake: FakeKubeApi) -> list[dict[str, Any]]:
    seen = fake.calls("PATCH")
    assert {s.content_type for s in seen} == {"application/merge-patch+json"}
    assert all(s.body["metadata"]["resourceVersion"] for s in seen)  # every patch is conditional
    return [s.body for s in seen if s.status == 200]


async def test_failover_promotes_without_a_token_and_marks_the_intent_first(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    pg = driver(kubeapi)
    promoted = await pg.promote("azure", None, 1.0, RUN)

    assert promoted.changed and promoted.timeline == 2
    mark, spec = patches(kubeapi)
    intent = json.loads(mark["metadata"]["annotations"][PROMOTED_BY])
    assert intent["run_id"] == RUN and intent["timeline"] == 1 and not intent["planned"]
    assert spec["spec"] == {"replica": {"primary": "pg-azure", "promotionToken": None}}
    cluster = kubeapi.cluster("pg-azure", NS)
    assert cluster["spec"]["replica"] == {"primary": "pg-azure", "source": "onprem"}
    state = await pg.assess("azure")
    assert state.writable and state.promoted_by == RUN and state.timeline == 2

    kubeapi.seen.clear()
    again = await pg.promote("azure", None, 1.0, RUN)
    assert not again.changed and again.timeline == 2 and RUN in again.detail
    assert kubeapi.calls("PATCH") == []


async def test_failover_of_a_standalone_replica_cluster_disables_replica_mode(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi, distributed=False)
    promoted = await driver(kubeapi).promote("azure", None, 1.0, RUN)
    assert promoted.changed and promoted.timeline == 2
    assert patches(kubeapi)[-1]["spec"] == {"replica": {"enabled": False}}


async def test_promote_waits_for_a_position_it_can_verify(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    with pytest.raises(PreconditionFailed, match="SQL does not answer"):
        await driver(kubeapi).promote("azure", "0/3000061", 0.05, RUN)
    assert kubeapi.calls("PATCH") == []


async def test_promote_refuses_a_fenced_cluster(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    kubeapi.cluster("pg-azure", NS)["metadata"]["annotations"][FENCED_INSTANCES] = '["*"]'
    with pytest.raises(PreconditionFailed, match="fenced"):
        await driver(kubeapi).promote("azure", None, 1.0, RUN, allow_fenced=True)
    assert kubeapi.calls("PATCH") == []


async def test_promote_that_cloudnativepg_never_finishes_times_out_with_the_phase(
    kubeapi: FakeKubeApi,
) -> None:
    replicas_of_onprem(kubeapi)
    kubeapi.hold = True
    with pytest.raises(DatabaseUnreachable, match="promotion not done") as caught:
        await driver(kubeapi, timeout_s=0.2).promote("azure", None, 1.0, RUN)
    assert caught.value.retryable and "Cluster in healthy state" in str(caught.value)
    kubeapi.hold = False
    retried = await driver(kubeapi).promote("azure", None, 1.0, RUN)  # this run's intent is there
    assert retried.changed and retried.timeline == 2


async def test_a_conflict_is_read_again_and_patched_again(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    kubeapi.interfere = 2
    promoted = await driver(kubeapi).promote("azure", None, 1.0, RUN)
    assert promoted.changed
    statuses = [s.status for s in kubeapi.calls("PATCH")]
    assert statuses == [409, 409, 200, 200]


async def test_endless_conflicts_are_a_retryable_error(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    kubeapi.interfere = 100
    with pytest.raises(DatabaseUnreachable, match="409 Conflict") as caught:
        await driver(kubeapi).promote("azure", None, 1.0, RUN)
    assert caught.value.retryable
    assert len(kubeapi.calls("PATCH")) == 5


async def test_an_unknown_cluster_is_named(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    with pytest.raises(ConfigError) as caught:
        await driver(kubeapi, cluster="pg-azur").promote("azure", None, 1.0, RUN)
    text = no_token(caught.value)
    assert "'pg-azur'" in text and "namespace 'db'" in text and "sites.azure.cnpg" in text
    assert not caught.value.retryable


async def test_refused_credentials_are_a_named_error_without_the_token(
    kubeapi: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    replicas_of_onprem(kubeapi)
    await driver(kubeapi).promote("azure", None, 1.0, RUN)  # logs of a whole promotion too
    kubeapi.token = "rotated-token-the-driver-lacks"
    with pytest.raises(CnpgAuthFailed) as caught:
        await driver(kubeapi).fence("azure", RUN)
    assert "HTTP 401" in no_token(caught.value) and "Cluster db/pg-azure" in str(caught.value)
    assert not caught.value.retryable
    assert TOKEN not in caplog.text


# --------------------------------------------------------------------------- switchover


async def test_planned_switchover_hands_the_demotion_token_over(kubeapi: FakeKubeApi) -> None:
    azure_primary(kubeapi)
    pg = driver(kubeapi)
    paused = await pg.pause_writes("azure", RUN)

    azure = kubeapi.cluster("pg-azure", NS)
    assert azure["spec"]["replica"]["primary"] == "pg-gcp"  # demoted towards its successor
    token = decode_token(azure["status"]["demotionToken"])
    assert token is not None and token["latestCheckpointTimelineID"] == "2"
    assert parse_lsn(paused.final_lsn) == (parse_lsn(token["latestCheckpointREDOLocation"]) or 0) + 1
    assert FENCED_INSTANCES not in azure["metadata"]["annotations"]  # CloudNativePG's own, lifted
    state = await pg.assess("azure")
    assert state.reachable and state.in_recovery and not state.writable

    again = await pg.pause_writes("azure", RUN)
    assert again.final_lsn == paused.final_lsn and not again.changed

    promoted = await pg.promote("gcp", paused.final_lsn, 1.0, RUN)
    assert promoted.timeline == 3
    assert patches(kubeapi)[-1]["spec"]["replica"] == {
        "primary": "pg-gcp",
        "promotionToken": azure["status"]["demotionToken"],
    }
    gcp = await pg.assess("gcp")
    assert gcp.writable and gcp.promoted_by == RUN
    assert json.loads(kubeapi.cluster("pg-gcp", NS)["metadata"]["annotations"][PROMOTED_BY])["planned"]


async def test_resume_writes_undoes_the_demotion(kubeapi: FakeKubeApi) -> None:
    azure_primary(kubeapi)
    pg = driver(kubeapi)
    await pg.pause_writes("azure", RUN)
    assert await pg.resume_writes("azure")
    state = await pg.assess("azure")
    assert state.writable and state.timeline == 3  # promoted again with its own token
    assert not await pg.resume_writes("azure")


async def test_pause_writes_needs_a_primary(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    with pytest.raises(PreconditionFailed, match="not a primary"):
        await driver(kubeapi).pause_writes("azure", RUN)


# --------------------------------------------------------------------------- fence


async def test_fence_demotes_then_fences_and_keeps_the_proof(kubeapi: FakeKubeApi) -> None:
    azure_primary(kubeapi)
    pg = driver(kubeapi)
    fenced = await pg.fence("azure", RUN)

    azure = kubeapi.cluster("pg-azure", NS)
    content = decode_token(azure["status"]["demotionToken"])
    assert content is not None and fenced.token is not None
    assert fenced.changed and fenced.was_running and not fenced.was_read_only
    assert fenced.token.system_identifier == "7311111111111111111" and fenced.token.timeline == 2
    assert fenced.token.lsn == content["latestCheckpointREDOLocation"] == fenced.fenced_lsn
    # The fence outlived CloudNativePG's clean-up of its own demotion fence.
    assert azure["metadata"]["annotations"][FENCED_INSTANCES] == '["*"]'
    assert azure["spec"]["replica"]["primary"] == "pg-gcp"
    state = await pg.assess("azure")
    assert state.fenced and state.fenced_by == RUN and not state.reachable

    again = await pg.fence("azure", "another-run")
    assert not again.changed and again.token == fenced.token and again.was_running

    assert await pg.unfence("azure")
    state = await pg.assess("azure")
    assert state.writable and not state.fenced and state.timeline == 3
    annotations = kubeapi.cluster("pg-azure", NS)["metadata"]["annotations"]
    assert FENCED_INSTANCES not in annotations and FENCED_BY not in annotations
    assert not await pg.unfence("azure")


async def test_fence_of_a_replica_cluster_needs_no_demotion(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    pg = driver(kubeapi)
    fenced = await pg.fence("gcp", RUN)
    assert fenced.was_read_only and fenced.token is None  # no SQL here, so no position to prove
    assert kubeapi.cluster("pg-gcp", NS)["spec"]["replica"]["primary"] == "onprem"
    assert await pg.retire_fence("gcp")
    assert (await pg.assess("gcp")).reachable


async def test_fence_through_an_api_that_does_not_answer_is_unverified(kubeapi: FakeKubeApi) -> None:
    pg = make_postgres_driver(inventory(f"http://127.0.0.1:{closed_port()}"))
    fenced = await pg.fence("azure", RUN)
    assert fenced.token is None and not fenced.changed and "unreachable" in fenced.detail


# --------------------------------------------------------------------------- follow


async def test_follow_points_the_replica_at_the_new_primary(kubeapi: FakeKubeApi) -> None:
    replicas_of_onprem(kubeapi)
    pg = driver(kubeapi)
    await pg.promote("azure", None, 1.0, RUN)
    assert await pg.follow("gcp", "azure")
    assert kubeapi.cluster("pg-gcp", NS)["spec"]["replica"] == {"primary": "pg-azure", "source": "pg-azure"}
    gcp = await pg.assess("gcp")
    assert gcp.upstream == "azure" and gcp.timeline == 2  # it followed azure's new timeline
    assert not await pg.follow("gcp", "azure")
    with pytest.raises(PreconditionFailed, match="does not follow"):
        await pg.follow("azure", "gcp")


async def test_follow_needs_an_external_cluster_for_the_new_primary(kubeapi: FakeKubeApi) -> None:
    kubeapi.add_cluster("pg-gcp", NS, replica_of="onprem", external={"onprem": HOSTS["onprem"]})
    with pytest.raises(PreconditionFailed, match="no externalClusters entry for azure"):
        await make_postgres_driver(inventory(kubeapi.url)).follow("gcp", "azure")


def test_lsn_helpers_agree_with_the_fake() -> None:
    assert format_lsn(parse_lsn("16/B374D848") or 0) == "16/B374D848"


# --------------------------------------------------------------------------- the API's failures


async def test_a_failing_api_server_is_retryable_and_an_admission_refusal_is_not(
    kubeapi: FakeKubeApi,
) -> None:
    replicas_of_onprem(kubeapi)
    pg = driver(kubeapi)
    kubeapi.fail = [503]
    with pytest.raises(DatabaseUnreachable, match="HTTP 503") as caught:
        await pg.promote("azure", None, 1.0, RUN)
    assert caught.value.retryable
    # Someone left the stanza invalid (enabled with primary): CloudNativePG's webhook refuses.
    kubeapi.cluster("pg-azure", NS)["spec"]["replica"]["enabled"] = True
    with pytest.raises(DatabaseError, match=r"HTTP 422.*not compatible with the primary field") as refused:
        await pg.promote("azure", None, 1.0, RUN)
    assert not refused.value.retryable


async def test_a_kubeconfig_and_its_context_reach_the_cluster(
    kubeapi: FakeKubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas_of_onprem(kubeapi)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "aks", "cluster": {"server": kubeapi.url}},
            {"name": "nowhere", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}},
        ],
        "users": [{"name": "hybridops", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "aks-dr", "context": {"cluster": "aks", "user": "hybridops"}},
            {"name": "other", "context": {"cluster": "nowhere", "user": "hybridops"}},
        ],
        "current-context": "other",
    }
    monkeypatch.setenv("HYBRIDOPS_TEST_CNPG_KUBECONFIG", yaml.safe_dump(kubeconfig))
    pg = driver(
        kubeapi,
        api_url=None,
        token_ref=None,
        kubeconfig_ref="env:HYBRIDOPS_TEST_CNPG_KUBECONFIG",
        context="aks-dr",
    )
    assert (await pg.assess("azure")).reachable


def test_an_api_url_with_a_ca_and_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----"
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("HYBRIDOPS_TEST_CNPG_CA", ca)
    api = kube.api_client(
        "sites.azure.cnpg",
        api_url="https://aks.example.net:443",
        token_ref=f"env:{TOKEN_ENV}",
        ca_cert_ref="env:HYBRIDOPS_TEST_CNPG_CA",
    )
    cfg = api.configuration
    assert cfg.host == "https://aks.example.net:443" and cfg.verify_ssl
    assert Path(cfg.ssl_ca_cert).read_text() == ca
    assert kube.redact(api, f"saw Bearer {TOKEN}") == "saw Bearer ***"
    api.close()
    with pytest.raises(ConfigError, match=r"sites\.azure\.cnpg\.kubeconfig_ref: not a kubeconfig"):
        monkeypatch.setenv("HYBRIDOPS_TEST_CNPG_CA", "{not: [yaml")
        kube.api_client("sites.azure.cnpg", kubeconfig_ref="env:HYBRIDOPS_TEST_CNPG_CA")


async def test_the_fake_runs_alone_for_the_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(yaml.safe_dump([{"name": "pg-azure", "namespace": NS, "replica_of": "onprem"}]))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.kubeapi",
        "--token-env",
        TOKEN_ENV,
        "--clusters",
        str(clusters),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        state = await make_postgres_driver(inventory(line.split()[-1])).assess("azure")
        assert state.reachable and state.in_recovery and state.upstream == "onprem"
    finally:
        proc.terminate()
        await proc.wait()
