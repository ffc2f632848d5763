"""A production-shaped inventory end to end (issue 16): onprem and azure each on a site agent,
gcp a CloudNativePG replica cluster (the fake Kubernetes API at the HTTP boundary, the lab's
real gcp server behind it, promoted for real by the fake's controller), ``infra: terraform``
against its fake, the Route53 API in the lab. A runbook either completes or refuses before it
changes anything, naming what is missing; each case ends with one writer and DNS at it."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client, WorkflowFailureError

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import RunStatus, StepOutcome
from hybridops.contracts.failback import FailbackResult
from hybridops.contracts.failover import FailoverInput
from hybridops.inventory import (
    AppDatabaseSettings,
    AppsVia,
    CnpgSettings,
    FluxSettings,
    GitOpsKind,
    GitOpsSettings,
    GitSettings,
    InfraKind,
    InfraSettings,
    Inventory,
    PostgresKind,
    TerraformSettings,
)
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.fakes.argocd import TOKEN as ARGO_TOKEN
from tests.fakes.argocd import FakeServer, serving
from tests.fakes.flux import FakeKube, kubeconfig
from tests.fakes.gitrepo import head, run_git, seeded_bare
from tests.fakes.kubeapi import FakeKubeApi, PromotingHooks
from tests.lab.helpers import ask, assert_one_writer, dns_points_at, fenced, role, start, timeline

ROOT = Path(__file__).parents[2]
FAKE_TERRAFORM = ROOT / "tests" / "fakes" / "terraform"
TOKEN = "kube-prod-shape-tok-9a8b7c-very-secret"
TOKEN_ENV = "HYBRIDOPS_TEST_PROD_SHAPE_KUBE_TOKEN"


class LabHooks(PromotingHooks):
    """The fake operator acting on the lab's real gcp server: it promotes it (as
    :class:`PromotingHooks`), demotes it as CloudNativePG's switchover does before the server
    restarts as a replica (no new writes, sessions ended, a checkpoint whose REDO location is
    the token's), and stops and starts it when the cluster is fenced and unfenced."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.gcp = f"host={lab.ip('gcp')} port={lab.ports.pg} user=postgres dbname=postgres"
        super().__init__({"pg-gcp": self.gcp})

    async def demote(self, ns: str, name: str, simulated: dict[str, str]) -> dict[str, str]:
        """The operator fenced (stopped) the cluster first: the token is the stopped server's
        shutdown checkpoint, and it comes back in recovery (read-only) when started."""
        data = self.lab.data_dir("gcp")
        out = await asyncio.to_thread(self.lab.postgres._pg, "pg_controldata", str(data))
        control = {
            k.strip(): v.strip() for k, sep, v in (ln.partition(":") for ln in out.splitlines()) if sep
        }
        (data / "standby.signal").write_text("")
        return {
            **simulated,
            "latestCheckpointTimelineID": control["Latest checkpoint's TimeLineID"],
            "latestCheckpointREDOLocation": control["Latest checkpoint's REDO location"],
            "databaseSystemIdentifier": control["Database system identifier"],
        }

    async def stop(self, ns: str, name: str) -> None:
        data = str(self.lab.data_dir("gcp"))
        await asyncio.to_thread(self.lab.postgres._pg, "pg_ctl", "-D", data, "stop", "-m", "fast", "-w")

    async def start(self, ns: str, name: str) -> None:
        await asyncio.to_thread(self.lab.pg_start, "gcp")


@asynccontextmanager
async def cnpg_api(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeKubeApi]:
    """gcp's CloudNativePG: the fake Kubernetes API with the cluster ``db/pg-gcp``, a replica
    cluster of onprem whose instance is the lab's real gcp server."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    fake = FakeKubeApi(token=TOKEN, hooks=LabHooks(lab))
    await fake.start()
    try:
        row = ask(lab, "gcp", "SELECT system_identifier::text FROM pg_control_system()")
        assert row is not None
        fake.add_cluster(
            "pg-gcp",
            "db",
            replica_of="onprem",
            external={"onprem": lab.ip("onprem"), "azure": lab.ip("azure"), "pg-gcp": lab.ip("gcp")},
            system_id=str(row[0]),
            timeline=timeline(lab, "onprem"),
        )
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def kubeapi(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeKubeApi]:
    async with cnpg_api(lab, monkeypatch) as fake:
        yield fake


def production_shaped(lab: Lab, kubeapi: FakeKubeApi, tmp_path: Path, **changes: Any) -> Inventory:
    """The lab's inventory as production has it: agents for onprem and azure, CNPG for gcp,
    Terraform (its fake) for the clusters."""
    base = lab.inventory()
    cnpg = CnpgSettings(
        cluster="pg-gcp",
        namespace="db",
        api_url=kubeapi.url,
        token_ref=f"env:{TOKEN_ENV}",
        poll_s=0.02,
        timeout_s=20,
    )
    sites = {
        **base.sites,
        "gcp": base.sites["gcp"].model_copy(update={"driver": PostgresKind.CNPG, "cnpg": cnpg}),
    }
    roots = tmp_path / "roots"
    for cloud in ("azure", "gcp"):
        shutil.copytree(ROOT / "infra" / "terraform" / cloud, roots / cloud, dirs_exist_ok=True)
    (tmp_path / "tf").mkdir(exist_ok=True)
    infra = InfraSettings(
        driver=InfraKind.TERRAFORM,
        terraform=TerraformSettings(
            binary=str(FAKE_TERRAFORM),
            config_root=roots,
            work_root=tmp_path / "work",
            env={"FAKE_TF_DIR": str(tmp_path / "tf")},
        ),
    )
    return lab_inventory(lab, sites=sites, infra=infra, **changes)


async def test_a_failover_that_needs_what_terraform_cannot_do_refuses_first(
    client: Client, lab: Lab, kubeapi: FakeKubeApi, run_workers: Any, tmp_path: Path
) -> None:
    """The example's apps are repointed by GitOps, which ``infra: terraform`` does not do: the
    failover refuses at its decision, naming it; onprem stays the primary, DNS at it."""
    inv = production_shaped(lab, kubeapi, tmp_path)
    await run_workers(client, inv)
    handle = await start(client, inv, {"target": "gcp", "only_if_primary_down": False})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details = failure.value.cause.details[0]  # type: ignore[attr-defined]
    assert "infra (TerraformInfraDriver) has no 'repoint_apps' capability" in details["error"]
    assert not details["point_of_no_return_passed"]
    assert dns_points_at(lab) == "onprem" and not fenced(lab, "onprem")
    assert role(lab, "gcp") == "standby" and kubeapi.clusters[("db", "pg-gcp")]["status"]["timelineID"] == 1
    assert assert_one_writer(lab) == "onprem"


async def test_a_failover_to_the_cnpg_site_completes(
    client: Client, lab: Lab, kubeapi: FakeKubeApi, run_workers: Any, tmp_path: Path
) -> None:
    """onprem's server dies (its agent lives and marks it); gcp, a CloudNativePG replica
    cluster, is promoted through the Kubernetes API (its designated primary on a new timeline,
    the real server with it); Terraform prepares gcp's cluster; DNS moves; a write lands."""
    inv = production_shaped(lab, kubeapi, tmp_path, apps=[])
    await run_workers(client, inv)
    at = lab.break_site("onprem", agent=False)
    result = await (await start(client, inv, FailoverInput(target="gcp", incident_started_at=at))).result()
    assert result.status == RunStatus.SUCCEEDED, result.error
    steps = {s.name: s for s in result.steps}
    assert "ready" in (steps["prepare_target"].detail or "")
    assert fenced(lab, "onprem")
    cluster = kubeapi.clusters[("db", "pg-gcp")]
    assert cluster["status"]["timelineID"] == 2
    assert cluster["metadata"]["annotations"]["hybridops.io/promoted-by"]
    assert role(lab, "gcp") == "primary" and timeline(lab, "gcp") == 2
    assert role(lab, "azure") == "standby"
    assert dns_points_at(lab) == "gcp" and assert_one_writer(lab) == "gcp"
    calls = (tmp_path / "tf" / "calls.jsonl").read_text()
    assert '"apply"' in calls


async def test_a_failback_from_the_cnpg_site_completes(
    client: Client, lab: Lab, kubeapi: FakeKubeApi, run_workers: Any, tmp_path: Path
) -> None:
    """After a failover to gcp (CloudNativePG), the failback brings onprem home: onprem's agent
    rewinds it as a standby of gcp's real server, gcp's writes pause through the API (a
    demotion, with its token), onprem is promoted, DNS moves home; gcp, which CNPG cannot
    rewind, is fenced and left for the operator, and the evidence says so."""
    inv = production_shaped(lab, kubeapi, tmp_path, apps=[])
    await run_workers(client, inv)
    at = lab.break_site("onprem", agent=False)
    failover = await (await start(client, inv, FailoverInput(target="gcp", incident_started_at=at))).result()
    assert failover.status == RunStatus.SUCCEEDED, failover.error
    handle = await client.start_workflow(
        WorkflowType.FAILBACK.value,
        {"require_approval": False},
        id=f"test-failback-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=FailbackResult,
    )
    result: FailbackResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert any("'rewind' or 'reclone'" in w for w in result.warnings), result.warnings
    # Not tried: the plan knew the CNPG driver can do neither; the step says so, once.
    skipped = [s for s in result.steps if s.name == "rejoin_old_primary"]
    assert len(skipped) == 1 and skipped[0].outcome == StepOutcome.SKIPPED, skipped
    assert not any("did not rejoin" in w for w in result.warnings), result.warnings
    assert role(lab, "onprem") == "primary" and timeline(lab, "onprem") == 3
    assert dns_points_at(lab) == "onprem" and assert_one_writer(lab) == "onprem"
    cluster = kubeapi.clusters[("db", "pg-gcp")]
    assert cluster["metadata"]["annotations"].get("cnpg.io/fencedInstances") == '["*"]'
    assert role(lab, "gcp") in ("down", "standby")


KUBECONFIG_ENV = "HYBRIDOPS_TEST_PROD_SHAPE_FLUX_KUBECONFIG"


@asynccontextmanager
async def flux_gitops(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[GitOpsSettings, FakeKube, Path]]:
    """The GitOps side of production for gcp: a bare GitOps repository (under the lab's
    directory), and Flux on gcp's cluster (the fake Kubernetes API of tests/fakes/flux.py,
    reached through a kubeconfig's ``ctx-gcp`` context) whose GitRepository ``platform``
    fetches that repository."""
    repo = seeded_bare(lab.root)
    kube = FakeKube(repo=lambda: head(repo))
    kube.add_source("platform")
    server = FakeServer(handler=kube.handle)
    async with serving(server):
        monkeypatch.setenv(KUBECONFIG_ENV, kubeconfig(server.url, "ctx-gcp"))
        settings = GitOpsSettings(
            driver=GitOpsKind.FLUX,
            timeout_s=10.0,
            poll_s=0.05,
            flux=FluxSettings(
                kubeconfig_ref=f"env:{KUBECONFIG_ENV}",
                context_template="ctx-{cloud}",
                kustomization_template="{app}-{cloud}",
                kustomization_spec={
                    "path": "./apps/{app}/overlays/{cloud}",
                    "interval": "10m",
                    "sourceRef": {"kind": "GitRepository", "name": "platform"},
                },
            ),
            git=GitSettings(repo=str(repo)),
        )
        yield settings, kube, repo


def through_gitops(gitops: GitOpsSettings) -> dict[str, Any]:
    """The inventory's changes for production's GitOps: the workload ``web`` synced by
    ``gitops`` before fencing, the apps' database endpoint committed and synced."""
    return {"gitops": gitops, "workloads": ["web"], "app_database": AppDatabaseSettings(via=AppsVia.GITOPS)}


async def test_a_production_shaped_failover_moves_the_apps_through_flux(
    client: Client,
    lab: Lab,
    kubeapi: FakeKubeApi,
    run_workers: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production's whole shape (issue 17): agents for onprem and azure, gcp on CloudNativePG,
    Terraform preparing gcp's cluster, the workloads synced by Flux before anything is fenced,
    and NetBox's database endpoint committed to the GitOps repository and applied by Flux at
    that commit before DNS moves."""
    async with flux_gitops(lab, monkeypatch) as (gitops, kube, repo):
        inv = production_shaped(lab, kubeapi, tmp_path, **through_gitops(gitops))
        await run_workers(client, inv)
        at = lab.break_site("onprem", agent=False)
        handle = await start(client, inv, FailoverInput(target="gcp", incident_started_at=at))
        result = await handle.result()

    assert result.status == RunStatus.SUCCEEDED, result.error
    names = [s.name for s in result.steps]
    assert names.index("prepare_target") < names.index("sync_workloads") < names.index("fence_old_primary")
    assert names.index("promote") < names.index("repoint_apps") < names.index("dns_cutover")
    assert '"apply"' in (tmp_path / "tf" / "calls.jsonl").read_text()
    sha = head(repo)
    overlay = yaml.safe_load(run_git(repo, "show", "main:apps/netbox/overlays/gcp/kustomization.yaml"))
    assert f"DB_HOST={lab.inventory().site('gcp').host}" in overlay["configMapGenerator"][0]["literals"]
    # Flux fetched the commit at once and applied it, Ready.
    assert "platform" in kube.source_requests
    netbox = kube.objects["netbox-gcp"]
    assert netbox["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert netbox["spec"]["path"] == "./apps/netbox/overlays/gcp"
    assert kube.objects["web-gcp"]["status"]["conditions"][0]["status"] == "True"
    commits = run_git(repo, "log", "-p", "--all")
    assert TOKEN not in commits and ARGO_TOKEN not in commits
    assert kubeapi.clusters[("db", "pg-gcp")]["status"]["timelineID"] == 2
    assert dns_points_at(lab) == "gcp" and assert_one_writer(lab) == "gcp"
