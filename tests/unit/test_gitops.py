"""The GitOps drivers: ``argocd`` against a fake Argo CD API and ``flux`` against a fake
Kubernetes API (aiohttp servers on loopback that check what they receive and answer in each
API's documented format), ``git`` against a real temporary repository (bare repo + clone)."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from drivers.gitops import (
    GitOpsAppNotFound,
    GitOpsAuthFailed,
    GitOpsDriver,
    GitOpsError,
    GitOpsNotReady,
    GitOpsRejected,
    make_gitops_driver,
)
from drivers.gitops.argocd import ArgoCdDriver
from drivers.gitops.flux import REQUESTED_AT, FluxDriver
from drivers.gitops.git import GitDriver
from hybridops.errors import ConfigError, InputError
from hybridops.inventory import (
    ArgoCdSettings,
    FluxSettings,
    GitOpsKind,
    GitOpsSettings,
    GitSettings,
    parse_inventory,
)
from tests.fakes.argocd import REVISION, TOKEN, FakeArgo, FakeServer, serving
from tests.fakes.flux import KS_PATH, FakeKube
from tests.fakes.gitrepo import run_git, seeded_bare

TOKEN_ENV = "HYBRIDOPS_TEST_GITOPS_TOKEN"
RUN = "burst-2026-11-26-abc"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with serving(FakeServer()) as fake:
        yield fake


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return f"env:{TOKEN_ENV}"


def no_token(err: BaseException) -> str:
    text = str(err)
    assert TOKEN not in text
    return text


# --------------------------------------------------------------------------- argocd


@pytest.fixture
def argo(server: FakeServer) -> FakeArgo:
    fake = FakeArgo()
    server.handler = fake.handle
    return fake


def argocd(url: str, token_ref: str | None, timeout_s: float = 5.0, spec: bool = True) -> ArgoCdDriver:
    app_spec = {
        "project": "default",
        "destination": {"name": "{cloud}", "namespace": "burst"},
        "source": {"path": "apps/{app}"},
    }
    settings = GitOpsSettings(
        driver=GitOpsKind.ARGOCD,
        timeout_s=timeout_s,
        poll_s=0.01,
        argocd=ArgoCdSettings(url=url, token_ref=token_ref, app_spec=app_spec if spec else {}),
    )
    driver = make_gitops_driver(settings)
    assert isinstance(driver, ArgoCdDriver)
    return driver


async def test_argocd_deploy_syncs_out_of_sync_and_waits_until_healthy(
    server: FakeServer, argo: FakeArgo, token: str
) -> None:
    argo.add("burst-netbox-azure", sync="OutOfSync", health="Healthy")
    argo.add("burst-web-azure")
    result = await argocd(server.url, token).deploy(["web", "netbox"], "azure", RUN)

    assert result.changed and result.not_ready == []
    assert result.revision == REVISION
    assert [(a.name, a.synced, a.healthy) for a in result.apps] == [
        ("netbox", True, True),
        ("web", True, True),
    ]
    syncs = server.calls("POST")
    assert [s.path for s in syncs] == ["/api/v1/applications/burst-netbox-azure/sync"]
    assert syncs[0].body == {"prune": True}
    assert {s.auth for s in server.seen} == {f"Bearer {TOKEN}"}

    server.seen.clear()
    again = await argocd(server.url, token).deploy(["netbox", "web"], "azure", RUN)
    assert not again.changed and again.not_ready == []
    assert {s.method for s in server.seen} == {"GET"}


async def test_argocd_deploy_creates_a_missing_application_from_the_spec(
    server: FakeServer, argo: FakeArgo, token: str
) -> None:
    result = await argocd(server.url, token).deploy(["netbox"], "gcp", RUN)
    assert result.changed and result.not_ready == []
    created = server.calls("POST")[0]
    assert created.path == "/api/v1/applications"
    assert created.body["metadata"] == {
        "name": "burst-netbox-gcp",
        "annotations": {"hybridops.io/run-id": RUN},
    }
    assert created.body["spec"]["destination"] == {"name": "gcp", "namespace": "burst"}
    assert created.body["spec"]["source"] == {"path": "apps/netbox"}
    assert server.calls("POST")[1].path == "/api/v1/applications/burst-netbox-gcp/sync"

    with pytest.raises(GitOpsAppNotFound, match="burst-web-gcp"):
        await argocd(server.url, token, spec=False).deploy(["web"], "gcp", RUN)


async def test_argocd_timeout_lists_what_is_not_healthy(
    server: FakeServer, argo: FakeArgo, token: str
) -> None:
    argo.add("burst-netbox-azure", sync="OutOfSync", health="Degraded")
    argo.stuck = True
    with pytest.raises(GitOpsNotReady) as caught:
        await argocd(server.url, token, timeout_s=0.2).deploy(["netbox"], "azure", RUN)
    text = no_token(caught.value)
    assert caught.value.retryable
    assert len(caught.value.not_ready) == 1
    assert "netbox: burst-netbox-azure OutOfSync/Progressing" in text
    assert "Deployment burst/burst-netbox-azure Progressing (0 of 2 updated replicas)" in text
    assert "operation Running: syncing" in text

    status = await argocd(server.url, token).status(["netbox"], "azure")
    assert not status.changed and status.not_ready and not status.apps[0].healthy


async def test_argocd_undeploy_deletes_with_cascade_and_waits_until_gone(
    server: FakeServer, argo: FakeArgo, token: str
) -> None:
    argo.add("burst-netbox-azure")
    result = await argocd(server.url, token).undeploy(["netbox", "web"], "azure", RUN)
    assert result.changed and result.not_ready == []
    assert "burst-netbox-azure" not in argo.apps
    deletes = server.calls("DELETE")
    assert [(d.path, d.query) for d in deletes] == [
        ("/api/v1/applications/burst-netbox-azure", {"cascade": "true"})
    ]

    server.seen.clear()
    again = await argocd(server.url, token).undeploy(["netbox"], "azure", RUN)
    assert not again.changed and again.not_ready == []
    assert server.calls("DELETE") == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, GitOpsAuthFailed), (403, GitOpsAuthFailed), (500, GitOpsError), (400, GitOpsRejected)],
)
async def test_argocd_http_errors_map_to_domain_errors_without_the_token(
    server: FakeServer, argo: FakeArgo, token: str, status: int, error: type[Exception]
) -> None:
    argo.add("burst-netbox-azure")
    argo.fail = status
    with pytest.raises(error) as caught:
        await argocd(server.url, token).deploy(["netbox"], "azure", RUN)
    text = no_token(caught.value)
    assert f"HTTP {status}" in text and "***" in text


async def test_argocd_wrong_token_is_fatal(
    server: FakeServer, argo: FakeArgo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "wrong-token-value")
    with pytest.raises(GitOpsAuthFailed, match="HTTP 401: invalid session") as caught:
        await argocd(server.url, f"env:{TOKEN_ENV}").status(["netbox"], "azure")
    assert not caught.value.retryable
    assert "wrong-token-value" not in str(caught.value)


async def test_argocd_refused_connection_is_retryable(token: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(GitOpsError) as caught:
            await argocd(url, token).status(["netbox"], "azure")
    assert caught.value.retryable


# --------------------------------------------------------------------------- flux


@pytest.fixture
def kube(server: FakeServer) -> FakeKube:
    fake = FakeKube()
    server.handler = fake.handle
    return fake


KUBECONFIG_ENV = "HYBRIDOPS_TEST_GITOPS_KUBECONFIG"


@pytest.fixture
def kubeconfig(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kubeconfig (in the environment) whose ``ctx-azure`` context is the fake, with a token;
    its current context points elsewhere, so the driver must pick the cloud's context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "azure", "cluster": {"server": server.url}},
            {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}},
        ],
        "users": [{"name": "hybridops", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "ctx-azure", "context": {"cluster": "azure", "user": "hybridops"}},
            {"name": "ctx-gcp", "context": {"cluster": "nowhere", "user": "hybridops"}},
        ],
        "current-context": "ctx-gcp",
    }
    monkeypatch.setenv(KUBECONFIG_ENV, yaml.safe_dump(config))
    return f"env:{KUBECONFIG_ENV}"


def flux(kubeconfig: str, timeout_s: float = 5.0) -> FluxDriver:
    spec = {
        "path": "./burst/{app}",
        "interval": "5m",
        "sourceRef": {"kind": "GitRepository", "name": "platform"},
    }
    settings = GitOpsSettings(
        driver=GitOpsKind.FLUX,
        timeout_s=timeout_s,
        poll_s=0.01,
        flux=FluxSettings(kubeconfig_ref=kubeconfig, context_template="ctx-{cloud}", kustomization_spec=spec),
    )
    driver = make_gitops_driver(settings)
    assert isinstance(driver, FluxDriver)
    return driver


async def test_flux_deploy_creates_or_resumes_and_waits_for_ready(
    server: FakeServer, kube: FakeKube, kubeconfig: str
) -> None:
    kube.add("burst-web-azure", suspend=True)
    result = await flux(kubeconfig).deploy(["netbox", "web"], "azure", RUN)

    assert result.changed and result.not_ready == []
    assert result.revision == f"main@sha1:{REVISION}"
    assert all(a.synced and a.healthy for a in result.apps)
    created = server.calls("POST")[0]
    assert created.path == KS_PATH
    assert created.body["metadata"]["name"] == "burst-netbox-azure"
    assert created.body["spec"] == {
        "prune": True,
        "path": "./burst/netbox",
        "interval": "5m",
        "sourceRef": {"kind": "GitRepository", "name": "platform"},
        "suspend": False,
    }
    patch = server.calls("PATCH")[0]
    assert patch.path == f"{KS_PATH}/burst-web-azure"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["spec"]["suspend"] is False
    assert patch.body["metadata"]["annotations"]["hybridops.io/run-id"] == RUN
    requested = patch.body["metadata"]["annotations"][REQUESTED_AT]
    assert kube.objects["burst-web-azure"]["status"]["lastHandledReconcileAt"] == requested
    assert {s.auth for s in server.seen} == {f"Bearer {TOKEN}"}

    server.seen.clear()
    again = await flux(kubeconfig).deploy(["netbox", "web"], "azure", RUN)
    assert not again.changed and again.not_ready == []
    assert server.calls("POST") == [] and len(server.calls("PATCH")) == 2  # reconcile requests only


async def test_flux_timeout_lists_what_is_not_ready(
    server: FakeServer, kube: FakeKube, kubeconfig: str
) -> None:
    kube.add("burst-netbox-azure", ready=False)
    kube.objects["burst-netbox-azure"]["status"]["conditions"][0].update(
        reason="HealthCheckFailed", message="Deployment/burst/netbox not ready"
    )
    kube.stuck = True
    with pytest.raises(GitOpsNotReady) as caught:
        await flux(kubeconfig, timeout_s=0.2).deploy(["netbox"], "azure", RUN)
    text = no_token(caught.value)
    assert "reconcile request not handled yet" in text
    assert "Ready=False HealthCheckFailed: Deployment/burst/netbox not ready" in text
    assert "generation 2 not observed yet" in text  # the patch changed the spec (path)


async def test_flux_undeploy_deletes_and_waits_until_gone(
    server: FakeServer, kube: FakeKube, kubeconfig: str
) -> None:
    kube.add("burst-netbox-azure")
    result = await flux(kubeconfig).undeploy(["netbox", "web"], "azure", RUN)
    assert result.changed and result.not_ready == []
    assert [d.path for d in server.calls("DELETE")] == [f"{KS_PATH}/burst-netbox-azure"]
    assert kube.objects == {}

    server.seen.clear()
    again = await flux(kubeconfig).undeploy(["netbox"], "azure", RUN)
    assert not again.changed and server.calls("DELETE") == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, GitOpsAuthFailed), (403, GitOpsAuthFailed), (500, GitOpsError), (422, GitOpsRejected)],
)
async def test_flux_http_errors_map_to_domain_errors_without_the_token(
    server: FakeServer, kube: FakeKube, kubeconfig: str, status: int, error: type[Exception]
) -> None:
    kube.fail = status
    with pytest.raises(error) as caught:
        await flux(kubeconfig).deploy(["netbox"], "azure", RUN)
    text = no_token(caught.value)
    assert f"HTTP {status}" in text


def test_flux_needs_a_spec() -> None:
    with pytest.raises(ConfigError, match=r"gitops\.flux\.kustomization_spec"):
        make_gitops_driver(GitOpsSettings(driver=GitOpsKind.FLUX))


# --------------------------------------------------------------------------- git


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A bare GitOps repository with one commit on ``main`` (a README)."""
    return seeded_bare(tmp_path)


def git_driver(repo: Path | str, **extra: Any) -> GitDriver:
    settings = GitOpsSettings(
        driver=GitOpsKind.GIT,
        git=GitSettings(repo=str(repo), author="Burst Bot <burst@example.net>", **extra),
    )
    driver = make_gitops_driver(settings)
    assert isinstance(driver, GitDriver)
    return driver


def show(repo: Path, path: str) -> Any:
    return yaml.safe_load(run_git(repo, "show", f"main:{path}"))


async def test_git_deploy_commits_the_desired_state_once(bare: Path) -> None:
    driver = git_driver(bare)
    result = await driver.deploy(["web", "netbox"], "azure", RUN)

    head = run_git(bare, "rev-parse", "main").strip()
    assert result.changed and result.revision == head and result.not_ready == []
    assert show(bare, "clusters/azure/burst.yaml") == {"cloud": "azure", "apps": ["netbox", "web"]}
    log = run_git(bare, "log", "-1", "--format=%an <%ae>%n%B", "main")
    assert log.startswith("Burst Bot <burst@example.net>\nhybridops: deploy netbox, web on azure")
    assert f"run: {RUN}" in log

    again = await driver.deploy(["netbox"], "azure", RUN)
    assert not again.changed and again.revision == head
    assert run_git(bare, "rev-list", "--count", "main").strip() == "2"  # no empty commit

    status = await driver.status(["netbox", "other"], "azure")
    assert [(a.name, a.synced) for a in status.apps] == [("netbox", True), ("other", False)]
    assert status.not_ready == ["other: not listed in clusters/azure/burst.yaml at " + head[:12]]


async def test_git_undeploy_removes_apps_idempotently(bare: Path) -> None:
    driver = git_driver(bare)
    await driver.deploy(["netbox", "web"], "gcp", RUN)
    result = await driver.undeploy(["web"], "gcp", RUN)
    assert result.changed and result.not_ready == []
    assert show(bare, "clusters/gcp/burst.yaml")["apps"] == ["netbox"]
    count = run_git(bare, "rev-list", "--count", "main")
    again = await driver.undeploy(["web", "never-deployed"], "gcp", RUN)
    assert not again.changed and run_git(bare, "rev-list", "--count", "main") == count
    nothing = await driver.undeploy(["netbox"], "azure", RUN)  # no file for azure: nothing to commit
    assert not nothing.changed


async def test_git_creates_a_missing_branch_and_survives_a_concurrent_push(
    bare: Path, tmp_path: Path
) -> None:
    driver = git_driver(bare, branch="burst", path_template="state/{cloud}.yaml")
    first, second = await asyncio.gather(
        driver.deploy(["netbox"], "azure", RUN), driver.deploy(["web"], "gcp", RUN)
    )
    assert first.changed and second.changed
    assert show_branch(bare, "burst", "state/azure.yaml")["apps"] == ["netbox"]
    assert show_branch(bare, "burst", "state/gcp.yaml")["apps"] == ["web"]


def show_branch(repo: Path, branch: str, path: str) -> Any:
    return yaml.safe_load(run_git(repo, "show", f"{branch}:{path}"))


async def test_git_errors_name_the_problem_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, f"bot:{TOKEN}")
    driver = git_driver(tmp_path / "missing.git", credentials_ref=f"env:{TOKEN_ENV}")
    with pytest.raises(GitOpsRejected) as caught:
        await driver.deploy(["netbox"], "azure", RUN)
    text = no_token(caught.value)
    assert "git ls-remote exited" in text


async def test_git_credentials_go_through_the_environment(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake ``git`` first on PATH records argv and the environment, then runs the real one."""
    real = subprocess.run(
        ["sh", "-c", "command -v git"], check=True, capture_output=True, text=True
    ).stdout.strip()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    (bin_dir / "git").write_text(
        f'#!/bin/sh\necho "ARGV $*" >> {record}\n'
        f'echo "ENV $GIT_CONFIG_VALUE_0" >> {record}\nenv | sed "s/^/CHILD /" >> {record}\n'
        f'exec {real} "$@"\n'
    )
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(real).parent}")
    monkeypatch.setenv(TOKEN_ENV, f"bot:{TOKEN}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-own-key-never-for-git")  # the worker's own
    await git_driver(bare, credentials_ref=f"env:{TOKEN_ENV}").deploy(["netbox"], "azure", RUN)
    lines = record.read_text().splitlines()
    header = "Authorization: Basic " + base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    assert all(TOKEN not in line for line in lines if line.startswith("ARGV"))
    assert f"ENV {header}" in lines
    child = [line.removeprefix("CHILD ") for line in lines if line.startswith("CHILD ")]
    assert child and not [v for v in child if v.startswith(("HYBRIDOPS_", "AWS_"))]  # only the allow-list
    assert not [v for v in child if TOKEN in v or "never-for-git" in v]  # the token only as the header


# --------------------------------------------------------------------------- interface and config


def test_inventory_defaults_keep_old_inventories_valid() -> None:
    inv = parse_inventory(
        {
            "sites": {
                "onprem": {"host": "h", "data_dir": "d"},
                "azure": {"cloud": "azure", "host": "a", "data_dir": "e"},
            },
            "dns": {"zone": "z.", "record": "db.z."},
        }
    )
    assert inv.gitops.driver == GitOpsKind.GIT and inv.gitops.git.repo is None
    with pytest.raises(ConfigError, match=r"gitops\.git\.repo"):
        make_gitops_driver(inv.gitops)
    with pytest.raises(ConfigError, match=r"gitops\.argocd\.url"):
        make_gitops_driver(GitOpsSettings(driver=GitOpsKind.ARGOCD))
    with pytest.raises(ConfigError, match=r"gitops\.driver"):
        parse_inventory({**inv.model_dump(mode="json"), "gitops": {"driver": "spinnaker"}})


@pytest.mark.parametrize(("apps", "cloud"), [([], "azure"), (["../etc"], "azure"), (["netbox"], "Azure/x")])
async def test_invalid_names_are_input_errors(bare: Path, apps: list[str], cloud: str) -> None:
    driver: GitOpsDriver = git_driver(bare)
    with pytest.raises(InputError):
        await driver.deploy(apps, cloud, RUN)


async def test_git_first_commit_into_an_empty_repository(tmp_path: Path) -> None:
    """The lab's repository starts empty (a bare repo without commits)."""
    repo = tmp_path / "empty.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(repo))
    result = await git_driver(repo).deploy(["netbox"], "azure", RUN)
    assert result.changed and result.revision == run_git(repo, "rev-parse", "main").strip()
    assert show(repo, "clusters/azure/burst.yaml")["apps"] == ["netbox"]


@pytest.mark.parametrize(
    ("apps", "cloud", "field"),
    [
        (["x/../../projects/prod"], "azure", r"apps\[0\]"),
        (["netbox", "a b"], "azure", r"apps\[1\]"),
        (["netbox"], "../gcp", "cloud"),
    ],
)
async def test_argocd_refuses_names_that_would_reach_another_api_path(
    server: FakeServer, argo: FakeArgo, token: str, apps: list[str], cloud: str, field: str
) -> None:
    driver = argocd(server.url, token)
    for call in (driver.deploy(apps, cloud, RUN), driver.undeploy(apps, cloud, RUN)):
        with pytest.raises(InputError, match=f"^{field}: "):
            await call
    assert server.seen == []  # refused before any request


async def test_argocd_template_that_climbs_paths_is_a_config_error(
    server: FakeServer, argo: FakeArgo, token: str
) -> None:
    driver = argocd(server.url, token)
    driver.argo.app_template = "{app}/../../projects/{cloud}"
    with pytest.raises(ConfigError, match=r"^gitops\.argocd\.app_template: "):
        await driver.undeploy(["netbox"], "prod", RUN)
    assert server.seen == []


def test_argocd_paths_quote_every_segment() -> None:
    from drivers.gitops.argocd import app_path

    assert app_path("burst-netbox-azure", "sync") == "/api/v1/applications/burst-netbox-azure/sync"
    assert app_path("x/../../projects/prod") == "/api/v1/applications/x%2F..%2F..%2Fprojects%2Fprod"


def test_flux_template_that_is_no_object_name_is_a_config_error() -> None:
    from drivers.gitops.base import object_name

    with pytest.raises(ConfigError, match=r"^gitops\.flux\.kustomization_template: "):
        object_name("{app}/{cloud}", "netbox", "azure", "gitops.flux.kustomization_template")
    assert object_name("burst-{app}-{cloud}", "netbox", "azure", "k") == "burst-netbox-azure"
