"""The ``flux`` GitOps driver: one Flux ``Kustomization`` (``kustomize.toolkit.fluxcd.io/v1``)
per app and cloud, through the Kubernetes API with the official ``kubernetes`` client (its
blocking calls run in threads).

The driver owns the burst Kustomizations, built from ``gitops.flux.kustomization_spec``
(``{app}`` and ``{cloud}`` replaced; ``prune`` true unless the spec says otherwise):

- deploy: creates a missing Kustomization, or merge-patches an existing one to the spec with
  ``suspend: false`` (``changed`` when it was created, suspended or its spec differed); either
  way it requests a reconciliation (annotation ``reconcile.fluxcd.io/requestedAt``, which is not
  a change of the desired state) and waits until Flux handled that request and the ``Ready``
  condition is ``True`` with a ``status.lastAppliedRevision``. Given a revision (a commit the
  ``git`` driver just pushed: the apps' database endpoint), the Kustomizations' source (their
  ``spec.sourceRef``, a ``GitRepository``) is asked to fetch now too (the same annotation), and
  an app is done only once its ``lastAppliedRevision`` is that commit (``main@sha1:<sha>``).
- undeploy: deletes the Kustomization. With ``prune`` Flux's finalizer deletes every object it
  applied before the Kustomization goes away; the driver waits until it is gone (404). Deleting
  (rather than suspending, which leaves the workloads running) is what frees the burst nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from drivers import kube
from drivers.gitops.base import GitOpsDriver, fill, fill_all, object_name, result_of
from drivers.gitops.errors import GitOpsAuthFailed, GitOpsError, GitOpsRejected
from drivers.gitops.types import AppState, GitOpsResult
from hybridops.errors import ConfigError
from hybridops.inventory import GitOpsSettings

GROUP = "kustomize.toolkit.fluxcd.io"
VERSION = "v1"
PLURAL = "kustomizations"
KIND = "Kustomization"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_PLURALS = {"GitRepository": "gitrepositories", "OCIRepository": "ocirepositories", "Bucket": "buckets"}
"""The Flux sources a Kustomization may name (``spec.sourceRef.kind``), by their API plural."""
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
RUN_ANNOTATION = "hybridops.io/run-id"
REQUEST_TIMEOUT_S = 30.0

T = TypeVar("T")


class FluxDriver(GitOpsDriver):
    """Flux Kustomizations named by ``gitops.flux.kustomization_template``."""

    def __init__(self, settings: GitOpsSettings) -> None:
        super().__init__(settings)
        self.flux = settings.flux
        if not self.flux.kustomization_spec:
            raise ConfigError(
                "gitops.flux.kustomization_spec: required by gitops driver 'flux' "
                "(sourceRef, path, interval, ...)"
            )

    # ------------------------------------------------------------------ the interface

    async def _deploy(self, apps: list[str], cloud: str, run_id: str, revision: str | None) -> GitOpsResult:
        with await asyncio.to_thread(_Kube, self, cloud) as kube:
            requested = datetime.now(UTC).isoformat()
            changed = False
            sources: set[tuple[str, str, str]] = set()
            for app in apps:
                name = self._name(app, cloud)
                spec = {"prune": True, **fill_all(self.flux.kustomization_spec, app, cloud), "suspend": False}
                annotations = {REQUESTED_AT: requested, RUN_ANNOTATION: run_id}
                current = await kube.get(name)
                if current is None:
                    body = {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": KIND,
                        "metadata": {
                            "name": name,
                            "namespace": self.flux.namespace,
                            "annotations": annotations,
                        },
                        "spec": spec,
                    }
                    await kube.call("create", name, kube.api.create_namespaced_custom_object, body)
                    changed = True
                else:
                    have = {"suspend": False, **(current.get("spec") or {})}
                    changed = changed or not _contains(have, spec)
                    patch = {"metadata": {"annotations": annotations}, "spec": spec}
                    await kube.call("patch", name, kube.api.patch_namespaced_custom_object, name, patch)
                ref = spec.get("sourceRef") or {}
                if revision is not None and ref.get("kind") in SOURCE_PLURALS and ref.get("name"):
                    sources.add((ref["kind"], ref.get("namespace") or self.flux.namespace, ref["name"]))
            for kind, namespace, name in sorted(sources):
                # Fetch the commit now, not at the source's next interval.
                patch = {"metadata": {"annotations": {REQUESTED_AT: requested}}}
                await kube.call(
                    "patch",
                    name,
                    kube.api.patch_namespaced_custom_object,
                    name,
                    patch,
                    kind=kind,
                    namespace=namespace,
                )
            result = await self._wait(
                "deploy",
                cloud,
                lambda: self._read(kube, apps, cloud, gone=False, requested=requested, want=revision),
            )
        return result.model_copy(update={"changed": changed})

    async def _undeploy(self, apps: list[str], cloud: str, run_id: str) -> GitOpsResult:
        with await asyncio.to_thread(_Kube, self, cloud) as kube:
            changed = False
            for app in apps:
                name = self._name(app, cloud)
                current = await kube.get(name)
                if current is None:
                    continue
                changed = True
                if not (current.get("metadata") or {}).get("deletionTimestamp"):
                    await kube.call(
                        "delete", name, kube.api.delete_namespaced_custom_object, name, missing_ok=True
                    )
            result = await self._wait("undeploy", cloud, lambda: self._read(kube, apps, cloud, gone=True))
        return result.model_copy(update={"changed": changed})

    async def _status(self, apps: list[str], cloud: str) -> GitOpsResult:
        with await asyncio.to_thread(_Kube, self, cloud) as kube:
            return await self._read(kube, apps, cloud, gone=False)

    # ------------------------------------------------------------------ helpers

    def _name(self, app: str, cloud: str) -> str:
        return object_name(self.flux.kustomization_template, app, cloud, "gitops.flux.kustomization_template")

    async def _read(
        self,
        kube: _Kube,
        apps: list[str],
        cloud: str,
        gone: bool,
        requested: str | None = None,
        want: str | None = None,
    ) -> GitOpsResult:
        states: list[AppState] = []
        revisions: set[str] = set()
        for app in apps:
            name = self._name(app, cloud)
            obj = await kube.get(name)
            if obj is None:
                detail = f"no Kustomization {self.flux.namespace}/{name}"
                states.append(AppState(name=app, synced=gone, healthy=gone, detail=detail))
            elif gone:
                detail = f"Kustomization {name} being deleted"
                states.append(AppState(name=app, synced=False, healthy=False, detail=detail))
            else:
                state, revision = _state(app, name, obj, requested, want)
                states.append(state)
                if revision:
                    revisions.add(revision)
        return result_of(cloud, states, False, ",".join(sorted(revisions)) or None)


def _contains(have: Any, want: Any) -> bool:
    """Whether ``have`` already holds everything ``want`` sets (what a merge patch would set)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    return bool(have == want)


def _state(
    app: str, name: str, obj: dict[str, Any], requested: str | None, want: str | None = None
) -> tuple[AppState, str | None]:
    """The app's state from its Kustomization: Ready, for the current generation, after the
    reconcile request ``requested`` (when one was made), with an applied revision (the commit
    ``want``, when given)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    revision = status.get("lastAppliedRevision")
    pending: list[str] = []  # why the cluster may not hold the desired state yet
    if (obj.get("spec") or {}).get("suspend"):
        pending.append("suspended")
    if status.get("observedGeneration", -1) < meta.get("generation", 0):
        pending.append(f"generation {meta.get('generation')} not observed yet")
    if requested is not None and status.get("lastHandledReconcileAt") != requested:
        pending.append("reconcile request not handled yet")
    if not revision:
        pending.append("no revision applied yet")
    elif want is not None and revision.rsplit(":", 1)[-1].rsplit("/", 1)[-1] != want:
        pending.append(f"at {revision}, waiting for {want[:12]}")
    healthy = ready is not None and ready.get("status") == "True"
    problems = list(pending)
    if ready is None:
        problems.append("no Ready condition")
    elif not healthy:
        problems.append(f"Ready={ready.get('status')} {ready.get('reason', '')}: {ready.get('message', '')}")
    detail = f"{name}: " + ("; ".join(problems) if problems else f"Ready at {revision}")
    return AppState(name=app, synced=not pending, healthy=healthy, detail=detail), revision


class _Kube:
    """The Kubernetes API of one cloud's cluster, for one call of the driver. Built in a thread:
    loading a kubeconfig may run an exec credential plugin (kubelogin, gke-gcloud-auth-plugin)."""

    def __init__(self, driver: FluxDriver, cloud: str) -> None:
        self.ns = driver.flux.namespace
        context = fill(driver.flux.context_template, "", cloud) if driver.flux.context_template else None
        self._client = kube.api_client(
            "gitops.flux", kubeconfig_ref=driver.flux.kubeconfig_ref, context=context
        )
        self.api = client.CustomObjectsApi(self._client)

    def __enter__(self) -> _Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def redact(self, text: str) -> str:
        """``text`` without the bearer token."""
        return kube.redact(self._client, text)

    async def get(self, name: str) -> dict[str, Any] | None:
        """The Kustomization ``name``, or None when it does not exist."""
        obj = await self.call("get", name, self.api.get_namespaced_custom_object, name, missing_ok=True)
        return obj if isinstance(obj, dict) else None

    async def call(
        self,
        verb: str,
        name: str,
        method: Callable[..., T],
        *args: Any,
        missing_ok: bool = False,
        kind: str = KIND,
        namespace: str | None = None,
    ) -> T | None:
        """``method(group, version, namespace, plural, *args)`` in a thread, for a
        Kustomization or (``kind``) a Flux source; a 404 is None when ``missing_ok``; other
        failures raise the matching domain error, credentials redacted."""
        ns = namespace or self.ns
        what = f"{verb} {kind} {ns}/{name}"
        group, plural = (GROUP, PLURAL) if kind == KIND else (SOURCE_GROUP, SOURCE_PLURALS[kind])
        try:
            return await asyncio.to_thread(
                method, group, VERSION, ns, plural, *args, _request_timeout=REQUEST_TIMEOUT_S
            )
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return None
            reason = self.redact(f"{what}: HTTP {err.status}: {kube.status_message(err)}")
            if err.status in (401, 403):
                raise GitOpsAuthFailed(reason) from None
            if err.status in (404, 409, 422) or (400 <= err.status < 500 and err.status != 429):
                raise GitOpsRejected(reason) from None
            raise GitOpsError(reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise GitOpsError(self.redact(f"{what}: {type(err).__name__}: {err}")) from None
