"""The topology from the servers, and the safety rules (pure functions)."""

from __future__ import annotations

from hybridops.contracts.sites import FenceToken, FindingKind, SiteState
from hybridops.topology import Rule, check_dns, check_promotion, diverged, establish, keep_writer

ID = "7451234567890123456"


def primary(site: str, tl: int = 1, lsn: str = "0/5000000", **kw: object) -> SiteState:
    return SiteState(
        site=site,
        reachable=True,
        in_recovery=False,
        read_only=False,
        timeline=tl,
        current_lsn=lsn,
        system_identifier=ID,
        **kw,  # type: ignore[arg-type]
    )


def standby(site: str, upstream: str = "onprem", tl: int = 1, **kw: object) -> SiteState:
    return SiteState(
        site=site,
        reachable=True,
        in_recovery=True,
        read_only=False,
        timeline=tl,
        replay_lsn="0/5000000",
        receive_lsn="0/5000000",
        upstream=upstream,
        system_identifier=ID,
        **kw,  # type: ignore[arg-type]
    )


def down(site: str, fenced: bool = False) -> SiteState:
    return SiteState(site=site, reachable=False, fenced=fenced, error="connection refused")


def kinds(topology: object) -> set[FindingKind]:
    return {f.kind for f in topology.findings}  # type: ignore[attr-defined]


def test_the_writable_server_is_the_primary_whatever_dns_says() -> None:
    # After a failover to azure and a restart that put DNS back at onprem (issue 9).
    states = [
        SiteState(site="onprem", reachable=True, in_recovery=True, read_only=False, timeline=1, fenced=True),
        primary("azure", tl=2),
        standby("gcp", upstream="azure", tl=2),
    ]
    topo = establish(states, "db.example", "10.0.0.1", "onprem")
    assert topo.primary == "azure" and topo.writable == ["azure"]
    assert kinds(topo) == {FindingKind.DNS_DISAGREES}
    finding = topo.findings[0]
    assert "onprem" in finding.detail and "azure" in finding.detail


def test_a_dead_primary_is_the_one_the_standbys_followed() -> None:
    topo = establish([down("onprem"), standby("azure"), standby("gcp")], "db", "10.0.0.1", "onprem")
    assert topo.primary is None and topo.last_primary == "onprem" and topo.acting_primary == "onprem"
    assert kinds(topo) == {FindingKind.NO_WRITABLE_SERVER}


def test_the_standbys_upstream_wins_over_dns() -> None:
    topo = establish(
        [down("azure"), standby("onprem", "azure"), standby("gcp", "azure")], "db", "x", "onprem"
    )
    assert topo.last_primary == "azure"
    assert FindingKind.DNS_DISAGREES in kinds(topo)


def test_a_read_only_primary_is_not_writable() -> None:
    paused = primary("azure", tl=2).model_copy(update={"read_only": True})
    topo = establish([paused, standby("onprem", "azure", tl=2)], "db", "x", "azure")
    assert topo.writable == [] and topo.last_primary == "azure"


def test_split_brain_is_named_with_each_writers_branch() -> None:
    states = [
        primary("onprem", tl=1, lsn="0/7000000"),
        primary("azure", tl=2, lsn="0/6100000", timeline_switch_lsn="0/5800000"),
        standby("gcp"),
    ]
    topo = establish(states, "db", "x", "onprem")
    assert FindingKind.SPLIT_BRAIN in kinds(topo) and topo.primary is None
    assert keep_writer(topo) == "onprem"
    ranges = {d.site: (d.from_lsn, d.to_lsn) for d in diverged(topo)}
    assert ranges == {"onprem": (None, "0/7000000"), "azure": ("0/5800000", "0/6100000")}
    assert keep_writer(establish(states, "db", "x", "gcp")) is None  # DNS at neither writer


def test_unknown_roles_and_foreign_clusters_are_findings() -> None:
    other = standby("gcp").model_copy(update={"system_identifier": "1"})
    topo = establish([primary("onprem"), down("azure"), other], "db", "x", "onprem")
    assert {FindingKind.ROLE_UNKNOWN, FindingKind.SYSTEM_MISMATCH} <= kinds(topo)
    assert establish([primary("onprem")], "db", None, None).findings[0].kind == FindingKind.DNS_NOT_A_SITE


def test_promotion_rules() -> None:
    token = FenceToken(system_identifier=ID, timeline=1, lsn="0/5000000")
    fenced_old = down("onprem", fenced=True)
    clean = establish([fenced_old, standby("azure"), standby("gcp")], "db", "x", "onprem")
    assert check_promotion(clean, "azure", token) == []

    def rules(
        states: list[SiteState], fence: FenceToken | None = token, overrides: tuple[str, ...] = ()
    ) -> set[str]:
        return {
            v.rule for v in check_promotion(establish(states, "db", "x", "onprem"), "azure", fence, overrides)
        }

    assert rules([primary("onprem"), standby("azure"), standby("gcp")]) == {Rule.SINGLE_WRITER}
    assert rules([fenced_old, standby("azure"), down("gcp")]) == {Rule.ROLES_KNOWN}
    assert rules([fenced_old, standby("azure"), down("gcp")], overrides=("roles_known",)) == set()
    foreign = standby("azure").model_copy(update={"system_identifier": "42"})
    assert rules([fenced_old, foreign, standby("gcp")]) == {Rule.SAME_SYSTEM}
    assert rules([fenced_old, standby("azure", tl=2), standby("gcp")]) == {Rule.NOT_FORKED}
    # Without a token: no other server may be on a newer timeline than the target.
    assert rules([fenced_old, standby("azure"), standby("gcp", tl=2)], fence=None) == {Rule.NOT_FORKED}


def test_dns_rules() -> None:
    after = establish(
        [down("onprem", fenced=True), primary("azure", tl=2), standby("gcp", "azure")], "db", "x", None
    )
    assert check_dns(after, "azure") == []
    assert {v.rule for v in check_dns(after, "gcp")} == {Rule.SINGLE_WRITER, Rule.TARGET_WRITABLE}
    two = establish([primary("onprem"), primary("azure", tl=2)], "db", "x", "onprem")
    blocked = check_dns(two, "azure")
    assert [(v.rule, v.site) for v in blocked] == [(Rule.SINGLE_WRITER, "onprem")]
