"""Capabilities (DESIGN.md rule 14): what a driver can do, declared by the driver class and
checked by a runbook before its first change, never discovered by a call that fails.

The vocabulary is the kernel's, so that the plan step can record the capabilities the
inventory's drivers offer (in the history) and the workflow can refuse, deterministically,
a runbook that needs one that is missing: naming the site, the driver and the capability.
"""

from __future__ import annotations

from enum import StrEnum


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
