"""The GitOps interface: put burst apps on a cloud's cluster, take them off, say how they are.

Drivers: ``argocd`` (the Argo CD API), ``flux`` (Flux Kustomizations through the Kubernetes API)
and ``git`` (the desired state committed to the GitOps repository). Each is configured by the
inventory's ``gitops`` section; workflows never know which one runs (DESIGN.md rule 6).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.gitops.errors import GitOpsNotReady
from drivers.gitops.types import AppState, GitOpsResult
from drivers.progress import report as report_progress
from hybridops.errors import ConfigError, InputError
from hybridops.inventory import GitOpsSettings

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
"""An app or cloud name: it goes into object names and file paths, so DNS-label characters only."""
OBJECT_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
"""A GitOps object's name once its template is filled (a Kubernetes object name, RFC 1123
subdomain): it goes into API paths, so no ``/``, and no ``..`` either."""


def fill(template: str, app: str, cloud: str) -> str:
    """``template`` with ``{app}`` and ``{cloud}`` replaced (plain text, not ``str.format``)."""
    return template.replace("{app}", app).replace("{cloud}", cloud)


def object_name(template: str, app: str, cloud: str, key: str) -> str:
    """The object ``template`` names for ``app`` on ``cloud``; :class:`ConfigError` naming the
    inventory ``key`` when that is not a Kubernetes object name (a template such as
    ``{app}/../x`` would reach another API path)."""
    name = fill(template, app, cloud)
    if not OBJECT_NAME.match(name) or ".." in name:
        raise ConfigError(
            f"{key}: {template!r} gives {name!r}, not an object name (a-z, 0-9, '-', '.'; at most 253)"
        )
    return name


def fill_all(value: Any, app: str, cloud: str) -> Any:
    """``value`` (a spec from the inventory) with :func:`fill` applied to every string in it."""
    if isinstance(value, str):
        return fill(value, app, cloud)
    if isinstance(value, dict):
        return {k: fill_all(v, app, cloud) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_all(v, app, cloud) for v in value]
    return value


def result_of(cloud: str, states: list[AppState], changed: bool, revision: str | None) -> GitOpsResult:
    """A result whose ``not_ready`` lists every app that is not synced and healthy."""
    not_ready = [f"{s.name}: {s.detail or 'not ready'}" for s in states if not (s.synced and s.healthy)]
    return GitOpsResult(cloud=cloud, changed=changed, apps=states, revision=revision, not_ready=not_ready)


class GitOpsDriver(ABC):
    """One GitOps system. Every method takes app names (``netbox``) and a cloud (``azure``); the
    driver maps them to its own objects through the inventory's templates.

    Errors: :class:`~drivers.gitops.errors.GitOpsAuthFailed`,
    :class:`~drivers.gitops.errors.GitOpsRejected` and
    :class:`~drivers.gitops.errors.GitOpsAppNotFound` are fatal;
    :class:`~drivers.gitops.errors.GitOpsError` (transient failures) and
    :class:`~drivers.gitops.errors.GitOpsNotReady` (the deadline passed) are retryable.
    No error message holds a credential.
    """

    def __init__(self, settings: GitOpsSettings) -> None:
        self.settings = settings

    async def deploy(
        self, apps: list[str], cloud: str, run_id: str, revision: str | None = None
    ) -> GitOpsResult:
        """Make ``apps`` run on ``cloud``'s cluster and wait (up to ``gitops.timeout_s``,
        heartbeating) until they are applied and healthy. Idempotent: when they already are,
        nothing is changed (``changed`` false). ``run_id`` is recorded where the system keeps
        such notes (a commit message, an annotation). With ``revision`` (a commit sha just
        pushed to the GitOps repository), done also means that this commit is what the
        cluster runs: the system is asked to fetch the repository, and an app applied at an
        older revision is not ready. Raises :class:`GitOpsNotReady` listing what is not
        healthy when the deadline passes."""
        apps = self._check(apps, cloud)
        log.info("gitops deploy %s on %s (run %s, revision %s)", apps, cloud, run_id, revision)
        result = await self._deploy(apps, cloud, run_id, revision)
        log.info(
            "gitops deploy %s on %s: changed=%s revision=%s", apps, cloud, result.changed, result.revision
        )
        return result

    async def undeploy(self, apps: list[str], cloud: str, run_id: str) -> GitOpsResult:
        """Remove ``apps`` from ``cloud``'s cluster (the burst's scale-in and the compensation of
        :meth:`deploy`) and wait until they are gone. Idempotent: apps already gone are not
        touched (``changed`` false when none was there)."""
        apps = self._check(apps, cloud)
        log.info("gitops undeploy %s from %s (run %s)", apps, cloud, run_id)
        result = await self._undeploy(apps, cloud, run_id)
        log.info("gitops undeploy %s from %s: changed=%s", apps, cloud, result.changed)
        return result

    async def status(self, apps: list[str], cloud: str) -> GitOpsResult:
        """Read-only: how ``apps`` are on ``cloud``'s cluster (``changed`` is always false)."""
        return await self._status(self._check(apps, cloud), cloud)

    @staticmethod
    def _check(apps: list[str], cloud: str) -> list[str]:
        """The apps, sorted and unique; :class:`InputError` naming the field when a name is not
        a DNS label (an app ``x/../../projects/prod`` must never reach a URL or a path)."""
        if not apps:
            raise InputError("apps: no app given")
        fields = [(f"apps[{i}]", app) for i, app in enumerate(apps)] + [("cloud", cloud)]
        for field, name in fields:
            if not isinstance(name, str) or not NAME.match(name):
                raise InputError(f"{field}: {name!r} is not a valid app or cloud name (a-z, 0-9, '-')")
        return sorted(set(apps))

    async def _wait(
        self, what: str, cloud: str, check: Callable[[], Awaitable[GitOpsResult]]
    ) -> GitOpsResult:
        """Poll ``check`` every ``gitops.poll_s`` until it reports nothing not ready; raise
        :class:`GitOpsNotReady` with what was still not ready when ``gitops.timeout_s`` passes."""
        deadline = time.monotonic() + self.settings.timeout_s
        while True:
            result = await check()
            if not result.not_ready:
                return result
            if time.monotonic() >= deadline:
                raise GitOpsNotReady(
                    f"{what} on {cloud}: not done after {self.settings.timeout_s:g} s",
                    result.not_ready,
                    cloud=cloud,
                )
            report_progress({"waiting": what, "cloud": cloud, "not_ready": result.not_ready})
            await asyncio.sleep(min(self.settings.poll_s, max(0.0, deadline - time.monotonic())))

    @abstractmethod
    async def _deploy(
        self, apps: list[str], cloud: str, run_id: str, revision: str | None
    ) -> GitOpsResult: ...

    @abstractmethod
    async def _undeploy(self, apps: list[str], cloud: str, run_id: str) -> GitOpsResult: ...

    @abstractmethod
    async def _status(self, apps: list[str], cloud: str) -> GitOpsResult: ...
