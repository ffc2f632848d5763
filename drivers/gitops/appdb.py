"""The apps' database endpoint as GitOps desired state (``app_database.via: gitops``).

After a promotion, ``repoint_apps`` makes every app the inventory names (NetBox and the
others) use the new primary by committing, per app, a Kustomize overlay for the target site to
the GitOps repository (``app_database.path_template``, ``{app}`` and ``{site}`` replaced):

- ``kustomization.yaml``: the app's base, and a ``configMapGenerator`` for the ConfigMap
  ``<app>-database`` with ``DB_HOST``, ``DB_PORT``, ``DB_NAME`` and ``DB_SITE``. The generator's
  hash suffix changes with the endpoint, so the workloads that mount it roll out on their own.
- ``externalsecret.yaml``: an External Secrets Operator ``ExternalSecret`` that reads the app's
  database credentials (``app_database.credentials_key``) from the site's secret store (the
  ``ClusterSecretStore`` ``app_database.secret_store``: Azure Key Vault, Google Secret Manager,
  Vault) into the Secret ``<app>-database-credentials``. It names the key, never a value: no
  credential is ever written to the repository.

The commit is made by the ``git`` driver (one commit for all the apps; nothing when the
overlays already say so), then the inventory's ``gitops.driver`` syncs the apps at that very
commit and waits until they are Synced and Healthy (``argocd``, ``flux``); with ``gitops.driver:
git`` the cluster's own agent applies it and done means pushed.
"""

from __future__ import annotations

import logging

import yaml

from drivers.gitops.base import NAME, GitOpsDriver
from drivers.gitops.git import GitDriver
from drivers.gitops.types import GitOpsResult
from drivers.infra.base import AppDatabase
from hybridops.errors import ConfigError
from hybridops.inventory import AppDatabaseSettings, GitOpsKind, GitOpsSettings

log = logging.getLogger(__name__)

HEADER = "# Managed by HybridOps (repoint_apps): where {app} finds its database on {site}.\n"
EXTERNAL_SECRETS_API = "external-secrets.io/v1beta1"


def fill(template: str, app: str, site: str) -> str:
    """``template`` with ``{app}`` and ``{site}`` replaced (plain text, not ``str.format``)."""
    return template.replace("{app}", app).replace("{site}", site)


def overlay(settings: AppDatabaseSettings, app: str, db: AppDatabase) -> dict[str, str]:
    """The files of ``app``'s overlay for ``db``'s site: paths in the repository to their text."""
    for field, name in (("apps", app), ("site", db.site)):
        if not NAME.match(name):
            raise ConfigError(f"{field}: {name!r} is not a valid app or site name (a-z, 0-9, '-')")
    path = fill(settings.path_template, app, db.site).strip("/")
    if not path or ".." in path.split("/"):
        raise ConfigError(
            f"app_database.path_template: {settings.path_template!r} gives {path!r}, "
            "not a directory inside the repository"
        )
    header = HEADER.format(app=app, site=db.site)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [settings.base, "externalsecret.yaml"],
        "configMapGenerator": [
            {
                "name": f"{app}-database",
                "literals": [
                    f"DB_HOST={db.host}",
                    f"DB_PORT={db.port}",
                    f"DB_NAME={db.dbname}",
                    f"DB_SITE={db.site}",
                ],
            }
        ],
    }
    external_secret = {
        "apiVersion": EXTERNAL_SECRETS_API,
        "kind": "ExternalSecret",
        "metadata": {"name": f"{app}-database"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {
                "kind": "ClusterSecretStore",
                "name": fill(settings.secret_store, app, db.site),
            },
            "target": {"name": f"{app}-database-credentials", "creationPolicy": "Owner"},
            "dataFrom": [{"extract": {"key": fill(settings.credentials_key, app, db.site)}}],
        },
    }
    return {
        f"{path}/kustomization.yaml": header + yaml.safe_dump(kustomization, sort_keys=False),
        f"{path}/externalsecret.yaml": header + yaml.safe_dump(external_secret, sort_keys=False),
    }


class AppDatabaseRepointer:
    """Commits the apps' overlays (:func:`overlay`) and has them synced."""

    def __init__(self, settings: AppDatabaseSettings, gitops: GitOpsSettings, sync: GitOpsDriver) -> None:
        self.settings = settings
        self.git = GitDriver(gitops)
        self.sync = sync
        self.kind = gitops.driver

    async def repoint(self, apps: list[str], db: AppDatabase, run_id: str) -> tuple[bool, GitOpsResult]:
        """Make ``apps`` use ``db`` through the GitOps repository: whether a commit was needed,
        and the sync's result (its ``revision`` is the commit the apps run). Idempotent: a
        retry after a crash finds the commit made and only waits for the sync."""
        files: dict[str, str] = {}
        names = sorted(set(apps))
        for app in names:
            files |= overlay(self.settings, app, db)
        message = f"hybridops: point {', '.join(names)} at {db.site}'s database\n\nrun: {run_id}\n"
        committed, sha = await self.git.commit_files(files, message)
        log.info("app database overlays for %s: committed=%s at %s", db.site, committed, sha)
        if self.kind == GitOpsKind.GIT:
            # No view of the cluster: its own agent applies the commit.
            return committed, GitOpsResult(cloud=db.site, changed=committed, revision=sha)
        result = await self.sync.deploy(apps, db.site, run_id, revision=sha)
        return committed, result.model_copy(update={"changed": committed or result.changed})
