"""The receiver's start budget (a token bucket) and its refusal of weak tokens; its settings."""

from __future__ import annotations

import pytest

from hybridops.alerts.limits import MIN_TOKEN_LEN, StartBudget, check_token
from hybridops.errors import ConfigError
from hybridops.inventory import AlertsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    budget = StartBudget(6, clock)  # 6 a minute: one every 10 s
    assert [budget.take() for _ in range(7)] == [True] * 6 + [False]
    assert budget.retry_after() == 10
    clock.now = 4.0
    assert not budget.take() and budget.retry_after() == 6
    clock.now = 10.0
    assert budget.take() and not budget.take()
    # A quiet hour refills it to its capacity, never beyond.
    clock.now = 3600.0
    assert sum(budget.take() for _ in range(100)) == 6


def test_a_duplicate_gives_its_start_back() -> None:
    budget = StartBudget(1, Clock())
    assert budget.take()
    budget.give_back()
    assert budget.take() and not budget.take()
    budget.give_back()
    budget.give_back()  # never above capacity
    assert budget.take() and not budget.take()


@pytest.mark.parametrize("per_minute", [0, -1, float("nan")])
def test_a_budget_needs_a_positive_rate(per_minute: float) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        StartBudget(per_minute)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "empty"),
        ("hunter2", "7 characters"),
        ("x" * 64, "only 1 distinct"),
        ("0123456789" * 3 + "a", "31 characters"),
        ("abcdabcdabcdabcdabcdabcdabcdabcd", "only 4 distinct"),
    ],
)
def test_a_weak_token_is_refused_without_showing_it(token: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as err:
        check_token(token)
    assert str(err.value).startswith("alerts.token_ref: ")
    assert not token or token not in str(err.value)


def test_a_random_token_passes() -> None:
    check_token("Zk3pQ9v_x1LmN0aB7cR2sT8uW4yE6dF5")
    assert MIN_TOKEN_LEN == 32


def test_alert_settings_are_bounded() -> None:
    s = AlertsSettings()
    assert (s.starts_per_minute, s.max_body_bytes, s.tls_cert) == (10, 1024 * 1024, None)
    for bad in ({"starts_per_minute": 0}, {"max_body_bytes": 10**12}, {"tls_cert": "c.pem"}):
        with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
            AlertsSettings.model_validate(bad)
