"""The ``argocd`` GitOps driver: one Argo CD Application per app and cloud, through the REST API.

- deploy: ``GET /api/v1/applications/{name}``; a missing Application is created
  (``POST /api/v1/applications``) from ``gitops.argocd.app_spec`` when the inventory gives one,
  else it is an error. One that is not ``Synced`` is synced (``POST .../{name}/sync`` with
  ``prune`` and the configured ``revision``). Then it waits until every Application is
  ``Synced`` and ``Healthy`` with no operation running. Given a revision (a commit the
  ``git`` driver just pushed: the apps' database endpoint), the first read asks for a refresh
  (``?refresh=normal``), an Application not at that revision is synced, and it is done only
  once Argo CD's sync status is at that very commit.
- undeploy: ``DELETE /api/v1/applications/{name}?cascade=true``, so Argo CD deletes the app's
  resources on the cluster before the Application itself (a 404 means already gone); then it
  waits until the Application is gone. Deleting (rather than scaling to zero) is what frees the
  burst nodes, and ``app_spec`` lets the next deploy bring it back.

The bearer token comes from ``gitops.argocd.token_ref``; it is held in memory only and redacted
from every error.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from drivers.gitops.base import GitOpsDriver, fill_all, object_name, result_of
from drivers.gitops.errors import GitOpsAppNotFound, GitOpsAuthFailed, GitOpsError, GitOpsRejected
from drivers.gitops.types import AppState, GitOpsResult
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError
from hybridops.inventory import GitOpsSettings

RUN_ANNOTATION = "hybridops.io/run-id"
"""Set on the Applications deploy creates: which run made them."""
REQUEST_TIMEOUT_S = 30.0
RUNNING_PHASES = frozenset({"Running", "Terminating"})
_BODY_CHARS = 200
APPLICATIONS = "/api/v1/applications"


def app_path(name: str, *rest: str) -> str:
    """The API path of Application ``name`` (and a sub-resource): each segment quoted, so no
    name can climb to another path (``x/../../projects/prod``)."""
    return "/".join([APPLICATIONS, *(quote(part, safe="") for part in (name, *rest))])


class ArgoCdDriver(GitOpsDriver):
    """Argo CD Applications named by ``gitops.argocd.app_template``."""

    def __init__(self, settings: GitOpsSettings) -> None:
        super().__init__(settings)
        if not settings.argocd.url:
            raise ConfigError("gitops.argocd.url: required by gitops driver 'argocd'")
        self.argo = settings.argocd
        self.base_url = settings.argocd.url.rstrip("/")

    # ------------------------------------------------------------------ the interface

    async def _deploy(self, apps: list[str], cloud: str, run_id: str, revision: str | None) -> GitOpsResult:
        async with _Api(self) as api:
            changed = False
            for app in apps:
                name = self._name(app, cloud)
                # With a revision just pushed, Argo CD is first made to compare against the
                # repository now (a normal refresh), not at its next poll (3 minutes by default).
                body = await api.get_app(name, refresh=revision is not None)
                if body is None:
                    await self._create(api, name, app, cloud, run_id)
                    await self._sync(api, name)
                    changed = True
                elif _needs_sync(body) or (revision is not None and _revision(body) != revision):
                    await self._sync(api, name)
                    changed = True
            result = await self._wait(
                "deploy", cloud, lambda: self._read(api, apps, cloud, gone=False, want=revision)
            )
        return result.model_copy(update={"changed": changed})

    async def _undeploy(self, apps: list[str], cloud: str, run_id: str) -> GitOpsResult:
        async with _Api(self) as api:
            changed = False
            for app in apps:
                name = self._name(app, cloud)
                if await api.get_app(name) is None:
                    continue
                status, _ = await api.call("DELETE", app_path(name), params={"cascade": "true"})
                changed = changed or status != 404
            result = await self._wait("undeploy", cloud, lambda: self._read(api, apps, cloud, gone=True))
        return result.model_copy(update={"changed": changed})

    async def _status(self, apps: list[str], cloud: str) -> GitOpsResult:
        async with _Api(self) as api:
            return await self._read(api, apps, cloud, gone=False)

    # ------------------------------------------------------------------ helpers

    def _name(self, app: str, cloud: str) -> str:
        return object_name(self.argo.app_template, app, cloud, "gitops.argocd.app_template")

    async def _create(self, api: _Api, name: str, app: str, cloud: str, run_id: str) -> None:
        if not self.argo.app_spec:
            raise GitOpsAppNotFound(
                f"Argo CD has no Application {name} and gitops.argocd.app_spec is empty",
                app=app,
                cloud=cloud,
            )
        body = {
            "metadata": {"name": name, "annotations": {RUN_ANNOTATION: run_id}},
            "spec": fill_all(self.argo.app_spec, app, cloud),
        }
        await api.call("POST", APPLICATIONS, body=body)

    async def _sync(self, api: _Api, name: str) -> None:
        body: dict[str, Any] = {"prune": True}
        if self.argo.revision:
            body["revision"] = self.argo.revision
        status, answer = await api.call("POST", app_path(name, "sync"), body=body, ok=(400,))
        if status == 404:
            raise GitOpsAppNotFound(f"Argo CD has no Application {name} to sync", app=name)
        # An automated sync may have started first: Argo CD refuses a second operation with a
        # 400 that says so, and the wait that follows covers the running one.
        if status == 400 and "another operation is already in progress" not in _message(answer):
            raise GitOpsRejected(api.redact(f"sync of {name}: HTTP 400: {_message(answer)}"), app=name)

    async def _read(
        self, api: _Api, apps: list[str], cloud: str, gone: bool, want: str | None = None
    ) -> GitOpsResult:
        states: list[AppState] = []
        revisions: set[str] = set()
        for app in apps:
            name = self._name(app, cloud)
            body = await api.get_app(name)
            if body is None:
                states.append(AppState(name=app, synced=gone, healthy=gone, detail=f"no Application {name}"))
                continue
            if gone:
                left = len((body.get("status") or {}).get("resources") or [])
                detail = f"{name} being deleted ({left} resources left)"
                states.append(AppState(name=app, synced=False, healthy=False, detail=detail))
                continue
            state, revision = _state(app, name, body)
            if want is not None and revision != want and state.synced:
                at = revision[:12] if revision else "no revision"
                detail = f"{state.detail}; at {at}, waiting for {want[:12]}"
                state = state.model_copy(update={"synced": False, "detail": detail})
            states.append(state)
            if revision:
                revisions.add(revision)
        revision = ",".join(sorted(revisions)) if revisions else None
        return result_of(cloud, states, False, revision)


def _revision(body: dict[str, Any]) -> str | None:
    """The revision the Application's sync status compares against."""
    return ((body.get("status") or {}).get("sync") or {}).get("revision")


def _needs_sync(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    running = (status.get("operationState") or {}).get("phase") in RUNNING_PHASES
    return not running and not body.get("operation") and (status.get("sync") or {}).get("status") != "Synced"


def _state(app: str, name: str, body: dict[str, Any]) -> tuple[AppState, str | None]:
    """The app's state from its Application, and the revision Argo CD compared against."""
    status = body.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    operation = status.get("operationState") or {}
    sync_status = sync.get("status", "Unknown")
    health_status = health.get("status", "Unknown")
    running = bool(body.get("operation")) or operation.get("phase") in RUNNING_PHASES
    synced = sync_status == "Synced" and not running
    healthy = health_status == "Healthy"
    parts = [f"{name} {sync_status}/{health_status}"]
    if health.get("message"):
        parts.append(str(health["message"]))
    if operation.get("phase") and operation.get("phase") != "Succeeded":
        parts.append(f"operation {operation['phase']}: {operation.get('message', '')}".rstrip(": "))
    elif body.get("operation"):
        parts.append("sync requested")
    for res in status.get("resources") or []:
        res_health = (res.get("health") or {}).get("status")
        bad_health = res_health is not None and res_health != "Healthy"
        if bad_health or res.get("status") == "OutOfSync":
            where = f"{res['namespace']}/" if res.get("namespace") else ""
            what = res_health if bad_health else res.get("status")
            message = (res.get("health") or {}).get("message")
            line = f"{res.get('kind', '?')} {where}{res.get('name', '?')} {what}"
            parts.append(line + (f" ({message})" if message else ""))
    return AppState(name=app, synced=synced, healthy=healthy, detail="; ".join(parts)), sync.get("revision")


def _message(body: Any) -> str:
    """Argo CD's error text (``{"error": ..., "code": ..., "message": ...}``)."""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")
    return ""


class _Api:
    """An HTTP session against the Argo CD API for one call of the driver, bearer token set."""

    def __init__(self, driver: ArgoCdDriver) -> None:
        self.driver = driver
        self._token: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Api:
        self._token = resolve_secret(self.driver.argo.token_ref)
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=min(REQUEST_TIMEOUT_S, self.driver.settings.timeout_s)),
            connector=aiohttp.TCPConnector(ssl=self.driver.argo.verify_tls),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def get_app(self, name: str, refresh: bool = False) -> dict[str, Any] | None:
        """The Application ``name``, or None when Argo CD says it does not exist; with
        ``refresh``, Argo CD compares it with the repository first (``refresh=normal``)."""
        params = {"refresh": "normal"} if refresh else None
        status, body = await self.call("GET", app_path(name), params=params)
        if status == 404:
            return None
        if not isinstance(body, dict):
            raise GitOpsError(f"GET Application {name}: answer is not a JSON object", app=name)
        return body

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """Send one request; its status and decoded body. 404 and the statuses in ``ok`` are
        returned; other failures raise the matching domain error, with the token redacted."""
        assert self._session is not None
        url = self.driver.base_url + path
        what = f"{method} {path}"
        try:
            async with self._session.request(method, url, json=body, params=params) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise GitOpsError(f"{what}: no answer within {self._session.timeout.total:g} s") from None
        except aiohttp.ClientError as err:
            raise GitOpsError(self.redact(f"{what}: {type(err).__name__}: {err}")) from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = None
        if status < 400 or status == 404 or status in ok:
            return status, answer
        text = _message(answer) or _excerpt(raw)
        reason = self.redact(f"{what}: HTTP {status}: {text}")
        if status in (401, 403):
            raise GitOpsAuthFailed(reason)
        if status >= 500 or status == 429:
            raise GitOpsError(reason)
        raise GitOpsRejected(reason)


def _excerpt(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return repr(text[:_BODY_CHARS] + ("..." if len(text) > _BODY_CHARS else ""))
