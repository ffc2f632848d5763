"""A burst's carry-over state is taken only from the run that continued into this one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hybridops.contracts.base import Cloud
from hybridops.contracts.burst import BurstInput, BurstState, carried_state
from hybridops.errors import InputError


def state(carried_from: str | None) -> BurstState:
    return BurstState(
        started_at=datetime.now(UTC),
        target="azure",
        cloud=Cloud.AZURE,
        weights_before={"onprem": ("203.0.113.66", 100)},
        carried_from=carried_from,
    )


def test_a_fresh_start_has_no_state() -> None:
    assert carried_state(BurstInput(), continued_run_id=None) is None
    assert carried_state(BurstInput(), continued_run_id="run-1") is None


def test_the_predecessors_state_is_carried() -> None:
    inp = BurstInput(state=state(carried_from="run-1"))
    assert carried_state(inp, continued_run_id="run-1") == inp.state


@pytest.mark.parametrize(
    ("carried_from", "continued_run_id"),
    [
        (None, None),  # a start
        ("run-1", None),  # a start naming some run
        (None, "run-1"),  # a cron or retry run of a start: continued, but not by a burst's hand
        ("a-guessed-run-id", "run-1"),  # a state another run wrote, or a forged one
    ],
)
def test_any_other_state_is_refused_naming_the_field(
    carried_from: str | None, continued_run_id: str | None
) -> None:
    with pytest.raises(InputError) as err:
        carried_state(BurstInput(state=state(carried_from)), continued_run_id=continued_run_id)
    assert str(err.value).startswith("state: ") and err.value.ids == {"field": "state"}
