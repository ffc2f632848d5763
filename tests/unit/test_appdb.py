"""The apps' database endpoint as GitOps desired state (drivers/gitops/appdb.py,
``app_database.via: gitops``): the overlay it commits (a ConfigMap generator and an
ExternalSecret, never a credential), one commit however often it runs, and a sync by Argo CD
or Flux at that very commit, against a real bare repository and the fake APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from drivers.gitops import GitOpsNotReady, make_gitops_driver
from drivers.gitops.appdb import AppDatabaseRepointer, overlay
from drivers.infra.base import AppDatabase
from hybridops.errors import ConfigError
from hybridops.inventory import (
    AppDatabaseSettings,
    ArgoCdSettings,
    FluxSettings,
    GitOpsKind,
    GitOpsSettings,
    GitSettings,
    parse_inventory,
)
from tests.fakes.argocd import REVISION, TOKEN, FakeArgo, FakeServer, serving
from tests.fakes.flux import FakeKube, kubeconfig
from tests.fakes.gitrepo import head, run_git, seeded_bare

RUN = "failover-2026-12-06-abc"
DB = AppDatabase(site="gcp", host="10.30.0.5", port=5432, dbname="netbox")
TOKEN_ENV = "HYBRIDOPS_TEST_APPDB_TOKEN"
KUBECONFIG_ENV = "HYBRIDOPS_TEST_APPDB_KUBECONFIG"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return seeded_bare(tmp_path)


def show(repo: Path, path: str) -> Any:
    return yaml.safe_load(run_git(repo, "show", f"main:{path}"))


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with serving(FakeServer()) as fake:
        yield fake


def gitops(repo: Path, driver: GitOpsKind, **extra: Any) -> GitOpsSettings:
    return GitOpsSettings(
        driver=driver,
        timeout_s=extra.pop("timeout_s", 5.0),
        poll_s=0.01,
        git=GitSettings(repo=str(repo)),
        **extra,
    )


def repointer(settings: GitOpsSettings) -> AppDatabaseRepointer:
    return AppDatabaseRepointer(AppDatabaseSettings(via="gitops"), settings, make_gitops_driver(settings))


# --------------------------------------------------------------------------- the overlay


def test_the_overlay_names_the_endpoint_and_the_secret_store_never_a_credential() -> None:
    files = overlay(AppDatabaseSettings(), "netbox", DB)
    assert sorted(files) == [
        "apps/netbox/overlays/gcp/externalsecret.yaml",
        "apps/netbox/overlays/gcp/kustomization.yaml",
    ]
    kustomization = yaml.safe_load(files["apps/netbox/overlays/gcp/kustomization.yaml"])
    assert kustomization["resources"] == ["../../base", "externalsecret.yaml"]
    assert kustomization["configMapGenerator"] == [
        {
            "name": "netbox-database",
            "literals": ["DB_HOST=10.30.0.5", "DB_PORT=5432", "DB_NAME=netbox", "DB_SITE=gcp"],
        }
    ]
    secret = yaml.safe_load(files["apps/netbox/overlays/gcp/externalsecret.yaml"])
    assert secret["kind"] == "ExternalSecret"
    assert secret["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "gcp-secrets"}
    assert secret["spec"]["dataFrom"] == [{"extract": {"key": "netbox-database"}}]
    text = "".join(files.values()).lower()
    assert "password" not in text and "kind: secret\n" not in text


def test_templates_that_leave_the_repository_or_bad_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^app_database\.path_template: "):
        overlay(AppDatabaseSettings(path_template="../{app}/{site}"), "netbox", DB)
    with pytest.raises(ConfigError, match=r"^apps: "):
        overlay(AppDatabaseSettings(), "net/../box", DB)


def test_via_gitops_needs_the_gitops_repository() -> None:
    data = {
        "sites": {
            "onprem": {"host": "10.0.0.1", "data_dir": "/var/lib/postgresql/data"},
            "gcp": {"host": "10.30.0.5", "cloud": "gcp", "data_dir": "/var/lib/postgresql/data"},
        },
        "dns": {"record": "db.example.net", "zone": "example.net"},
        "app_database": {"via": "gitops"},
    }
    with pytest.raises(ConfigError, match=r"app_database\.via: 'gitops'.*gitops\.git\.repo is required"):
        parse_inventory(data)
    data["gitops"] = {"git": {"repo": "https://git.example.net/platform.git"}}
    assert parse_inventory(data).app_database.via == "gitops"


# --------------------------------------------------------------------------- commit and sync


async def test_git_commits_the_overlays_once_however_often_it_runs(bare: Path) -> None:
    before = head(bare)
    changed, result = await repointer(gitops(bare, GitOpsKind.GIT)).repoint(["web", "netbox"], DB, RUN)
    after = head(bare)
    assert changed and result.changed and result.revision == after != before
    assert show(bare, "apps/web/overlays/gcp/kustomization.yaml")["configMapGenerator"][0]["name"] == (
        "web-database"
    )
    message = run_git(bare, "log", "-1", "--format=%B", "main")
    assert message.startswith("hybridops: point netbox, web at gcp's database") and f"run: {RUN}" in message

    again, result = await repointer(gitops(bare, GitOpsKind.GIT)).repoint(["netbox", "web"], DB, RUN)
    assert not again and not result.changed and result.revision == after == head(bare)


async def test_argocd_syncs_the_apps_at_the_commit_it_made(
    bare: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    api = FakeArgo(settle=2, repo=lambda: head(bare))
    api.add("netbox-gcp")  # Synced and Healthy, at an older commit
    server.handler = api.handle
    argocd = ArgoCdSettings(url=server.url, token_ref=f"env:{TOKEN_ENV}", app_template="{app}-{cloud}")
    changed, result = await repointer(gitops(bare, GitOpsKind.ARGOCD, argocd=argocd)).repoint(
        ["netbox"], DB, RUN
    )
    sha = head(bare)
    assert changed and result.revision == sha != REVISION
    assert api.refreshes and api.apps["netbox-gcp"]["status"]["sync"]["revision"] == sha
    assert [s.path for s in server.calls("POST")] == ["/api/v1/applications/netbox-gcp/sync"]
    assert [(a.name, a.synced, a.healthy) for a in result.apps] == [("netbox", True, True)]


async def test_an_argocd_sync_that_never_gets_healthy_names_the_app(
    bare: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    api = FakeArgo(stuck=True, repo=lambda: head(bare))
    api.add("netbox-gcp")
    server.handler = api.handle
    argocd = ArgoCdSettings(url=server.url, token_ref=f"env:{TOKEN_ENV}", app_template="{app}-{cloud}")
    # 2 s, not less: the same deadline bounds each git command (slow under load).
    with pytest.raises(GitOpsNotReady) as caught:
        await repointer(gitops(bare, GitOpsKind.ARGOCD, argocd=argocd, timeout_s=2.0)).repoint(
            ["netbox"], DB, RUN
        )
    assert caught.value.not_ready and caught.value.not_ready[0].startswith("netbox: netbox-gcp ")
    assert "Progressing" in caught.value.not_ready[0]


async def test_flux_fetches_the_source_and_applies_the_commit_it_made(
    bare: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KUBECONFIG_ENV, kubeconfig(server.url, "ctx-gcp"))
    kube = FakeKube(repo=lambda: head(bare))
    kube.add_source("platform")  # fetched the seed commit
    server.handler = kube.handle
    spec = {
        "path": "./apps/{app}/overlays/{cloud}",
        "interval": "5m",
        "sourceRef": {"kind": "GitRepository", "name": "platform"},
    }
    flux = FluxSettings(
        kubeconfig_ref=f"env:{KUBECONFIG_ENV}",
        context_template="ctx-{cloud}",
        kustomization_template="{app}-{cloud}",
        kustomization_spec=spec,
    )
    changed, result = await repointer(gitops(bare, GitOpsKind.FLUX, flux=flux)).repoint(["netbox"], DB, RUN)
    sha = head(bare)
    assert changed and result.revision == f"main@sha1:{sha}"
    assert kube.source_requests == ["platform"]
    assert kube.objects["netbox-gcp"]["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert kube.objects["netbox-gcp"]["spec"]["path"] == "./apps/netbox/overlays/gcp"
