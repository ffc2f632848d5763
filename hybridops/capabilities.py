"""Capabilities (DESIGN.md rule 14): what a driver can do, declared by the driver class and
checked by a runbook before its first change, never discovered by a call that fails.

The vocabulary is the kernel's, so that the plan step can record the capabilities the
inventory's drivers offer (in the history) and the workflow can refuse, deterministically,
a runbook that needs one that is missing: naming the site, the driver and the capability.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hybridops.errors import CapabilityMissing


class Capability(StrEnum):
    """One thing a driver can do. A driver class declares the set it offers in its
    ``capabilities`` attribute."""

    # PostgreSQL (per site)
    PROMOTE = "promote"
    """Make a standby the writable primary on a new timeline."""
    FENCE = "fence"
    """Make a server read-only for good (stopped and marked), reachable or not."""
    FOLLOW = "follow"
    """Point a standby at a new primary."""
    REWIND = "rewind"
    """Bring a diverged old primary back as a standby with ``pg_rewind`` (WAL since the fork)."""
    RECLONE = "reclone"
    """Make a site a standby again from a fresh copy of the primary (a base backup)."""
    SWITCHOVER = "switchover"
    """Stop writes on a primary and hand over with nothing lost (failback's planned switch)."""
    RESTORE_PRIMARY = "restore_primary"
    """Replace a site's server with one restored from the backups and the WAL archive, started
    as the primary on a new timeline (a failover's restore mode)."""
    # infrastructure
    PREPARE_CLUSTER = "prepare_cluster"
    """Make a target cloud's cluster ready (size it for the failover) and release it again."""
    NODE_POOLS = "node_pools"
    """Grow and shrink a cluster's node pool (bursting)."""
    ISOLATE = "isolate"
    """Cut an unreachable server off for good (power off its host, detach its network)."""
    REPOINT_APPS = "repoint_apps"
    """Tell the apps (NetBox and others) where their database is."""
    # DNS
    WEIGHTED = "weighted"
    """Weighted record sets under one name (a burst's traffic share)."""
    # backups
    BACKUP = "backup"
    """Take a base backup of the primary."""
    RESTORE = "restore"
    """Restore a backup into a server."""


def require(driver: object, capability: Capability) -> None:
    """Raise :class:`CapabilityMissing` (fatal) naming ``driver``'s class and ``capability``
    when the driver does not declare it. A runbook checks before its first change; this is
    the backstop on the driver's own call, so nothing fails for want of one by surprise."""
    offered: frozenset[Capability] = getattr(driver, "capabilities", frozenset())
    if capability not in offered:
        name = type(driver).__name__
        raise CapabilityMissing(
            f"driver {name} has no {capability.value!r} capability", driver=name, capability=capability.value
        )


@dataclass(frozen=True)
class Need:
    """What a runbook needs of one component (``postgres:SITE``, ``infra``, ``dns``,
    ``backup``): one of ``any_of``, for ``why``. Not ``required``: a best-effort step that is
    skipped (and said) without it."""

    component: str
    any_of: tuple[Capability, ...]
    why: str
    required: bool = True


def failover_needs(target: str, old_primary: str, apps: bool, restore: bool = False) -> list[Need]:
    """A failover to ``target`` from ``old_primary``: promoting its standby, or (``restore``)
    restoring the backups there."""
    needs = [
        Need("infra", (Capability.PREPARE_CLUSTER,), f"prepare {target}'s cluster"),
        Need(f"postgres:{old_primary}", (Capability.FENCE,), f"fence {old_primary}"),
    ]
    if restore:
        needs += [
            Need("backup", (Capability.RESTORE,), f"restore a backup for {target}"),
            Need(
                f"postgres:{target}",
                (Capability.RESTORE_PRIMARY,),
                f"start {target} as the primary from a restored backup",
            ),
        ]
    else:
        needs.append(Need(f"postgres:{target}", (Capability.PROMOTE,), f"promote {target}"))
    if apps:
        needs.append(Need("infra", (Capability.REPOINT_APPS,), f"point the apps at {target}"))
    return needs


def failback_needs(home: str, primary: str, apps: bool) -> list[Need]:
    """A failback from the cloud primary ``primary`` to ``home``."""
    rejoin = (Capability.REWIND, Capability.RECLONE)
    needs = [
        Need(f"postgres:{home}", rejoin, f"rejoin {home} as a standby of {primary}"),
        Need(f"postgres:{primary}", (Capability.SWITCHOVER,), f"pause writes on {primary}"),
        Need(f"postgres:{home}", (Capability.PROMOTE,), f"promote {home}"),
        Need(f"postgres:{primary}", (Capability.FENCE,), f"fence {primary} once home serves"),
        Need(f"postgres:{primary}", rejoin, f"rejoin {primary} as a standby of {home}", required=False),
    ]
    if apps:
        needs.append(Need("infra", (Capability.REPOINT_APPS,), f"point the apps at {home}"))
    return needs


def burst_needs() -> list[Need]:
    """A burst: a bigger node pool, and part of the traffic by weighted records."""
    return [
        Need("infra", (Capability.NODE_POOLS,), "grow the burst node pool"),
        Need("dns", (Capability.WEIGHTED,), "shift part of the traffic"),
    ]


def runbook_needs(home: str, clouds: list[str], apps: bool) -> list[tuple[str, list[Need]]]:
    """Each runbook the sites allow, in each direction, with what it needs: a failover to each
    cloud from ``home``, a failback from each, a burst. ``hybridops inventory check`` and the
    readiness workflow both ask this one list."""
    plans: list[tuple[str, list[Need]]] = []
    plans += [(f"failover to {c}", failover_needs(c, home, apps)) for c in clouds]
    plans += [(f"failback from {c}", failback_needs(home, c, apps)) for c in clouds]
    plans.append(("burst", burst_needs()))
    return plans


def unmet(
    needs: list[Need], offered: dict[str, list[Capability]], drivers: dict[str, str]
) -> tuple[list[str], list[str]]:
    """The needs the offered capabilities do not meet, each in words naming the component (the
    site), the driver and the capability: (required ones, best-effort ones). Nothing offered
    (a history from before capabilities were recorded): nothing to say."""
    if not offered:
        return [], []
    missing: list[str] = []
    optional: list[str] = []
    for need in needs:
        have = set(offered.get(need.component, []))
        if have.intersection(need.any_of):
            continue
        what = " or ".join(repr(c.value) for c in need.any_of)
        where = (
            need.component.replace("postgres:", "sites.")
            if need.component.startswith("postgres:")
            else need.component
        )
        driver = drivers.get(need.component, "?")
        line = f"{where} ({driver}) has no {what} capability, needed to {need.why}"
        (missing if need.required else optional).append(line)
    return missing, optional
