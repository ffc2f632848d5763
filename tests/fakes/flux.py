"""A fake Kubernetes API for Flux: the custom objects endpoints of ``Kustomization``s
(``kustomize.toolkit.fluxcd.io/v1``) and of ``GitRepository`` sources
(``source.toolkit.fluxcd.io/v1``), what the ``flux`` GitOps driver talks to in the unit tests
(tests/unit/test_gitops.py, tests/unit/test_appdb.py). Flux itself is played by
:meth:`FakeKube._reconcile`, one step per read, so no test waits on a clock.

With ``repo`` (a function that reads the GitOps repository's head), a source fetches that head
only when asked to reconcile (the ``reconcile.fluxcd.io/requestedAt`` annotation), as Flux's
source controller does between its intervals, and a Kustomization applies what its source
fetched."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from drivers.gitops.flux import REQUESTED_AT
from tests.fakes.argocd import REVISION, TOKEN

SOURCE_PATH = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"

KS_PATH = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations"


@dataclass
class FakeKube:
    """The Kubernetes API's custom objects endpoints for Flux Kustomizations. Flux itself is
    played by :meth:`_reconcile`: the first read after a reconcile request (or a create) finds
    it handled and the object Ready (never, when ``stuck``); a delete takes one read."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    stuck: bool = False
    fail: int | None = None
    pending: set[str] = field(default_factory=set)
    repo: Callable[[], str | None] | None = None
    """Reads the GitOps repository's head; None: every source is at :data:`REVISION`."""
    fetched: dict[str, str] = field(default_factory=dict)
    """Per GitRepository: the commit it fetched (at :meth:`add_source` and on each request)."""
    source_requests: list[str] = field(default_factory=list)

    def add_source(self, name: str) -> None:
        """A GitRepository ``name`` that has fetched the repository's head."""
        self.fetched[name] = (self.repo() if self.repo else None) or REVISION

    def add(self, name: str, suspend: bool = False, ready: bool = True) -> None:
        self.objects[name] = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system", "generation": 1, "annotations": {}},
            "spec": {"prune": True, "path": "./apps", "suspend": suspend, "interval": "5m"},
            "status": {
                "observedGeneration": 1,
                "lastAppliedRevision": f"main@sha1:{REVISION}",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "x"}],
            },
        }

    def _status(self, code: int, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
        return web.json_response(body, status=code)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._status(401, "Unauthorized")
        if self.fail is not None:
            return self._status(self.fail, f"etcd is sad (saw Bearer {TOKEN})")
        if request.path.startswith(SOURCE_PATH):
            return await self._source(request, request.path[len(SOURCE_PATH) :].strip("/"))
        assert request.path.startswith(KS_PATH), request.path
        name = request.path[len(KS_PATH) :].strip("/")
        obj = self.objects.get(name)
        if request.method == "POST" and not name:
            body = await request.json()
            assert request.content_type == "application/json"
            assert body["kind"] == "Kustomization" and body["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
            body["metadata"]["generation"] = 1
            body["status"] = {}
            self.objects[body["metadata"]["name"]] = body
            self.pending.add(body["metadata"]["name"])
            return web.json_response(body, status=201)
        if obj is None:
            return self._status(404, f'kustomizations.kustomize.toolkit.fluxcd.io "{name}" not found')
        if request.method == "GET":
            self._reconcile(name)
            if name not in self.objects:
                return self._status(404, "gone")
            return web.json_response(obj)
        if request.method == "PATCH":
            assert request.content_type == "application/merge-patch+json"
            patch = await request.json()
            before = copy.deepcopy(obj["spec"])
            _merge(obj, patch)
            if obj["spec"] != before:
                obj["metadata"]["generation"] += 1
            if REQUESTED_AT in (patch.get("metadata") or {}).get("annotations", {}):
                self.pending.add(name)
            return web.json_response(obj)
        if request.method == "DELETE":
            obj["metadata"]["deletionTimestamp"] = "2026-11-26T03:00:00Z"
            self.pending.add(name)
            return web.json_response(obj)
        raise AssertionError(f"unexpected {request.method} {request.path}")

    async def _source(self, request: web.Request, name: str) -> web.StreamResponse:
        if name not in self.fetched:
            return self._status(404, f'gitrepositories.source.toolkit.fluxcd.io "{name}" not found')
        assert request.method == "PATCH", request.method
        assert request.content_type == "application/merge-patch+json"
        patch = await request.json()
        assert REQUESTED_AT in patch["metadata"]["annotations"], patch
        self.source_requests.append(name)
        self.fetched[name] = (self.repo() if self.repo else None) or REVISION
        return web.json_response({"metadata": {"name": name}, "status": {}})

    def _revision(self, obj: dict[str, Any]) -> str:
        """What a Kustomization applies: its source's fetched commit."""
        source = (obj["spec"].get("sourceRef") or {}).get("name")
        return self.fetched.get(source, REVISION) if source else REVISION

    def _reconcile(self, name: str) -> None:
        if name not in self.pending or self.stuck:
            return
        self.pending.discard(name)
        obj = self.objects[name]
        if obj["metadata"].get("deletionTimestamp"):
            del self.objects[name]
            return
        if obj["spec"].get("suspend"):
            return
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "lastHandledReconcileAt": obj["metadata"]["annotations"].get(REQUESTED_AT),
            "lastAppliedRevision": f"main@sha1:{self._revision(obj)}",
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
        }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def kubeconfig(url: str, context: str) -> str:
    """A kubeconfig (YAML) whose current context ``context`` reaches ``url`` with the fake's
    token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": url}}],
            "users": [{"name": "hybridops", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "hybridops"}}],
            "current-context": context,
        }
    )
