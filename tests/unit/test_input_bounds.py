"""Every number and string a run can be started with is bounded; a value out of bounds is a
ValidationError that names the field (as the Temporal UI's JSON arrives: ``validate_json``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from hybridops.contracts.base import ApprovalInput
from hybridops.contracts.bootstrap import BootstrapInput
from hybridops.contracts.burst import BurstInput
from hybridops.contracts.decision import Signal
from hybridops.contracts.drill import DrillInput
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput
from hybridops.contracts.sites import RpoMeasure

INPUTS: list[type[BaseModel]] = [FailoverInput, FailbackInput, BurstInput, DrillInput, BootstrapInput]


@pytest.mark.parametrize("model", INPUTS, ids=lambda m: m.__name__)
def test_empty_input_is_valid(model: type[BaseModel]) -> None:
    assert model.model_validate_json("{}") == model()


@pytest.mark.parametrize(
    ("model", "raw", "field"),
    [
        # Infinity, NaN and a float that overflows to inf, as JSON from the UI.
        (FailoverInput, '{"approval_timeout_s": Infinity}', "approval_timeout_s"),
        (FailoverInput, '{"approval_timeout_s": 1e309}', "approval_timeout_s"),
        (FailoverInput, '{"max_catchup_s": NaN}', "max_catchup_s"),
        # Finite, but past any sane wait: timedelta(seconds=1e15) overflows at the gate.
        (FailoverInput, '{"approval_timeout_s": 1e15}', "approval_timeout_s"),
        (FailoverInput, '{"await_alert_resolve_s": 172800}', "await_alert_resolve_s"),
        (FailoverInput, '{"max_start_delay_s": -1}', "max_start_delay_s"),
        (FailoverInput, json.dumps({"reason": "x" * 1001}), "reason"),
        (FailoverInput, json.dumps({"requested_by": "x" * 201}), "requested_by"),
        (FailoverInput, '{"incident_started_at": "0001-01-01T00:00:00Z"}', "incident_started_at"),
        (FailoverInput, '{"incident_started_at": "9999-12-31T23:59:59-23:00"}', "incident_started_at"),
        (FailbackInput, '{"home": "../../etc"}', "home"),
        (FailbackInput, '{"home": "-rf"}', "home"),
        (FailbackInput, '{"max_pause_s": 7200}', "max_pause_s"),
        (FailbackInput, '{"max_lag_bytes": 2e12}', "max_lag_bytes"),
        (FailbackInput, '{"approval_timeout_s": 1e9}', "approval_timeout_s"),
        (BurstInput, '{"check_interval_s": 0.01}', "check_interval_s"),
        (BurstInput, '{"check_interval_s": 86400}', "check_interval_s"),
        (BurstInput, '{"max_duration_s": Infinity}', "max_duration_s"),
        (BurstInput, '{"max_duration_s": 2764800}', "max_duration_s"),
        (BurstInput, '{"budget_cap": 1e300}', "budget_cap"),
        (BurstInput, '{"checks_per_run": 1000000}', "checks_per_run"),
        (BurstInput, '{"extra_nodes": 100000}', "extra_nodes"),
        (DrillInput, '{"backup": "../../../var/lib/postgresql"}', "backup"),
        (DrillInput, '{"backup": "LATEST --config=/tmp/x"}', "backup"),
        (DrillInput, '{"rto_objective_s": Infinity}', "rto_objective_s"),
        (DrillInput, '{"target_time": "1900-01-01T00:00:00Z"}', "target_time"),
        (BootstrapInput, json.dumps({"steps": ["rke2"] * 11}), "steps"),
        (ApprovalInput, json.dumps({"by": "x" * 201}), "by"),
        (ApprovalInput, json.dumps({"by": "ann", "comment": "x" * 1001}), "comment"),
    ],
)
def test_out_of_bounds_names_the_field(model: type[BaseModel], raw: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        model.model_validate_json(raw)
    assert [".".join(str(p) for p in e["loc"]) for e in err.value.errors()] == [field]


def test_bounds_are_inclusive_and_sane() -> None:
    """The limits themselves are valid: a week's approval gate, an hour's write pause."""
    FailoverInput(approval_timeout_s=7 * 86400, max_catchup_s=86400, reason="x" * 1000)
    FailbackInput(home="onprem", max_pause_s=3600, max_lag_bytes=1024**4)
    BurstInput(check_interval_s=1, checks_per_run=2000, max_duration_s=31 * 86400, budget_cap=0)
    DrillInput(backup="base_000000010000000000000004_20261126T164229123456Z")


def test_a_naive_time_is_utc() -> None:
    """A naive time would meet the run's aware clock in a subtraction: a TypeError on every
    workflow task. It is taken as UTC instead."""
    inp = FailoverInput.model_validate({"incident_started_at": "2026-11-26T16:42:29"})
    assert inp.incident_started_at == datetime(2026, 11, 26, 16, 42, 29, tzinfo=UTC)


def test_observations_may_be_nan_but_results_not() -> None:
    """A signal is a raw observation (the decision counts nan as missing); a measure is not."""
    assert Signal(value=float("nan"), source="static").value != 0
    with pytest.raises(ValidationError, match="seconds"):
        RpoMeasure(seconds=float("inf"))
