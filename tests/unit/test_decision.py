"""The decide rule: pure, deterministic, every rejection explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hybridops.decision import decide
from hybridops.errors import PreconditionFailed
from hybridops.lsn import parse_lsn
from hybridops.models import Cloud, SiteRef, SiteState, TargetChoice

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
SITES = [
    SiteRef(name="onprem"),
    SiteRef(name="azure", cloud=Cloud.AZURE),
    SiteRef(name="gcp", cloud=Cloud.GCP),
]


def standby(site: str, receive: str, replay: str, fenced: bool = False) -> SiteState:
    return SiteState(
        site=site,
        reachable=True,
        in_recovery=True,
        receive_lsn=receive,
        replay_lsn=replay,
        last_replay_at=NOW - timedelta(seconds=2),
        fenced=fenced,
    )


DEAD = SiteState(site="onprem", reachable=False, error="connection refused")


def test_parse_lsn() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert parse_lsn(None) is None and parse_lsn("") is None


def test_auto_picks_least_lag() -> None:
    d = decide(
        SITES,
        [DEAD, standby("azure", "0/500", "0/400"), standby("gcp", "0/500", "0/500")],
        "onprem",
        TargetChoice.AUTO,
        NOW,
    )
    assert d.target == "gcp" and d.cloud == Cloud.GCP and d.old_primary == "onprem"
    lags = {c.site: c.lag_bytes for c in d.candidates}
    assert lags == {"azure": 0x100, "gcp": 0}
    assert any("chose gcp" in r for r in d.rationale)


def test_tie_goes_to_the_name() -> None:
    states = [DEAD, standby("gcp", "0/500", "0/500"), standby("azure", "0/500", "0/500")]
    assert decide(SITES, states, "onprem", TargetChoice.AUTO, NOW).target == "azure"
    # ... whatever the order the states come in.
    assert decide(SITES, list(reversed(states)), "onprem", TargetChoice.AUTO, NOW).target == "azure"


def test_requested_target_wins_over_lag() -> None:
    d = decide(
        SITES,
        [DEAD, standby("azure", "0/500", "0/400"), standby("gcp", "0/500", "0/500")],
        "onprem",
        TargetChoice.AZURE,
        NOW,
    )
    assert d.target == "azure"
    gcp = next(c for c in d.candidates if c.site == "gcp")
    assert not gcp.eligible and "requested target azure" in gcp.rejected_because


def test_lag_against_a_live_primary() -> None:
    primary = SiteState(site="onprem", reachable=True, in_recovery=False, current_lsn="0/900")
    d = decide(
        SITES,
        [primary, standby("azure", "0/900", "0/800"), standby("gcp", "0/700", "0/700")],
        "onprem",
        TargetChoice.AUTO,
        NOW,
    )
    assert {c.site: c.lag_bytes for c in d.candidates} == {"azure": 0x100, "gcp": 0x200}
    assert d.target == "azure"


@pytest.mark.parametrize(
    ("states", "why"),
    [
        (
            [DEAD, SiteState(site="azure", reachable=False), SiteState(site="gcp", reachable=False)],
            "unreachable",
        ),
        (
            [
                DEAD,
                standby("azure", "0/1", "0/1", fenced=True),
                SiteState(site="gcp", reachable=True, in_recovery=False),
            ],
            "fenced",
        ),
    ],
)
def test_no_eligible_target_is_a_clear_error(states: list[SiteState], why: str) -> None:
    with pytest.raises(PreconditionFailed, match=f"no eligible failover target.*{why}"):
        decide(SITES, states, "onprem", TargetChoice.AUTO, NOW)


def test_old_primary_is_never_a_candidate() -> None:
    d = decide(
        SITES,
        [standby("azure", "0/5", "0/5"), standby("gcp", "0/5", "0/5"), DEAD],
        "azure",
        TargetChoice.AUTO,
        NOW,
    )
    assert d.target == "gcp" and "azure" not in {c.site for c in d.candidates}
