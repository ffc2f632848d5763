"""A failover whose inventory names GitOps workloads (issue 17 item 4): the workloads are
synced on the target's cluster, through the real ``argocd`` driver against a fake Argo CD API
(tests/fakes/argocd.py; no Argo CD runs here), before anything is fenced. A sync that never
gets healthy stops the run before the old primary is touched and before DNS moves, naming
what is not healthy, and the compensation takes the workloads off again. One lab for the
module, reset between cases; each ends with one writable server and DNS at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client, WorkflowFailureError

from hybridops.contracts.base import RunStatus, StepOutcome, TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.inventory import (
    AppDatabaseSettings,
    AppsVia,
    ArgoCdSettings,
    GitOpsKind,
    GitOpsSettings,
    GitSettings,
    Inventory,
)
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.fakes.argocd import TOKEN, FakeArgo, FakeServer, serving
from tests.fakes.gitrepo import head, run_git, seeded_bare
from tests.lab.helpers import assert_failed_over, assert_one_writer, dns_points_at, role, start

TOKEN_ENV = "HYBRIDOPS_TEST_ARGOCD_TOKEN"


@pytest_asyncio.fixture
async def argo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeServer, FakeArgo]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # the in-process workers resolve env:
    fake, api = FakeServer(), FakeArgo(settle=3)
    fake.handler = api.handle
    async with serving(fake):
        yield fake, api


def with_argo(lab: Lab, url: str) -> Inventory:
    gitops = GitOpsSettings(
        driver=GitOpsKind.ARGOCD,
        timeout_s=2.0,
        poll_s=0.05,
        argocd=ArgoCdSettings(
            url=url,
            token_ref=f"env:{TOKEN_ENV}",
            app_template="{app}-{cloud}",
            app_spec={
                "project": "default",
                "destination": {"name": "{cloud}"},
                "source": {"path": "apps/{app}"},
            },
        ),
    )
    return lab_inventory(lab, workloads=["netbox", "web"], gitops=gitops)


async def test_the_workloads_are_synced_and_healthy_before_anything_is_fenced(
    client: Client, module_lab: Lab, run_workers: Any, argo: tuple[FakeServer, FakeArgo]
) -> None:
    lab, (fake, api) = module_lab, argo
    inv = with_argo(lab, fake.url)
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, incident_started_at=at))
    result: FailoverResult = await handle.result()

    assert result.status == RunStatus.SUCCEEDED
    names = [s.name for s in result.steps]
    assert names.index("prepare_target") < names.index("sync_workloads") < names.index("fence_old_primary")
    sync = next(s for s in result.steps if s.name == "sync_workloads")
    assert sync.outcome == StepOutcome.CHANGED, sync
    # Each workload's Application was created from the spec on azure's cluster and synced.
    created = [s.body["metadata"]["name"] for s in fake.calls("POST") if s.path == "/api/v1/applications"]
    synced = [s.path for s in fake.calls("POST") if s.path.endswith("/sync")]
    assert sorted(created) == ["netbox-azure", "web-azure"]
    assert sorted(synced) == ["/api/v1/applications/netbox-azure/sync", "/api/v1/applications/web-azure/sync"]
    assert all(api.apps[n]["status"]["health"]["status"] == "Healthy" for n in created)
    assert fake.calls("DELETE") == [], "nothing compensated"
    assert_failed_over(lab, "azure")


async def test_a_sync_that_never_gets_healthy_stops_before_the_fence_and_dns_naming_it(
    client: Client, module_lab: Lab, run_workers: Any, argo: tuple[FakeServer, FakeArgo]
) -> None:
    lab, (fake, api) = module_lab, argo
    api.stuck_sync = True  # the rollout hangs: Progressing for ever
    inv = with_argo(lab, fake.url)
    await run_workers(client, inv)
    # A planned failover: the old primary is alive, so the compensation must leave it writable.
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, only_if_primary_down=False))
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()

    result = FailoverResult.model_validate(failed.value.cause.details[0])  # type: ignore[union-attr]
    assert result.status == RunStatus.COMPENSATED and not result.point_of_no_return_passed
    assert result.error and "GitOpsNotReady" in result.error, result.error
    # It names what is not healthy: the Applications and their resources.
    assert "netbox-azure OutOfSync/Progressing" in result.error or "netbox-azure" in result.error, (
        result.error
    )
    assert "Deployment burst/netbox-azure Progressing" in result.error, result.error
    sync = [s for s in result.steps if s.name == "sync_workloads"]
    assert len(sync) == 1 and sync[0].outcome == StepOutcome.FAILED and sync[0].attempts == 1, sync
    names = [s.name for s in result.steps]
    assert "fence_old_primary" not in names and "promote" not in names
    # Compensated: the workloads taken off again (deleted with cascade), the target released.
    assert [c.name for c in result.compensations] == ["remove_workloads", "release_target"]
    deleted = sorted(s.path for s in fake.calls("DELETE"))
    assert deleted == ["/api/v1/applications/netbox-azure", "/api/v1/applications/web-azure"]
    assert api.apps == {}
    # The old primary untouched, DNS unmoved: one writable server, DNS at it.
    assert role(lab, "azure") == "standby" and dns_points_at(lab) == "onprem"
    assert assert_one_writer(lab) == "onprem"


async def test_the_apps_database_is_gitops_desired_state_synced_before_dns_moves(
    client: Client,
    module_lab: Lab,
    run_workers: Any,
    argo: tuple[FakeServer, FakeArgo],
    tmp_path: Path,
) -> None:
    """``app_database.via: gitops`` (issue 17 item 3): after the promotion, NetBox's overlay for
    azure (its database endpoint, and an ExternalSecret naming azure's secret store) is
    committed to the GitOps repository, and Argo CD syncs NetBox at that very commit, Synced
    and Healthy, before DNS moves. No commit the run makes holds a secret value."""
    lab, (fake, api) = module_lab, argo
    repo = seeded_bare(tmp_path)
    seeded = head(repo)
    api.repo = lambda: head(repo)
    api.add("netbox-azure")  # NetBox already runs on azure's cluster, at an older commit

    gitops = with_argo(lab, fake.url).gitops.model_copy(update={"git": GitSettings(repo=str(repo))})
    inv = lab_inventory(lab, gitops=gitops, app_database=AppDatabaseSettings(via=AppsVia.GITOPS))
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, incident_started_at=at))
    result: FailoverResult = await handle.result()

    assert result.status == RunStatus.SUCCEEDED, result.error
    names = [s.name for s in result.steps]
    assert names.index("promote") < names.index("repoint_apps") < names.index("dns_cutover")
    repoint = next(s for s in result.steps if s.name == "repoint_apps")
    assert repoint.outcome == StepOutcome.CHANGED, repoint
    sha = head(repo)
    assert sha != seeded and "through GitOps at " + sha[:12] in repoint.detail, repoint.detail
    # The overlay says where NetBox's database is, and where its credentials come from.
    host = lab.inventory().site("azure").host
    kustomization = yaml.safe_load(
        run_git(repo, "show", "main:apps/netbox/overlays/azure/kustomization.yaml")
    )
    assert f"DB_HOST={host}" in kustomization["configMapGenerator"][0]["literals"]
    secret = yaml.safe_load(run_git(repo, "show", "main:apps/netbox/overlays/azure/externalsecret.yaml"))
    assert secret["spec"]["secretStoreRef"]["name"] == "azure-secrets"
    # Argo CD was made to look at the repository now, synced, and runs that commit.
    assert "netbox-azure" in api.refreshes
    assert api.apps["netbox-azure"]["status"]["sync"]["revision"] == sha
    assert api.apps["netbox-azure"]["status"]["health"]["status"] == "Healthy"
    # No commit of the run holds a secret: not Argo CD's token, not the lab's TSIG key.
    history = run_git(repo, "log", "-p", "--all")
    secrets = [TOKEN]
    if lab.tsig_file.exists():
        secrets.append(lab.tsig_file.read_text().strip())
    assert all(s and s not in history for s in secrets)
    assert_failed_over(lab, "azure")
