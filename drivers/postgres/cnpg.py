"""The ``cnpg`` PostgreSQL driver: a site whose database is a CloudNativePG ``Cluster``
(``postgresql.cnpg.io/v1``) in AKS or GKE, in CloudNativePG's distributed topology (a replica
cluster while it is a standby), controlled through the Kubernetes API with the official
``kubernetes`` client (its blocking calls run in threads).

The API is the authority on role, fencing and timeline; SQL through libpq at the site's
``host``/``port`` (the cluster's ``-rw`` service) adds the WAL positions, best effort. What
this driver writes on the ``Cluster``, always as a JSON merge patch carrying the
``resourceVersion`` it read (a 409 Conflict is read again and decided again, a few times):

- promote: the annotation ``hybridops.io/promoted-by`` first (the run, the timeline it was on:
  intent before the act), then the promotion as CloudNativePG documents it. Planned (the old
  primary cluster was demoted and left ``status.demotionToken``): ``spec.replica.primary`` set
  to this cluster and ``spec.replica.promotionToken`` to that token, together; CloudNativePG
  waits until it replayed up to the token, then promotes. Unplanned (no token): ``primary`` set
  to this cluster without a token, or ``spec.replica.enabled: false`` for a standalone replica
  cluster (``enabled`` and ``primary`` exclude each other). Done when the status shows a primary
  on a timeline past the one it had.
- fence: a primary is demoted first (``spec.replica.primary`` set to its ``spec.replica.source``,
  or ``enabled: true``), so that lifting the fence never brings back a second writer, and its
  ``status.demotionToken`` (the shutdown checkpoint: system identifier, timeline, REDO
  location) is the fencing proof. Then ``cnpg.io/fencedInstances: '["*"]'``: CloudNativePG
  stops PostgreSQL on every instance and keeps it down. The order matters: CloudNativePG fences
  a cluster itself while it demotes it and lifts a whole-cluster fence when the demotion is
  done, which would lift ours too. The mark ``hybridops.io/fenced-by`` keeps what was observed
  first (and the token), so a retry answers the same and unfence restores it.
- pause_writes (failback's switchover): the same demotion without the fence; the final LSN is
  one byte past the shutdown checkpoint's REDO location (a standby that replayed past it has
  every write the primary made). Mark ``hybridops.io/paused-by``. resume_writes and unfence
  (compensations, before the point of no return) undo a demotion by promoting the cluster with
  its own demotion token, which CloudNativePG checks against its control data.
- follow: ``spec.replica.source`` (and ``primary``, in the distributed topology) set to the
  ``externalClusters`` entry that names the new primary.

Not offered: ``rewind`` (CloudNativePG decides itself how a demoted cluster rejoins: with the
demotion token, without a rebuild; after a failover, it must be re-created) and ``reclone``
(re-creating a replica cluster means deleting the ``Cluster`` and its volumes and creating it
again with ``bootstrap.pg_basebackup``: destructive, and the volumes' fate is the platform's
decision, not a runbook step's).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import urllib3
from kubernetes import client  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from drivers import kube
from drivers.postgres.sql import SqlSteps
from drivers.postgres.types import Fenced, Paused, Promoted, Rejoined
from drivers.progress import report as report_progress
from hybridops.capabilities import Capability
from hybridops.contracts.sites import FenceToken, RejoinMethod, SiteState
from hybridops.errors import (
    CapabilityMissing,
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    HybridOpsError,
    PreconditionFailed,
)
from hybridops.inventory import CnpgSettings, PostgresKind
from hybridops.lsn import format_lsn, parse_lsn

GROUP = "postgresql.cnpg.io"
VERSION = "v1"
PLURAL = "clusters"
FENCED_INSTANCES = "cnpg.io/fencedInstances"
"""CloudNativePG's fencing annotation: a JSON list of instance names, ``["*"]`` for all."""
FENCE_ALL = '["*"]'
PROMOTED_BY = "hybridops.io/promoted-by"
FENCED_BY = "hybridops.io/fenced-by"
PAUSED_BY = "hybridops.io/paused-by"
PROMOTING_PHASES = ("Promoting to primary cluster", "Switchover in progress", "Failing over")
"""Phases in which the cluster's primary is changing (CloudNativePG's ``Phase*`` constants)."""
CONFLICT_ATTEMPTS = 5
"""Read-decide-patch rounds before a stream of 409 Conflicts becomes a (retryable) error."""
REQUEST_TIMEOUT_S = 30.0
ACCESS_KEYS = {"kubeconfig_ref", "context", "api_url", "token_ref", "ca_cert_ref", "verify_tls"}
"""The settings of :class:`CnpgSettings` that say how to reach the API (:func:`kube.api_client`'s)."""

T = TypeVar("T")


class CnpgAuthFailed(ConfigError):
    """The Kubernetes API refused the credentials (401) or the permission (403): the inventory's
    ``sites.NAME.cnpg`` references are wrong or lack rights. Fatal; never carries the token."""


class _Conflict(Exception):
    """A 409: the ``Cluster`` changed since it was read."""


# ---------------------------------------------------------------------- reading a Cluster


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def _replica(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((obj.get("spec") or {}).get("replica") or {})


def _self_name(obj: dict[str, Any]) -> str:
    """This cluster's name in the distributed topology (``spec.replica.self``, else its own)."""
    return str(_replica(obj).get("self") or (obj.get("metadata") or {}).get("name") or "")


def is_replica(obj: dict[str, Any]) -> bool:
    """Whether the spec makes the cluster a replica cluster, as CloudNativePG decides it:
    ``enabled`` when it is set (a standalone replica cluster), else ``primary`` is another
    cluster (the distributed topology); no ``replica`` stanza: a primary."""
    replica = (obj.get("spec") or {}).get("replica")
    if not replica:
        return False
    if replica.get("enabled") is not None:
        return bool(replica["enabled"])
    return _self_name(obj) != replica.get("primary")


def fenced_instances(obj: dict[str, Any]) -> list[str]:
    """The instances ``cnpg.io/fencedInstances`` fences (``*``: all); [] when none."""
    raw = _annotations(obj).get(FENCED_INSTANCES)
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def is_fenced(obj: dict[str, Any]) -> bool:
    """The whole cluster, or its primary instance, is fenced."""
    names = fenced_instances(obj)
    return "*" in names or (_status(obj).get("currentPrimary") or "\0") in names


def _promoting(obj: dict[str, Any]) -> bool:
    status = _status(obj)
    return status.get("phase") in PROMOTING_PHASES or (
        status.get("targetPrimary") not in (None, "", status.get("currentPrimary"))
    )


def _primary_ready(obj: dict[str, Any]) -> bool:
    """A primary instance is running and ready (PostgreSQL answers)."""
    status = _status(obj)
    current = status.get("currentPrimary")
    if not current or is_fenced(obj) or int(status.get("readyInstances") or 0) < 1:
        return False
    healthy = (status.get("instancesStatus") or {}).get("healthy")
    return healthy is None or current in healthy


def _is_primary_now(obj: dict[str, Any], past_timeline: int | None = None) -> bool:
    """The spec makes it a primary and the status says the promotion is done (on a timeline
    past ``past_timeline``, when given), with a ready primary instance."""
    timeline = int(_status(obj).get("timelineID") or 0)
    return (
        not is_replica(obj)
        and not _promoting(obj)
        and _primary_ready(obj)
        and (past_timeline is None or timeline > past_timeline)
    )


def _mark(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    raw = _annotations(obj).get(key)
    try:
        mark = json.loads(raw) if raw else None
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def decode_token(token: str | None) -> dict[str, Any] | None:
    """A CloudNativePG demotion (promotion) token: base64 of JSON with ``databaseSystemIdentifier``,
    ``latestCheckpointTimelineID``, ``latestCheckpointREDOLocation``, ``redoWalFile``,
    ``timeOfLatestCheckpoint``; None when absent or not one."""
    if not token:
        return None
    try:
        content = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        return None
    return content if isinstance(content, dict) else None


def fence_token(token: str | None) -> FenceToken | None:
    """The fencing proof a demotion token carries: the shutdown checkpoint."""
    content = decode_token(token)
    if not content:
        return None
    try:
        return FenceToken(
            system_identifier=str(content["databaseSystemIdentifier"]),
            timeline=int(content["latestCheckpointTimelineID"]),
            lsn=str(content["latestCheckpointREDOLocation"]),
        )
    except (KeyError, ValueError):
        return None


def _demoted(obj: dict[str, Any]) -> bool:
    """A demotion is done: a replica with its token, no switch in progress."""
    status = _status(obj)
    return (
        is_replica(obj)
        and bool(status.get("demotionToken"))
        and not (status.get("switchReplicaClusterStatus") or {}).get("inProgress")
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------- the API


class _Cluster:
    """One site's ``Cluster`` through the Kubernetes API, for one call of the driver. Built in
    a thread (a kubeconfig may run a credential plugin)."""

    def __init__(self, site: str, cfg: CnpgSettings) -> None:
        self.site, self.name, self.ns = site, cfg.cluster, cfg.namespace
        access = cfg.model_dump(include=ACCESS_KEYS)
        self._client = kube.api_client(f"sites.{site}.cnpg", **access)
        self.api = client.CustomObjectsApi(self._client)

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    async def get(self) -> dict[str, Any]:
        obj = await self._call("read", self.api.get_namespaced_custom_object)
        assert isinstance(obj, dict)
        return obj

    async def patch(
        self, decide: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> tuple[dict[str, Any], bool]:
        """Read, ``decide`` the merge patch (None: nothing to change), patch it with the
        ``resourceVersion`` read; a 409 is read and decided again. The object after it, and
        whether it was patched."""
        for _ in range(CONFLICT_ATTEMPTS):
            obj = await self.get()
            body = decide(obj)
            if body is None:
                return obj, False
            meta = body.setdefault("metadata", {})
            meta["resourceVersion"] = (obj.get("metadata") or {}).get("resourceVersion")
            try:
                done = await self._call(
                    "patch",
                    self.api.patch_namespaced_custom_object,
                    body,
                    _content_type="application/merge-patch+json",
                )
            except _Conflict:
                report_progress({"conflict": f"{self.ns}/{self.name}", "reading": "again"})
                continue
            assert isinstance(done, dict)
            return done, True
        raise DatabaseUnreachable(
            f"Cluster {self.ns}/{self.name} changed under every one of {CONFLICT_ATTEMPTS} patches"
            " (409 Conflict); try again",
            site=self.site,
        )

    async def _call(self, verb: str, method: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``method(group, version, namespace, plural, name, *args)`` in a thread; failures as
        domain errors naming the cluster, credentials redacted."""
        what = f"{verb} Cluster {self.ns}/{self.name}"
        try:
            return await asyncio.to_thread(
                method,
                GROUP,
                VERSION,
                self.ns,
                PLURAL,
                self.name,
                *args,
                _request_timeout=REQUEST_TIMEOUT_S,
                **kw,
            )
        except ApiException as err:
            reason = kube.redact(self._client, f"{what}: HTTP {err.status}: {kube.status_message(err)}")
            if err.status == 409:
                raise _Conflict(reason) from None
            if err.status in (401, 403):
                raise CnpgAuthFailed(reason, site=self.site) from None
            if err.status == 404:
                raise ConfigError(
                    f"no Cluster {self.name!r} in namespace {self.ns!r} (sites.{self.site}.cnpg): {reason}",
                    site=self.site,
                ) from None
            if err.status == 429 or err.status >= 500:
                raise DatabaseUnreachable(reason, site=self.site) from None
            raise DatabaseError(reason, site=self.site) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise DatabaseUnreachable(
                kube.redact(self._client, f"{what}: {type(err).__name__}: {err}"), site=self.site
            ) from None


# ---------------------------------------------------------------------- the driver


class CnpgPostgresDriver(SqlSteps):
    """CloudNativePG clusters through the Kubernetes API; SQL (probes, catch-up, positions)
    through libpq at each site's address."""

    capabilities = frozenset({Capability.PROMOTE, Capability.FENCE, Capability.FOLLOW, Capability.SWITCHOVER})

    def _settings(self, site: str) -> CnpgSettings:
        cfg = self.inventory.site(site).cnpg
        if cfg is None:
            raise ConfigError(f"sites.{site}.cnpg: required by postgres driver 'cnpg'", site=site)
        return cfg

    async def _cluster(self, site: str) -> _Cluster:
        return await asyncio.to_thread(_Cluster, site, self._settings(site))

    async def _wait(
        self,
        cluster: _Cluster,
        what: str,
        done: Callable[[dict[str, Any]], bool],
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Read the cluster until ``done``; :class:`DatabaseUnreachable` (retryable: every step
        here converges) at the deadline, with the phase it was in."""
        cfg = self._settings(cluster.site)
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else cfg.timeout_s)
        while True:
            obj = await cluster.get()
            if done(obj):
                return obj
            status = _status(obj)
            if time.monotonic() > deadline:
                raise DatabaseUnreachable(
                    f"Cluster {cluster.ns}/{cluster.name}: {what} not done after"
                    f" {timeout_s or cfg.timeout_s:.0f} s (phase {status.get('phase')!r},"
                    f" timeline {status.get('timelineID')}, ready {status.get('readyInstances')})",
                    site=cluster.site,
                )
            report_progress({"waiting_for": what, "phase": status.get("phase"), "cluster": cluster.name})
            await asyncio.sleep(cfg.poll_s)

    # ------------------------------------------------------------------ assess

    async def _assess(self, site: str) -> SiteState:
        try:
            with await self._cluster(site) as cluster:
                obj = await cluster.get()
        except HybridOpsError as err:
            return SiteState(site=site, reachable=False, error=str(err))
        # No ready primary instance (fenced, stopped): no SQL to wait a connect timeout for.
        positions = await self._positions(site) if _primary_ready(obj) else None
        return self._state_of(site, obj, positions)

    async def _positions(self, site: str) -> dict[str, Any] | None:
        """What SQL adds to the API's answer (positions, the system identifier, read-only), or
        None when the server does not answer."""
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable:
            return None
        async with conn:
            try:
                cur = await conn.execute(
                    "SELECT pg_is_in_recovery() AS in_recovery,"
                    " pg_last_wal_receive_lsn()::text AS receive_lsn,"
                    " pg_last_wal_replay_lsn()::text AS replay_lsn,"
                    " pg_last_xact_replay_timestamp() AS last_replay_at,"
                    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
                    "   AS current_lsn,"
                    " (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,"
                    " current_setting('default_transaction_read_only') = 'on' AS read_only,"
                    " (SELECT status FROM pg_stat_wal_receiver) AS receiver"
                )
            except psycopg.Error:
                return None
            row = await cur.fetchone()
            names = [d.name for d in cur.description or []]
        return dict(zip(names, row, strict=True)) if row else None

    def _state_of(self, site: str, obj: dict[str, Any], sql: dict[str, Any] | None) -> SiteState:
        status, annotations = _status(obj), _annotations(obj)
        reachable = _primary_ready(obj)
        # The spec is what CloudNativePG converges to; a promotion under way is not done yet.
        in_recovery = is_replica(obj) or _promoting(obj)
        timeline = status.get("timelineID")
        promoted = _mark(obj, PROMOTED_BY)
        promoted_by = None
        if promoted and not in_recovery and int(timeline or 0) > int(promoted.get("timeline") or 0):
            promoted_by = promoted.get("run_id")
        fenced_mark = _mark(obj, FENCED_BY)
        sql = sql if reachable else None
        read_only = None
        if reachable:
            read_only = in_recovery or bool(sql and sql["read_only"])
        upstream = self._site_of(obj, _replica(obj).get("source")) if in_recovery else None
        return SiteState(
            site=site,
            reachable=reachable,
            in_recovery=in_recovery,
            timeline=int(timeline) if timeline else None,
            receive_lsn=sql["receive_lsn"] if sql else None,
            replay_lsn=sql["replay_lsn"] if sql else None,
            current_lsn=sql["current_lsn"] if sql else None,
            last_replay_at=sql["last_replay_at"] if sql else None,
            fenced=is_fenced(obj) or fenced_mark is not None,
            fenced_by=fenced_mark.get("run_id") if fenced_mark else None,
            promoted_by=promoted_by,
            read_only=read_only,
            system_identifier=(sql["system_identifier"] if sql else None) or status.get("systemID"),
            upstream=upstream,
            streaming=(sql["receiver"] == "streaming") if sql and in_recovery else None,
            error="" if reachable else self._why_down(obj, annotations),
        )

    @staticmethod
    def _why_down(obj: dict[str, Any], annotations: dict[str, str]) -> str:
        status = _status(obj)
        if is_fenced(obj):
            return f"fenced ({FENCED_INSTANCES}: {annotations.get(FENCED_INSTANCES)})"
        return (
            f"no ready primary instance (phase {status.get('phase')!r}, currentPrimary"
            f" {status.get('currentPrimary')!r}, ready {status.get('readyInstances') or 0})"
        )

    def _site_of(self, obj: dict[str, Any], external: str | None) -> str | None:
        """The site an ``externalClusters`` entry names: the one at its host, else the site
        whose CloudNativePG cluster has its name, else the site of that name."""
        if not external:
            return None
        entries = (obj.get("spec") or {}).get("externalClusters") or []
        entry: dict[str, Any] = next((e for e in entries if e.get("name") == external), {})
        host = (entry.get("connectionParameters") or {}).get("host")
        if host and (by_host := self.inventory.site_by_host(host)):
            return by_host
        for name, site in self.inventory.sites.items():
            if site.cnpg is not None and site.cnpg.cluster == external:
                return name
        return external if external in self.inventory.sites else None

    def _external_for(self, obj: dict[str, Any], site: str) -> str | None:
        """The ``externalClusters`` entry of ``obj`` that names ``site``."""
        for entry in (obj.get("spec") or {}).get("externalClusters") or []:
            if self._site_of(obj, entry.get("name")) == site:
                return str(entry["name"])
        return None

    # ------------------------------------------------------------------ promote

    async def _promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str, allow_fenced: bool
    ) -> Promoted:
        with await self._cluster(site) as cluster:
            obj = await cluster.get()
            if is_fenced(obj):
                raise PreconditionFailed(
                    f"refusing to promote a fenced cluster: PostgreSQL is stopped ({FENCED_INSTANCES})",
                    site=site,
                )
            if _mark(obj, FENCED_BY) is not None and not allow_fenced:
                raise PreconditionFailed(f"refusing to promote a cluster marked {FENCED_BY}", site=site)
            mark = _mark(obj, PROMOTED_BY)
            ours = bool(mark and run_id and mark.get("run_id") == run_id)
            sql: dict[str, Any] | None = None
            changed = True
            if not is_replica(obj):
                done = _is_primary_now(obj, int(mark.get("timeline") or 0) if mark and ours else None)
                if done:
                    by = mark.get("run_id") if mark else None
                    return Promoted(
                        changed=False,
                        timeline=int(_status(obj).get("timelineID") or 0),
                        detail="already primary" + (f" (promoted by {by})" if by else ""),
                    )
                # Promoted already, by this run (a retry) or by someone else: wait until done.
                from_timeline = int(mark.get("timeline") or 0) if mark and ours else None
                changed = ours
            else:
                token = await self._promotion_token(site, obj)
                # With a token, CloudNativePG itself waits until the shutdown checkpoint it
                # names is replayed: a position up to just past it needs no SQL to be assured.
                proof = fence_token(token)
                assured = (parse_lsn(proof.lsn) or 0) + 1 if proof else None
                sql = await self._await_replayed(site, wait_for_lsn, max_catchup_s, assured)
                from_timeline = int(_status(obj).get("timelineID") or 0)
                intent = {"run_id": run_id, "timeline": from_timeline, "at": _now(), "planned": bool(token)}
                await cluster.patch(
                    lambda o: {"metadata": {"annotations": {PROMOTED_BY: json.dumps(intent)}}}
                )
                await cluster.patch(lambda o: _promotion(o, token))
            after = await self._wait(cluster, "promotion", lambda o: _is_primary_now(o, from_timeline))
        timeline = int(_status(after).get("timelineID") or 0)
        return Promoted(
            changed=changed,
            timeline=timeline,
            promoted_at=datetime.now(UTC),
            replay_lsn=sql["replay_lsn"] if sql else None,
            last_replay_at=sql["last_replay_at"] if sql else None,
            detail=f"promoted by CloudNativePG: timeline {from_timeline} -> {timeline}",
        )

    async def _await_replayed(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, assured: int | None = None
    ) -> dict[str, Any] | None:
        """The promotion contract's catch-up, through SQL: replayed all WAL received (and
        ``wait_for_lsn``); the positions then. Without SQL it cannot be checked: refused when
        ``wait_for_lsn`` asks for a position beyond ``assured`` (what CloudNativePG enforces
        itself), else left to PostgreSQL, which replays what it received before it ends
        recovery (None)."""
        target = parse_lsn(wait_for_lsn)
        deadline = time.monotonic() + max_catchup_s
        replay_lsn = None
        while True:
            sql = await self._positions(site)
            if sql is None and (target is None or (assured is not None and target <= assured)):
                return None
            if sql is not None:
                receive, replay = parse_lsn(sql["receive_lsn"]), parse_lsn(sql["replay_lsn"])
                want = max(x for x in (receive, target, replay, 0) if x is not None)
                if replay is not None and replay >= want:
                    return sql
                replay_lsn = sql["replay_lsn"]
            if time.monotonic() > deadline:
                raise PreconditionFailed(
                    f"standby replayed {replay_lsn}, needs {wait_for_lsn or 'all it received'} after"
                    f" {max_catchup_s}s{'' if sql else ' (SQL does not answer)'}; not promoting"
                    " (data would be lost)",
                    site=site,
                )
            report_progress({"catching_up": replay_lsn})
            await asyncio.sleep(min(0.2, self._settings(site).poll_s))

    async def _promotion_token(self, site: str, obj: dict[str, Any]) -> str | None:
        """The demotion token of the cluster this one replicates from, when that is a
        CloudNativePG site that was demoted (a planned switchover) and the token is for this
        database and not used yet; None: an unplanned promotion."""
        source = self._site_of(obj, _replica(obj).get("source"))
        if source is None or source == site or self.inventory.site_driver(source) != PostgresKind.CNPG:
            return None
        try:
            with await self._cluster(source) as other:
                old = await other.get()
        except HybridOpsError:
            return None  # the old primary's API is gone: a failover
        token = _status(old).get("demotionToken")
        content = decode_token(token)
        if not (is_replica(old) and content) or token == _status(obj).get("lastPromotionToken"):
            return None
        ours = _status(obj).get("systemID")
        if ours and content.get("databaseSystemIdentifier") not in (None, ours):
            return None
        return str(token)

    # ------------------------------------------------------------------ fence

    async def _fence(self, site: str, run_id: str) -> Fenced:
        with await self._cluster(site) as cluster:
            try:
                obj = await cluster.get()
            except DatabaseUnreachable as err:
                return Fenced(
                    was_running=False, detail=f"Kubernetes API unreachable, not marked (unverified): {err}"
                )
            mark = _mark(obj, FENCED_BY)
            changed = False
            if mark is None:
                sql = await self._positions(site) if _primary_ready(obj) else None
                observed = {
                    "run_id": run_id,
                    "at": _now(),
                    "was_running": _primary_ready(obj),
                    "was_read_only": is_replica(obj),
                    "sql": {k: sql[k] for k in ("system_identifier", "replay_lsn", "current_lsn")}
                    if sql
                    else None,
                    "timeline": _status(obj).get("timelineID"),
                }
                obj, changed = await cluster.patch(lambda o: _set_mark(o, FENCED_BY, observed))
                mark = _mark(obj, FENCED_BY) or observed
            if not mark["was_read_only"]:
                obj, demoted = await cluster.patch(_demotion)
                changed = changed or demoted
                if mark["was_running"] and is_replica(obj):
                    obj = await self._wait(cluster, "demotion", _demoted)
            token = _status(obj).get("demotionToken") if not mark["was_read_only"] else None
            obj, fenced = await cluster.patch(
                lambda o: (
                    None
                    if fenced_instances(o) == ["*"]
                    else {"metadata": {"annotations": {FENCED_INSTANCES: FENCE_ALL}}}
                )
            )
            changed = changed or fenced
            if token and "token" not in mark:
                mark["token"] = token
                await cluster.patch(lambda o: _set_mark(o, FENCED_BY, mark))
            # Done when CloudNativePG stopped every instance (none ready).
            await self._wait(cluster, "fencing", lambda o: not _status(o).get("readyInstances"))
        proof = fence_token(mark.get("token")) or _sql_token(mark)
        return Fenced(
            changed=changed,
            was_running=bool(mark["was_running"]),
            was_read_only=bool(mark["was_read_only"]),
            fenced_lsn=proof.lsn if proof else None,
            token=proof,
            detail=(
                f"{'demoted and ' if not mark['was_read_only'] else ''}fenced ({FENCED_INSTANCES});"
                + (
                    f" fencing proof: timeline {proof.timeline}, checkpoint {proof.lsn}"
                    if proof
                    else " no proof (it was not running)"
                )
            ),
        )

    async def _unfence(self, site: str) -> bool:
        with await self._cluster(site) as cluster:
            mark = _mark(await cluster.get(), FENCED_BY)
            if mark is None:
                return False
            _, changed = await cluster.patch(_unfencing)
            if mark.get("was_running"):
                writable = not mark.get("was_read_only")
                await self._wait(
                    cluster, "unfence", lambda o: _is_primary_now(o) if writable else _primary_ready(o)
                )
        return changed

    async def _retire_fence(self, site: str) -> bool:
        with await self._cluster(site) as cluster:

            def retire(o: dict[str, Any]) -> dict[str, Any] | None:
                if _mark(o, FENCED_BY) is None:
                    return None
                if not is_replica(o) and not (_primary_ready(o) and not is_fenced(o)):
                    raise PreconditionFailed(
                        "a primary in the spec that is not running: the fence stays", site=site
                    )
                # A replica cluster (demoted) comes back as one: no second writer.
                return {"metadata": {"annotations": {FENCED_BY: None, FENCED_INSTANCES: None}}}

            _, changed = await cluster.patch(retire)
        return changed

    # ------------------------------------------------------------------ switchover

    async def _pause_writes(self, site: str, run_id: str) -> Paused:
        with await self._cluster(site) as cluster:
            obj = await cluster.get()
            mark = _mark(obj, PAUSED_BY)
            if mark is None:
                if is_replica(obj):
                    raise PreconditionFailed("not a primary cluster: nothing to pause", site=site)
                if _demotion(obj) is None:
                    raise PreconditionFailed(
                        "cannot demote: spec.replica.source names no cluster to hand over to", site=site
                    )
                mark = {"run_id": run_id, "at": _now()}
                await cluster.patch(lambda o: _set_mark(o, PAUSED_BY, mark))
            _, changed = await cluster.patch(_demotion)
            obj = await self._wait(cluster, "demotion", _demoted)
        token = _status(obj).get("demotionToken")
        proof = fence_token(token)
        if proof is None:
            raise DatabaseError("the demotion token is not one CloudNativePG writes", site=site)
        content = decode_token(token) or {}
        final = format_lsn((parse_lsn(proof.lsn) or 0) + 1)
        return Paused(
            changed=changed,
            paused_at=datetime.fromisoformat(mark["at"]),
            final_lsn=final,
            detail=(
                f"demoted by CloudNativePG (shutdown checkpoint {proof.lsn} on timeline {proof.timeline},"
                f" {content.get('redoWalFile', '')}); sessions ended by the shutdown; final LSN {final}"
            ),
        )

    async def _resume_writes(self, site: str) -> bool:
        with await self._cluster(site) as cluster:
            obj = await cluster.get()
            if _mark(obj, PAUSED_BY) is None:
                return False
            await cluster.patch(lambda o: _restore(o, PAUSED_BY))
            await self._wait(cluster, "resume", _is_primary_now)
        return True

    # ------------------------------------------------------------------ follow, rewind

    async def _follow(self, site: str, new_primary: str) -> bool:
        with await self._cluster(site) as cluster:

            def point(o: dict[str, Any]) -> dict[str, Any] | None:
                if not is_replica(o):
                    raise PreconditionFailed(
                        "a primary cluster does not follow: fence it or pause its writes first", site=site
                    )
                name = self._external_for(o, new_primary)
                if name is None:
                    raise PreconditionFailed(
                        f"Cluster {cluster.ns}/{cluster.name} has no externalClusters entry for"
                        f" {new_primary} (CloudNativePG needs one per cluster of the topology)",
                        site=site,
                    )
                replica = _replica(o)
                want = {"source": name}
                if replica.get("enabled") is None:
                    want["primary"] = name
                if all(replica.get(k) == v for k, v in want.items()):
                    return None
                return {"spec": {"replica": want}}

            _, changed = await cluster.patch(point)
        return changed

    async def _rewind(self, site: str, source: str, run_id: str, method: RejoinMethod) -> Rejoined:
        raise CapabilityMissing(
            "CloudNativePG decides itself how a demoted cluster rejoins; pg_rewind is not offered",
            driver=PostgresKind.CNPG.value,
            capability=Capability.REWIND.value,
            site=site,
        )


# ---------------------------------------------------------------------- the patches


def _set_mark(obj: dict[str, Any], key: str, mark: dict[str, Any]) -> dict[str, Any] | None:
    """Write ``mark`` unless one is there (the first observation stays)."""
    if _mark(obj, key) is not None:
        return None
    return {"metadata": {"annotations": {key: json.dumps(mark)}}}


def _promotion(obj: dict[str, Any], token: str | None) -> dict[str, Any] | None:
    """The spec change that makes the cluster a primary: ``primary`` itself, with the token of a
    planned switchover (both at once, as CloudNativePG requires), or ``enabled: false``."""
    if not is_replica(obj):
        return None
    replica = _replica(obj)
    if replica.get("enabled") is not None:
        return {"spec": {"replica": {"enabled": False}}}
    return {"spec": {"replica": {"primary": _self_name(obj), "promotionToken": token}}}


def _demotion(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The spec change that makes a primary cluster a replica of ``spec.replica.source`` (its
    planned successor, in the distributed topology); None when it is one, or has no source."""
    if is_replica(obj):
        return None
    replica = _replica(obj)
    source = replica.get("source")
    if not source:
        return None
    if replica.get("enabled") is not None:
        return {"spec": {"replica": {"enabled": True}}}
    return {"spec": {"replica": {"primary": source, "promotionToken": None}}}


def _restore(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Undo a demotion the mark ``key`` recorded (the cluster's own demotion token promotes it
    back without a rebuild), and remove the mark, in one patch."""
    mark = _mark(obj, key)
    if mark is None:
        return None
    patch: dict[str, Any] = {"metadata": {"annotations": {key: None}}}
    if is_replica(obj) and not mark.get("was_read_only"):
        if _replica(obj).get("enabled") is not None:
            patch["spec"] = {"replica": {"enabled": False}}
        else:
            token = _status(obj).get("demotionToken") or mark.get("token")
            patch["spec"] = {"replica": {"primary": _self_name(obj), "promotionToken": token}}
    return patch


def _unfencing(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Lift this driver's fence: the annotation, the demotion, the mark, in one patch. A fence
    without this driver's mark is someone else's: left alone."""
    patch = _restore(obj, FENCED_BY)
    if patch is None:
        return None
    patch["metadata"]["annotations"][FENCED_INSTANCES] = None
    return patch


def _sql_token(mark: dict[str, Any]) -> FenceToken | None:
    """A proof from what SQL read before the fence (a replica cluster, which has no demotion
    token): its system identifier, timeline and position."""
    sql = mark.get("sql") or {}
    if not mark.get("was_read_only"):
        return None  # a primary's position before the fence proves nothing: it kept writing
    lsn = sql.get("current_lsn") or sql.get("replay_lsn")
    if not (sql.get("system_identifier") and lsn and mark.get("timeline")):
        return None
    return FenceToken(system_identifier=sql["system_identifier"], timeline=int(mark["timeline"]), lsn=lsn)
