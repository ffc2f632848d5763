"""Alert routes: the file is validated at load with the key named; matching; workflow ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hybridops.alerts.payload import WebhookPayload
from hybridops.alerts.routes import (
    RUNBOOKS,
    default_routes_path,
    group_hash,
    incident_workflow_id,
    load_routes,
    parse_routes,
)
from hybridops.contracts.base import REASON_MAX
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import ConfigError

T0 = datetime(2025, 3, 1, 4, 5, 6, 789000, tzinfo=UTC)


def route(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "no-writable-primary",
        "match": {"alertname": "HybridOpsNoWritablePrimary"},
        "runbook": "failover",
    }
    base.update(changes)
    return base


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as err:
        parse_routes(data, "routes.yaml")
    return str(err.value)


# --------------------------------------------------------------------------- validation


def test_the_shipped_routes_file_loads() -> None:
    routes = load_routes(default_routes_path())
    (r,) = routes.routes
    # auto: the policy's approval.failover decides whether a human approves.
    assert r.name == "primary-not-taking-writes" and r.runbook == "failover" and r.auto
    assert r.matches({"alertname": "HybridOpsPrimaryNotTakingWrites", "severity": "critical"})
    # The older, slower trigger is for people now: two triggers, two runs for one incident.
    assert not r.matches({"alertname": "HybridOpsNoWritablePrimary", "severity": "critical"})


def test_every_alert_that_names_a_runbook_has_a_route() -> None:
    """Alertmanager sends an alert with a ``runbook`` label to the receiver, which answers 404
    when no route matches: a rule and the routes file that disagree fail here, not at 3 a.m."""
    rules_dir = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "rules"
    routes = load_routes(default_routes_path())
    named = [
        rule
        for f in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule and "runbook" in rule.get("labels", {})
    ]
    assert [r["alert"] for r in named] == ["HybridOpsPrimaryNotTakingWrites"]
    for rule in named:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        assert any(r.matches(labels) and r.runbook == rule["labels"]["runbook"] for r in routes.routes), rule


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"routes": [route(input={"target": "mars"})]}, "routes.0.input.target: Input should be"),
        ({"routes": [route(input={"approval_timeout_s": -1})]}, "routes.0.input.approval_timeout_s:"),
        ({"routes": [route(input={"colour": "red"})]}, "routes.0.input.colour: Extra inputs"),
        ({"routes": [route(input={"require_approval": False})]}, "routes.0.input.require_approval: set by"),
        ({"routes": [route(input={"reason": "x"})]}, "routes.0.input.reason: set by the receiver"),
        ({"routes": [route(runbook="reboot")]}, "routes.0.runbook: unknown runbook 'reboot'"),
        ({"routes": [route(drill_runbook="drill")]}, "routes.0.drill_runbook: unknown runbook 'drill'"),
        ({"routes": [route(drill_runbook="failover")]}, "routes.0.drill_runbook: must not be the production"),
        ({"routes": [route(drill_input={"x": 1})]}, "routes.0.drill_input: set without drill_runbook"),
        ({"routes": [route(match={})]}, "routes.0.match: a route needs 'match' or 'match_re'"),
        ({"routes": [route(match_re={"site": "(onprem"})]}, "routes.0.match_re.site: not a regular"),
        ({"routes": [route(name="No Spaces")]}, "routes.0.name:"),
        ({"routes": [route(auto="sometimes")]}, "routes.0.auto:"),
        ({"routes": [route(colour="red")]}, "routes.0.colour: Extra inputs"),
        ({"routes": [route(), route()]}, "routes: duplicate route name 'no-writable-primary'"),
        ({"routes": []}, "routes: List should have at least 1 item"),
        ({"rutes": []}, "rutes: Extra inputs"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_a_wrong_routes_file_names_the_key(data: Any, named: str) -> None:
    message = error_of(data)
    assert message.startswith("routes.yaml: ")
    assert named in message, message


def test_load_names_a_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no alert routes at .*alerts\.routes"):
        load_routes(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_routes(bad)


def test_the_runbook_table_knows_failover() -> None:
    spec = RUNBOOKS["failover"]
    assert spec.workflow_type.value == "FailoverWorkflow"
    assert spec.input_model is FailoverInput
    assert spec.task_queue.value == "hybridops-control"


# --------------------------------------------------------------------------- matching


def test_matching_is_exact_and_anchored() -> None:
    routes = parse_routes(
        {
            "routes": [
                route(name="a", match={"alertname": "X"}, match_re={"site": "on(prem|site)"}),
                route(name="b", match={"alertname": "X"}),
                route(name="c", match={}, match_re={"alertname": "Y.*"}),
            ]
        }
    )
    assert routes.route_for([{"alertname": "X", "site": "onprem"}]).name == "a"  # type: ignore[union-attr]
    # Anchored: "onprem2" does not fully match; falls through to b.
    assert routes.route_for([{"alertname": "X", "site": "onprem2"}]).name == "b"  # type: ignore[union-attr]
    assert routes.route_for([{"alertname": "XX"}]) is None  # exact, not a prefix
    assert routes.route_for([{"alertname": "Yes"}]).name == "c"  # type: ignore[union-attr]
    # Any alert of the notification can select the route; the first route in file order wins.
    assert routes.route_for([{"alertname": "Z"}, {"alertname": "Yes"}]).name == "c"  # type: ignore[union-attr]
    assert routes.route_for([]) is None


def test_a_missing_label_matches_the_empty_value() -> None:
    routes = parse_routes({"routes": [route(match={"alertname": "X", "env": ""})]})
    assert routes.route_for([{"alertname": "X"}]) is not None
    assert routes.route_for([{"alertname": "X", "env": "prod"}]) is None


def test_build_input_adds_what_the_alert_says() -> None:
    routes = parse_routes({"routes": [route(input={"target": "gcp"})]})
    r = routes.routes[0]
    inp = r.build_input(drill=False, incident_started_at=T0, reason="alert X")
    assert isinstance(inp, FailoverInput)
    assert inp.target == "gcp" and inp.require_approval is True
    assert inp.incident_started_at == T0 and inp.reason == "alert X"
    assert inp.requested_by == "alert:no-writable-primary"
    auto = parse_routes({"routes": [route(auto=True)]}).routes[0]
    assert auto.build_input(drill=False, incident_started_at=T0, reason="r").require_approval is False  # type: ignore[attr-defined]
    # An alert's summary may be longer than the input's reason holds: cut, never refused.
    long = r.build_input(drill=False, incident_started_at=T0, reason="alert X: " + "y" * 5000)
    assert len(long.reason) == REASON_MAX  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- ids


def test_workflow_id_is_stable_and_readable() -> None:
    group = '{}:{alertname="X"}'
    wf_id = incident_workflow_id("no-writable-primary", group, T0)
    assert wf_id == f"alert-no-writable-primary-{group_hash(group)}-20250301T040506"
    assert len(group_hash("x")) == 12
    # The same incident seen again (other sub-second digits, another time zone): the same id.
    cet = timezone(timedelta(hours=1))
    assert incident_workflow_id("no-writable-primary", '{}:{alertname="X"}', T0.astimezone(cet)) == wf_id
    assert (
        incident_workflow_id("no-writable-primary", '{}:{alertname="X"}', T0.replace(microsecond=0)) == wf_id
    )
    # A naive time is taken as UTC.
    naive = T0.replace(tzinfo=None)
    assert incident_workflow_id("no-writable-primary", '{}:{alertname="X"}', naive) == wf_id


def test_workflow_ids_are_distinct() -> None:
    ids = {
        incident_workflow_id("r", "g1", T0),
        incident_workflow_id("r", "g2", T0),  # another alert group
        incident_workflow_id("r", "g1", T0 + timedelta(seconds=1)),  # another episode
        incident_workflow_id("s", "g1", T0),  # another route
        incident_workflow_id("r", "g1", T0, drill=True),  # a drill never takes a production id
    }
    assert len(ids) == 5
    assert incident_workflow_id("r", "g1", T0, drill=True).startswith("drill-r-")


def _payload(status: str, alerts: list[dict[str, Any]]) -> WebhookPayload:
    return WebhookPayload.model_validate(
        {
            "version": "4",
            "groupKey": "g",
            "status": status,
            "receiver": "hybridops",
            "alerts": alerts,
        }
    )


def test_the_episode_is_the_earliest_start_of_any_alert_firing_or_resolved() -> None:
    early = {"status": "resolved", "labels": {"alertname": "X", "site": "a"}, "startsAt": T0.isoformat()}
    late = {
        "status": "firing",
        "labels": {"alertname": "X", "site": "b"},
        "startsAt": (T0 + timedelta(minutes=3)).isoformat(),
    }
    firing = _payload("firing", [late, early])
    assert firing.incident_started_at == T0
    assert [a.labels["site"] for a in firing.relevant] == ["b"]  # routing uses the firing ones
    resolved = _payload("resolved", [{**late, "status": "resolved"}, early])
    assert resolved.incident_started_at == firing.incident_started_at


def test_one_drill_alert_makes_the_notification_a_drill() -> None:
    real = {"status": "firing", "labels": {"alertname": "X"}, "startsAt": T0.isoformat()}
    drill = {"status": "firing", "labels": {"alertname": "X", "drill": "true"}, "startsAt": T0.isoformat()}
    assert not _payload("firing", [real]).is_drill
    assert _payload("firing", [real, drill]).is_drill


def test_alert_times_are_utc_and_in_range() -> None:
    """Naive and aware times mix in one notification (min and max of them would raise), and a
    time that leaves the calendar in UTC is a validation error, not an OverflowError."""
    naive = {"status": "resolved", "labels": {"alertname": "X"}, "startsAt": "2025-03-01T04:05:06"}
    aware = {
        "status": "resolved",
        "labels": {"alertname": "X"},
        "startsAt": "2025-03-01T05:05:06+02:00",
        "endsAt": "2025-03-01T05:10:00",
    }
    p = _payload("resolved", [naive, aware])
    assert p.incident_started_at == datetime(2025, 3, 1, 3, 5, 6, tzinfo=UTC)
    assert p.ended_at == datetime(2025, 3, 1, 5, 10, tzinfo=UTC)
    for field, value in (
        ("startsAt", "9999-12-31T23:59:59-23:00"),
        ("startsAt", "0001-01-01T00:00:00+01:00"),
        ("endsAt", "0001-01-01T00:00:00+01:00"),
    ):
        with pytest.raises(ValidationError) as err:
            _payload("firing", [{**naive, "status": "firing", field: value}])
        assert [e["loc"] for e in err.value.errors()] == [("alerts", 0, field)]
