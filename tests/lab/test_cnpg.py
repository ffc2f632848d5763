"""The ``cnpg`` driver with a real PostgreSQL server behind the fake Kubernetes API: the lab's
gcp standby plays the replica cluster's designated primary. The fake's controller promotes it
for real (:class:`PromotingHooks`: ``pg_promote``), so the driver's SQL (positions, the
catch-up before the promotion, the write probe) meets a real server, and the API and SQL must
agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from drivers.postgres import make_postgres_driver
from hybridops.inventory import CnpgSettings, PostgresKind
from hybridops.lab import Lab
from hybridops.lsn import parse_lsn
from tests.fakes.kubeapi import FakeKubeApi, PromotingHooks
from tests.lab.helpers import ask, role, timeline

TOKEN = "kube-lab-tok-3e2d1c-very-secret"
TOKEN_ENV = "HYBRIDOPS_TEST_CNPG_LAB_TOKEN"
RUN = "failover-cnpg-lab"


@pytest_asyncio.fixture
async def kubeapi(lab: Lab) -> AsyncIterator[FakeKubeApi]:
    gcp = f"host={lab.ip('gcp')} port={lab.ports.pg} user=postgres dbname=postgres"
    fake = FakeKubeApi(token=TOKEN, hooks=PromotingHooks({"pg-gcp": gcp}))
    await fake.start()
    yield fake
    await fake.stop()


async def test_the_cnpg_driver_promotes_a_real_standby(
    lab: Lab, kubeapi: FakeKubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    row = ask(lab, "gcp", "SELECT system_identifier::text FROM pg_control_system()")
    assert row is not None
    system_id = str(row[0])
    kubeapi.add_cluster(
        "pg-gcp",
        "db",
        replica_of="onprem",
        external={"onprem": lab.ip("onprem"), "pg-gcp": lab.ip("gcp")},
        system_id=system_id,
        timeline=timeline(lab, "onprem"),
    )
    inv = lab.inventory()
    cnpg = CnpgSettings(
        cluster="pg-gcp", namespace="db", api_url=kubeapi.url, token_ref=f"env:{TOKEN_ENV}", poll_s=0.02
    )
    sites = {
        **inv.sites,
        "gcp": inv.sites["gcp"].model_copy(update={"driver": PostgresKind.CNPG, "cnpg": cnpg}),
    }
    pg = make_postgres_driver(inv.model_copy(update={"sites": sites}))

    state = await pg.assess("gcp")
    assert state.reachable and state.in_recovery and state.upstream == "onprem"
    assert state.system_identifier == system_id and state.replay_lsn is not None
    assert state.streaming

    written = ask(lab, "onprem", "SELECT pg_current_wal_lsn()::text")
    assert written is not None
    before = timeline(lab, "onprem")  # a standby's is its primary's
    promoted = await pg.promote("gcp", str(written[0]), 30.0, RUN)

    assert promoted.changed and promoted.timeline == before + 1
    assert (parse_lsn(promoted.replay_lsn) or 0) >= (parse_lsn(str(written[0])) or 0)
    assert role(lab, "gcp") == "primary" and timeline(lab, "gcp") == promoted.timeline
    after = await pg.assess("gcp")
    assert after.writable and after.current_lsn is not None and after.promoted_by == RUN
    assert await pg.write_probe(lab.ip("gcp"), "gcp", inv.workload.probe_table, RUN)
