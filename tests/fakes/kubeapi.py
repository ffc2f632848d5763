"""A fake Kubernetes API server for CloudNativePG ``Cluster`` resources, over HTTP on loopback,
so that the ``cnpg`` driver's real ``kubernetes`` client code runs against it.

It answers as the API server and CloudNativePG document, and checks what it receives:

- ``GET``, ``PATCH`` (``application/merge-patch+json`` only; 415 otherwise) and ``PUT`` of
  ``/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters/{name}``, ``GET`` of the list;
- a bearer token on every request (401 ``Status`` without it);
- ``metadata.resourceVersion`` incremented on every change, the controller's status updates
  included (as a status subresource's are); a PATCH or PUT carrying another resourceVersion
  gets 409 Conflict; a patch's ``status`` is ignored (the status subresource's);
- 404 with a ``Status`` naming the cluster for an unknown one;
- CloudNativePG's admission rules on the replica stanza (422): ``enabled`` and ``primary``
  exclude each other; a ``promotionToken`` only on a primary and only a well-formed one; no
  change of role while a switch to replica is in progress.

A tiny controller plays CloudNativePG, one step per read of a cluster (so a test never waits
on a clock): fencing (``cnpg.io/fencedInstances``) stops the instances (none ready) and lifting
it starts them; a spec that makes a primary a replica demotes it in two steps (CloudNativePG
fences the cluster itself, then the cluster is a replica with ``status.demotionToken`` and the
whole-cluster fence is lifted, as the real operator's clean-up does); a spec that makes a
replica a primary promotes it in two steps (phase "Promoting to primary cluster", then primary
on timeline + 1), after checking a promotion token against the cluster's system identifier,
timeline and position, as CloudNativePG does. A primary's position moves on with every step; a
replica follows its source's timeline and position when the source is a cluster of this fake.

The PostgreSQL behind a cluster is simulated unless :class:`PostgresHooks` are given: the
hooks are called at each transition (promote, demote, stop, start), so that a real server (the
lab's standby) can be driven to match, and its ``pg_controldata`` can be the demotion token.

Run alone (for the lab): ``python -m tests.fakes.kubeapi --listen 127.0.0.1:0 --token-env NAME
--clusters clusters.yaml [--promote CLUSTER=CONNINFO ...]``; it prints ``listening on URL``
once it serves. The YAML is a list of :meth:`FakeKubeApi.add_cluster` arguments; each
``--promote`` names the real server :class:`PromotingHooks` promotes with its cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from aiohttp import web

GROUP = "postgresql.cnpg.io"
VERSION = "v1"
PREFIX = f"/apis/{GROUP}/{VERSION}/namespaces/"
FENCED = "cnpg.io/fencedInstances"
HEALTHY = "Cluster in healthy state"
PROMOTING = "Promoting to primary cluster"
SWITCHING = "Switchover in progress"


def encode_token(content: dict[str, str]) -> str:
    """A demotion token as CloudNativePG writes it: base64 of the JSON of pg_controldata's fields."""
    return base64.b64encode(json.dumps(content).encode()).decode()


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        content = json.loads(base64.b64decode(token, validate=True))
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def format_lsn(pos: int) -> str:
    return f"{pos >> 32:X}/{pos & 0xFFFFFFFF:X}"


def parse_lsn(lsn: str) -> int:
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def replica_mode(obj: dict[str, Any]) -> bool:
    """CloudNativePG's ``Cluster.IsReplica``: ``enabled`` when set, else ``primary`` is another."""
    replica = obj["spec"].get("replica")
    if not replica:
        return False
    if replica.get("enabled") is not None:
        return bool(replica["enabled"])
    return (replica.get("self") or obj["metadata"]["name"]) != replica.get("primary")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class PostgresHooks:
    """What the controller does to the PostgreSQL behind a cluster. This default only
    simulates; a subclass drives a real server (``pg_ctl promote``, stop, start) and reads its
    control data for the demotion token."""

    async def promote(self, ns: str, name: str) -> None:
        """The designated primary leaves recovery."""

    async def demote(self, ns: str, name: str, simulated: dict[str, str]) -> dict[str, str]:
        """The primary stops with a shutdown checkpoint and comes back in recovery; the token's
        fields (``pg_controldata``'s). ``simulated``: what the fake would answer itself."""
        return simulated

    async def stop(self, ns: str, name: str) -> None:
        """Fenced: PostgreSQL stopped on every instance."""

    async def start(self, ns: str, name: str) -> None:
        """The fence lifted: PostgreSQL started again."""


class PromotingHooks(PostgresHooks):
    """Promotes a real server when the controller promotes its cluster: ``conninfo`` maps a
    cluster's name to a libpq connection string of the server behind it (a superuser's, or
    one granted ``pg_promote``). Stopping, starting and demoting stay simulated: a real
    demotion restarts the server as a standby, which is the lab's business, not SQL's."""

    def __init__(self, conninfo: dict[str, str]) -> None:
        self.conninfo = conninfo

    async def promote(self, ns: str, name: str) -> None:
        if name not in self.conninfo:
            return
        import psycopg  # only here: the fake runs without a database otherwise

        async with await psycopg.AsyncConnection.connect(self.conninfo[name], autocommit=True) as conn:
            await conn.execute("SELECT pg_promote(true, 60)")


@dataclass
class Seen:
    """One request the fake answered."""

    method: str
    path: str
    auth: str | None
    content_type: str
    body: Any
    status: int = 0


@dataclass
class Simulated:
    """What the fake knows of the PostgreSQL behind a cluster."""

    system_id: str
    lsn: int = 0x3000060
    running: bool = True
    primary: bool = True


@dataclass
class FakeKubeApi:
    """The fake API server. ``hold``: the controller does nothing (a stuck operator);
    ``interfere``: that many coming PATCH/PUT requests find the object changed by someone else
    since it was read (its resourceVersion moved); ``fail``: status codes the next requests
    get instead of an answer."""

    token: str
    hooks: PostgresHooks = field(default_factory=PostgresHooks)
    clusters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sim: dict[tuple[str, str], Simulated] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    hold: bool = False
    interfere: int = 0
    fail: list[int] = field(default_factory=list)
    url: str = ""
    _version: int = 100
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ set-up

    def add_cluster(
        self,
        name: str,
        namespace: str = "default",
        *,
        replica_of: str | None = None,
        distributed: bool = True,
        source: str | None = None,
        external: dict[str, str] | None = None,
        system_id: str = "7311111111111111111",
        timeline: int = 1,
        instances: int = 2,
    ) -> dict[str, Any]:
        """A healthy ``Cluster``: a primary, or a replica cluster of the external cluster
        ``replica_of``. ``distributed``: the replica stanza uses ``primary`` (CloudNativePG's
        distributed topology), else ``enabled`` (a standalone replica cluster). ``source``: a
        primary's ``spec.replica.source`` (the cluster it would follow once demoted).
        ``external``: externalClusters, name to host."""
        replica: dict[str, Any] | None = None
        if replica_of is not None:
            replica = {"source": replica_of}
            replica.update({"primary": replica_of} if distributed else {"enabled": True})
        elif source is not None:
            replica = {"primary": name, "source": source}
        spec: dict[str, Any] = {
            "instances": instances,
            "externalClusters": [
                {
                    "name": n,
                    "connectionParameters": {"host": h, "user": "streaming_replica", "dbname": "postgres"},
                }
                for n, h in (external or {}).items()
            ],
        }
        if replica is not None:
            spec["replica"] = replica
        if replica_of is not None:
            spec["bootstrap"] = {"pg_basebackup": {"source": replica_of}}
        obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Cluster",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "generation": 1,
                "resourceVersion": self._next_version(),
                "annotations": {},
            },
            "spec": spec,
            "status": {
                "instances": instances,
                "readyInstances": instances,
                "instancesStatus": {"healthy": [f"{name}-{i + 1}" for i in range(instances)]},
                "currentPrimary": f"{name}-1",
                "targetPrimary": f"{name}-1",
                "phase": HEALTHY,
                "timelineID": timeline,
                "systemID": system_id,
                "writeService": f"{name}-rw",
                "readService": f"{name}-r",
                "conditions": [],
                "switchReplicaClusterStatus": {},
            },
        }
        self.clusters[(namespace, name)] = obj
        self.sim[(namespace, name)] = Simulated(system_id=system_id, primary=replica_of is None)
        return obj

    def cluster(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.clusters[(namespace, name)]

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ the API

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    @staticmethod
    def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details:
            body["details"] = details
        return web.json_response(body, status=code)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        seen = Seen(
            request.method, request.path, request.headers.get("Authorization"), request.content_type, body
        )
        self.seen.append(seen)
        response = await self._answer(request, body)
        seen.status = response.status
        return response

    async def _answer(self, request: web.Request, body: Any) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        if self.fail:
            code = self.fail.pop(0)
            return self._status(code, "InternalError", f"injected failure {code}")
        if not request.path.startswith(PREFIX):
            return self._status(404, "NotFound", "the server could not find the requested resource")
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        if len(parts) == 2 and parts[1] == "clusters" and request.method == "GET":
            items = [await self._reconciled(k) for k in self.clusters if k[0] == parts[0]]
            return web.json_response(
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterList", "items": items}
            )
        if len(parts) != 3 or parts[1] != "clusters":
            return self._status(404, "NotFound", "the server could not find the requested resource")
        key = (parts[0], parts[2])
        if key not in self.clusters:
            return self._status(
                404,
                "NotFound",
                f'clusters.{GROUP} "{key[1]}" not found',
                {"name": key[1], "group": GROUP, "kind": "clusters"},
            )
        if request.method == "GET":
            return web.json_response(await self._reconciled(key))
        if request.method not in ("PATCH", "PUT"):
            return self._status(405, "MethodNotAllowed", f"{request.method} is not supported here")
        if request.method == "PATCH" and request.content_type != "application/merge-patch+json":
            return self._status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {request.content_type}",
            )
        if not isinstance(body, dict):
            return self._status(400, "BadRequest", "the request body is not a JSON object")
        return self._write(key, request.method, body)

    def _write(self, key: tuple[str, str], method: str, body: dict[str, Any]) -> web.Response:
        obj = self.clusters[key]
        if self.interfere > 0:
            self.interfere -= 1
            obj["metadata"]["resourceVersion"] = self._next_version()  # someone else's change
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if (wanted is not None or method == "PUT") and wanted != obj["metadata"]["resourceVersion"]:
            return self._status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on clusters.{GROUP} "{key[1]}": the object has been'
                " modified; please apply your changes to the latest version and try again",
                {"name": key[1], "group": GROUP, "kind": "clusters"},
            )
        new = copy.deepcopy(obj)
        if method == "PUT":
            new["metadata"] = {
                **obj["metadata"],
                "annotations": (body.get("metadata") or {}).get("annotations") or {},
            }
            new["spec"] = copy.deepcopy(body.get("spec") or {})
        else:
            patch = {k: v for k, v in body.items() if k != "status"}
            patch["metadata"] = {
                k: v for k, v in (body.get("metadata") or {}).items() if k != "resourceVersion"
            }
            merge(new, patch)
        problem = self._admission(obj, new)
        if problem:
            return self._status(422, "Invalid", f'Cluster.{GROUP} "{key[1]}" is invalid: {problem}')
        if new["spec"] != obj["spec"]:
            new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        if new != obj:
            new["metadata"]["resourceVersion"] = self._next_version()
            self.clusters[key] = new
        return web.json_response(self.clusters[key])

    @staticmethod
    def _admission(old: dict[str, Any], new: dict[str, Any]) -> str:
        """CloudNativePG's validating webhook, for the replica stanza."""
        replica = new["spec"].get("replica") or {}
        if replica.get("enabled") is not None and replica.get("primary"):
            return (
                "spec.replicaCluster.enabled: Forbidden: replica mode enabled is not compatible"
                " with the primary field"
            )
        token = replica.get("promotionToken")
        if token:
            if replica_mode(new):
                return (
                    "spec.replicaCluster.token: Invalid value: promotionToken is only allowed for"
                    " primary clusters"
                )
            content = decode_token(token)
            needed = (
                "databaseSystemIdentifier",
                "latestCheckpointTimelineID",
                "latestCheckpointREDOLocation",
            )
            if content is None or not all(content.get(k) for k in needed):
                return "spec.replicaCluster.token: Invalid value: Invalid promotionToken format"
        if replica_mode(new) != replica_mode(old) and old["status"]["switchReplicaClusterStatus"].get(
            "inProgress"
        ):
            return (
                "spec.replica.enabled: Forbidden: cannot modify the field while there is an ongoing"
                " operation to enable the replica cluster"
            )
        return ""

    # ------------------------------------------------------------------ the controller

    async def _reconciled(self, key: tuple[str, str]) -> dict[str, Any]:
        """One step of the controller on the cluster, then the cluster."""
        if not self.hold:
            before = copy.deepcopy(self.clusters[key])
            await self._step(key)
            if self.clusters[key] != before:
                self.clusters[key]["metadata"]["resourceVersion"] = self._next_version()
        return self.clusters[key]

    async def _step(self, key: tuple[str, str]) -> None:
        obj, sim = self.clusters[key], self.sim[key]
        meta, status = obj["metadata"], obj["status"]
        ns, name = key
        fenced = "*" in json.loads(meta.get("annotations", {}).get(FENCED) or "[]")
        if fenced and sim.running:
            await self.hooks.stop(ns, name)
            sim.running = False
        elif not fenced and not sim.running:
            await self.hooks.start(ns, name)
            sim.running = True
        status["readyInstances"] = status["instances"] if sim.running else 0
        status["instancesStatus"] = {
            ("healthy" if sim.running else "failed"): [f"{name}-{i + 1}" for i in range(status["instances"])]
        }
        switch = status["switchReplicaClusterStatus"]
        want_replica = replica_mode(obj)
        if sim.primary and want_replica:
            await self._demote(key, fenced)
        elif not sim.primary and not want_replica and sim.running:
            if self._promote_step(key):
                await self.hooks.promote(ns, name)
                sim.primary = True
        elif sim.primary and sim.running and not switch.get("inProgress"):
            sim.lsn += 0x1000  # the applications write
        elif not sim.primary:
            self._follow(key)

    async def _demote(self, key: tuple[str, str], fenced: bool) -> None:
        obj, sim = self.clusters[key], self.sim[key]
        status, annotations = obj["status"], obj["metadata"].setdefault("annotations", {})
        switch = status["switchReplicaClusterStatus"]
        if not switch.get("inProgress"):
            # CloudNativePG fences the whole cluster to demote it, and says so in a condition.
            annotations[FENCED] = '["*"]'
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Fence"] + [
                {"type": "Fence", "status": "True", "reason": "ReplicaClusterAfterCreation"}
            ]
            switch["inProgress"] = True
            status["phase"] = SWITCHING
            return
        simulated = {
            "latestCheckpointTimelineID": str(status["timelineID"]),
            "redoWalFile": f"{status['timelineID']:08X}{sim.lsn >> 32:08X}{(sim.lsn >> 24) & 0xFF:08X}",
            "databaseSystemIdentifier": sim.system_id,
            "latestCheckpointREDOLocation": format_lsn(sim.lsn),
            "timeOfLatestCheckpoint": datetime.now(UTC).strftime("%a %d %b %Y %H:%M:%S UTC"),
            "operatorVersion": "fake",
        }
        content = await self.hooks.demote(key[0], key[1], simulated)
        sim.primary = False
        status["demotionToken"] = encode_token(content)
        # The operator's clean-up lifts a whole-cluster fence when its Fence condition is set,
        # whoever set the annotation.
        fenced_by_operator = any(c["type"] == "Fence" and c["status"] == "True" for c in status["conditions"])
        if fenced_by_operator and json.loads(annotations.get(FENCED) or "[]") == ["*"]:
            annotations.pop(FENCED, None)
        status["conditions"] = [c for c in status["conditions"] if c["type"] != "Fence"]
        switch["inProgress"] = False
        status["phase"] = HEALTHY

    def _promote_step(self, key: tuple[str, str]) -> bool:
        """One step of a replica cluster's promotion; True when it is done."""
        obj, sim = self.clusters[key], self.sim[key]
        status = obj["status"]
        token = (obj["spec"].get("replica") or {}).get("promotionToken")
        if status["phase"] != PROMOTING:
            if token and token != status.get("lastPromotionToken"):
                problem = self._token_problem(key, decode_token(token) or {})
                if problem:
                    status["phaseReason"] = problem
                    return False
            status["phase"] = PROMOTING
            return False
        status["phase"] = HEALTHY
        status.pop("phaseReason", None)
        status["timelineID"] += 1
        status.pop("demotionToken", None)
        if token:
            status["lastPromotionToken"] = token
        sim.lsn += 0x28  # the end-of-recovery record
        return True

    def _token_problem(self, key: tuple[str, str], content: dict[str, Any]) -> str:
        """Why CloudNativePG would not promote with this token yet (empty: it would)."""
        obj, sim = self.clusters[key], self.sim[key]
        if content.get("databaseSystemIdentifier") != sim.system_id:
            return "promotion token is for another system"
        if str(content.get("latestCheckpointTimelineID")) != str(obj["status"]["timelineID"]):
            return "promotion token is for another timeline"
        if parse_lsn(str(content.get("latestCheckpointREDOLocation"))) > sim.lsn:
            return "waiting for promotion token LSN to be replayed"
        return ""

    def _follow(self, key: tuple[str, str]) -> None:
        """A replica cluster replays its source's WAL (when the source is a cluster here)."""
        obj, sim = self.clusters[key], self.sim[key]
        source = (obj["spec"].get("replica") or {}).get("source")
        up = next((k for k in self.clusters if k[1] == source), None)
        if up is None or not self.sim[up].running or self.sim[up].system_id != sim.system_id:
            return
        if self.clusters[up]["status"]["timelineID"] >= obj["status"]["timelineID"]:
            obj["status"]["timelineID"] = self.clusters[up]["status"]["timelineID"]
            sim.lsn = max(sim.lsn, self.sim[up].lsn)


async def _serve(args: argparse.Namespace) -> None:
    token = os.environ.get(args.token_env)
    if not token:
        raise SystemExit(f"the environment variable {args.token_env} (the bearer token) is not set")
    promote = dict(item.split("=", 1) for item in args.promote)
    fake = FakeKubeApi(token=token, hooks=PromotingHooks(promote))
    with open(args.clusters) as f:
        for spec in yaml.safe_load(f) or []:
            fake.add_cluster(**spec)
    host, _, port = args.listen.rpartition(":")
    url = await fake.start(host, int(port))
    print(f"listening on {url}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Kubernetes API for CloudNativePG clusters")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--token-env", required=True, help="the variable holding the bearer token")
    parser.add_argument("--clusters", required=True, help="YAML: a list of add_cluster arguments")
    parser.add_argument(
        "--promote",
        action="append",
        default=[],
        metavar="CLUSTER=CONNINFO",
        help="promote this real server (pg_promote) when the cluster is promoted; repeatable",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
