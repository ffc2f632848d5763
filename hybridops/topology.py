"""The topology, established from the servers, and the safety rules that guard every
irreversible step and every DNS change (DESIGN.md rules 11 and 12).

Pure functions over :class:`~hybridops.contracts.sites.SiteState` (what each server said of itself)
and where DNS points: no I/O, no clock, so a workflow can run them on recorded data and a
replay decides the same. The reading is done by ``drivers/topology.py``.

The rules are in the spirit of Route 53 Application Recovery Controller's assertion rules:
each states what must hold *after* the step, is checked right before it, and names itself
and the site when it blocks. A blocked step can be let through only by an approval that
overrides that rule by name (break glass), which the evidence records with who and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum

from hybridops.contracts.base import RuleViolation
from hybridops.contracts.sites import DivergedWrites, FenceToken, Finding, FindingKind, SiteState, Topology


class Rule(StrEnum):
    """The safety rules, by the name a blocked step and an override use."""

    SINGLE_WRITER = "single_writer"
    """After the step exactly one server accepts writes: the target."""
    ROLES_KNOWN = "roles_known"
    """Every other server's role is established: it answers, or it carries a fence mark."""
    SAME_SYSTEM = "same_system"
    """The target is a copy of this cluster (the same system identifier)."""
    NOT_FORKED = "not_forked"
    """The target has not left the history the old primary wrote (same timeline as the
    fencing proof; no other server on a newer timeline)."""
    TARGET_WRITABLE = "target_writable"
    """DNS is pointed only at a server that accepts writes."""


def establish(
    states: list[SiteState], dns_record: str, dns_value: str | None, dns_site: str | None
) -> Topology:
    """The topology of ``states``: who is writable, who the primary is (or was), and every
    disagreement as a named finding."""
    writable = [s.site for s in states if s.writable]
    findings: list[Finding] = []
    idents = Counter(s.system_identifier for s in states if s.system_identifier)
    system = idents.most_common(1)[0][0] if idents else None
    for s in states:
        if s.system_identifier and system and s.system_identifier != system:
            findings.append(
                Finding(
                    kind=FindingKind.SYSTEM_MISMATCH,
                    sites=[s.site],
                    detail=f"{s.site} has system identifier {s.system_identifier}, the cluster {system}",
                )
            )
    if len(writable) > 1:
        findings.append(
            Finding(
                kind=FindingKind.SPLIT_BRAIN,
                sites=writable,
                detail="several servers accept writes: "
                + ", ".join(f"{w} (timeline {_tl(states, w)})" for w in writable),
            )
        )
    primary = writable[0] if len(writable) == 1 else None
    last_primary = None
    if not writable:
        upstreams = Counter(s.upstream for s in states if s.in_recovery and s.upstream)
        if len(upstreams) > 1:
            findings.append(
                Finding(
                    kind=FindingKind.UPSTREAM_DISAGREES,
                    sites=sorted(u for u in upstreams if u),
                    detail="the standbys follow different servers: "
                    + ", ".join(f"{s.site} -> {s.upstream}" for s in states if s.in_recovery and s.upstream),
                )
            )
        followed = upstreams.most_common(1)[0][0] if upstreams else None
        last_primary = followed or dns_site
        findings.append(
            Finding(
                kind=FindingKind.NO_WRITABLE_SERVER,
                sites=[last_primary] if last_primary else [],
                detail="no server accepts writes"
                + (f"; the standbys followed {followed}" if followed else "")
                + (f"; DNS points at {dns_site}" if dns_site else ""),
            )
        )
    for s in states:
        if not s.reachable and not s.fenced and s.site != last_primary:
            findings.append(
                Finding(
                    kind=FindingKind.ROLE_UNKNOWN,
                    sites=[s.site],
                    detail=f"{s.site} does not answer and carries no fence mark: its role is unknown",
                )
            )
    if dns_site is None:
        findings.append(
            Finding(
                kind=FindingKind.DNS_NOT_A_SITE,
                sites=[],
                detail=f"{dns_record} "
                + (f"points at {dns_value}, no site's address" if dns_value else "is missing"),
            )
        )
    elif (primary or last_primary) and dns_site != (primary or last_primary):
        who = primary or last_primary
        findings.append(
            Finding(
                kind=FindingKind.DNS_DISAGREES,
                sites=[dns_site, who or ""],
                detail=f"DNS ({dns_record}) points at {dns_site}, but "
                + (f"the writable server is {primary}" if primary else f"the primary was {last_primary}"),
            )
        )
    return Topology(
        servers=states,
        dns_record=dns_record,
        dns_value=dns_value,
        dns_site=dns_site,
        writable=writable,
        primary=primary,
        last_primary=last_primary,
        system_identifier=system,
        findings=findings,
    )


def _tl(states: Iterable[SiteState], site: str) -> str:
    s = next((x for x in states if x.site == site), None)
    return str(s.timeline) if s and s.timeline is not None else "?"


def keep_writer(topology: Topology) -> str | None:
    """Of several writers, the one a split brain keeps: the one DNS points at, since clients
    write there. None when DNS points at none of them (a human must choose)."""
    if topology.dns_site in topology.writable:
        return topology.dns_site
    return None


def diverged(topology: Topology) -> list[DivergedWrites]:
    """For each writer, the writes on its own branch: from where its timeline began to now."""
    out = []
    for site in topology.writable:
        s = topology.state(site)
        if s is not None:
            out.append(
                DivergedWrites(
                    site=site, timeline=s.timeline, from_lsn=s.timeline_switch_lsn, to_lsn=s.current_lsn
                )
            )
    return out


def check_promotion(
    topology: Topology, target: str, fence: FenceToken | None, overrides: Iterable[str] = ()
) -> list[RuleViolation]:
    """The rules that must hold before ``target`` is promoted, minus the ones overridden.
    Empty: promote."""
    out: list[RuleViolation] = []
    t = topology.state(target)
    others = [s for s in topology.servers if s.site != target]
    for s in others:
        if s.writable:
            out.append(
                RuleViolation(
                    rule=Rule.SINGLE_WRITER,
                    site=s.site,
                    detail=f"{s.site} accepts writes: promoting {target} would make two writable servers",
                )
            )
        elif not s.reachable and not s.fenced:
            out.append(
                RuleViolation(
                    rule=Rule.ROLES_KNOWN,
                    site=s.site,
                    detail=f"{s.site} does not answer and is not fenced: it may be a writer nobody sees",
                )
            )
    if t is None or not t.reachable:
        return _minus(out, overrides)  # the driver reports the unreachable target itself
    cluster = fence.system_identifier if fence else topology.system_identifier
    if t.system_identifier and cluster and t.system_identifier != cluster:
        out.append(
            RuleViolation(
                rule=Rule.SAME_SYSTEM,
                site=target,
                detail=f"{target} has system identifier {t.system_identifier}, the cluster {cluster}",
            )
        )
    if t.timeline is not None:
        if fence is not None and t.timeline != fence.timeline:
            out.append(
                RuleViolation(
                    rule=Rule.NOT_FORKED,
                    site=target,
                    detail=f"{target} is on timeline {t.timeline}, the old primary was fenced on"
                    f" timeline {fence.timeline}: it left the history the old primary wrote",
                )
            )
        newer = [s for s in others if s.reachable and s.timeline is not None and s.timeline > t.timeline]
        for s in newer:
            out.append(
                RuleViolation(
                    rule=Rule.NOT_FORKED,
                    site=target,
                    detail=f"{s.site} is on timeline {s.timeline}, newer than {target}'s {t.timeline}:"
                    f" promoting {target} would fork the history",
                )
            )
    return _minus(out, overrides)


def check_dns(topology: Topology, target: str, overrides: Iterable[str] = ()) -> list[RuleViolation]:
    """The rules that must hold before DNS is pointed at ``target``: it accepts writes, and
    no other server does."""
    out = [
        RuleViolation(
            rule=Rule.SINGLE_WRITER,
            site=s.site,
            detail=f"{s.site} accepts writes too: pointing DNS at {target} would leave two writers",
        )
        for s in topology.servers
        if s.site != target and s.writable
    ]
    t = topology.state(target)
    if t is None or not t.writable:
        what = "does not answer" if t is None or not t.reachable else "does not accept writes"
        out.append(RuleViolation(rule=Rule.TARGET_WRITABLE, site=target, detail=f"{target} {what}"))
    return _minus(out, overrides)


def _minus(violations: list[RuleViolation], overrides: Iterable[str]) -> list[RuleViolation]:
    skip = set(overrides)
    return [v for v in violations if v.rule not in skip]
