"""A fake Argo CD application API on loopback (aiohttp): what the ``argocd`` GitOps driver
talks to in the unit tests (tests/unit/test_gitops.py) and in the lab's failover with a GitOps
sync (tests/lab/test_failover_gitops.py). It checks what it receives and answers in the API's
documented format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "argo-tok-5c4b3a-very-secret"
REVISION = "8f3e2d1c0b9a8f3e2d1c0b9a8f3e2d1c0b9a8f3e"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    auth: str | None
    content_type: str
    body: Any


@dataclass
class FakeServer:
    """An HTTP server on loopback: records every request, answers with ``handler``."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    handler: Handler | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Authorization"),
                request.content_type,
                body,
            )
        )
        assert self.handler is not None
        return await self.handler(request)

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]


@asynccontextmanager
async def serving(fake: FakeServer) -> AsyncIterator[FakeServer]:
    """``fake`` listening on a free loopback port (its ``url`` set) until the block ends."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@dataclass
class FakeArgo:
    """Argo CD's application API: Applications by name; a sync makes one Progressing, then
    Synced and Healthy after ``settle`` more reads (never, when ``stuck``). A delete removes it
    after ``settle`` reads."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    settle: int = 2
    stuck: bool = False
    stuck_sync: bool = False
    """A sync never finishes (the rollout hangs), while a delete still does."""
    fail: int | None = None
    countdown: dict[str, int] = field(default_factory=dict)
    repo: Callable[[], str | None] | None = None
    """Reads the GitOps repository's head, as Argo CD's repo server does: a refresh
    (``?refresh=normal``) compares the Application with it (OutOfSync when it moved on), and a
    sync applies it. None: every revision is :data:`REVISION`."""
    refreshes: list[str] = field(default_factory=list)

    def head(self) -> str:
        return (self.repo() if self.repo else None) or REVISION

    def add(self, name: str, sync: str = "Synced", health: str = "Healthy") -> None:
        self.apps[name] = {
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default"},
            "status": {
                "sync": {"status": sync, "revision": REVISION},
                "health": {"status": health},
                "resources": [
                    {
                        "kind": "Deployment",
                        "namespace": "burst",
                        "name": name,
                        "status": sync,
                        "health": {"status": health},
                    }
                ],
            },
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"error": "invalid session", "code": 16, "message": "invalid session"}, status=401
            )
        if self.fail is not None:
            return web.json_response(
                {"error": f"boom (token {TOKEN})", "code": 13, "message": f"boom, echoing Bearer {TOKEN}"},
                status=self.fail,
            )
        parts = request.path.strip("/").split("/")
        assert parts[:3] == ["api", "v1", "applications"], request.path
        if request.method == "POST" and len(parts) == 3:
            body = await request.json()
            name = body["metadata"]["name"]
            assert name not in self.apps
            self.add(name, sync="OutOfSync", health="Missing")
            self.apps[name]["metadata"]["annotations"] = body["metadata"]["annotations"]
            self.apps[name]["spec"] = body["spec"]
            return web.json_response(self.apps[name])
        name = parts[3]
        app = self.apps.get(name)
        if app is None:
            msg = f'applications.argoproj.io "{name}" not found'
            return web.json_response({"error": msg, "code": 5, "message": msg}, status=404)
        if request.method == "GET":
            if request.query.get("refresh") == "normal":
                self.refreshes.append(name)
                sync = app["status"]["sync"]
                if sync["revision"] != self.head() and name not in self.countdown:
                    sync["status"] = "OutOfSync"
            self._tick(name)
            return (
                web.json_response(self.apps[name]) if name in self.apps else web.json_response({}, status=404)
            )
        if request.method == "POST" and parts[4:] == ["sync"]:
            body = await request.json()
            assert body["prune"] is True
            status = app["status"]
            status["operationState"] = {"phase": "Running", "message": "syncing"}
            status["health"] = {"status": "Progressing", "message": "Waiting for rollout"}
            for res in status["resources"]:
                res["health"] = {"status": "Progressing", "message": "0 of 2 updated replicas"}
            self.countdown[name] = self.settle
            return web.json_response(app)
        if request.method == "DELETE":
            assert request.query.get("cascade") == "true"
            app["metadata"]["deletionTimestamp"] = "2026-11-26T03:00:00Z"
            self.countdown[name] = self.settle
            return web.json_response({})
        raise AssertionError(f"unexpected {request.method} {request.path}")

    def _tick(self, name: str) -> None:
        if name not in self.countdown or self.stuck:
            return
        if self.stuck_sync and not self.apps[name]["metadata"].get("deletionTimestamp"):
            return
        self.countdown[name] -= 1
        if self.countdown[name] > 0:
            return
        del self.countdown[name]
        app = self.apps[name]
        if app["metadata"].get("deletionTimestamp"):
            del self.apps[name]
            return
        status = app["status"]
        status["sync"]["status"] = "Synced"
        status["sync"]["revision"] = self.head()
        status["health"] = {"status": "Healthy"}
        status["operationState"] = {"phase": "Succeeded", "message": "successfully synced"}
        for res in status["resources"]:
            res["status"] = "Synced"
            res["health"] = {"status": "Healthy"}
