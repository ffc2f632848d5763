"""bench/failover.py's handoffs: the stretches of the RTO path (workflow start to DNS changed)
with no step running, read from a history's event times; parallel steps overlap, a step after
DNS does not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.history.v1 import HistoryEvent

from bench.failover import _handoffs

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def _event(event_id: int, ms: float, **attrs: object) -> HistoryEvent:
    e = HistoryEvent(event_id=event_id, **attrs)  # type: ignore[arg-type]
    e.event_time.FromDatetime(T0 + timedelta(milliseconds=ms))
    return e


def _activity(sid: int, name: str, start_ms: float, end_ms: float) -> list[HistoryEvent]:
    return [
        _event(sid, start_ms - 1, activity_task_scheduled_event_attributes={"activity_type": {"name": name}}),
        _event(sid + 1, start_ms, activity_task_started_event_attributes={"scheduled_event_id": sid}),
        _event(sid + 2, end_ms, activity_task_completed_event_attributes={"scheduled_event_id": sid}),
    ]


def test_idle_stretches_to_dns_are_counted_once_each() -> None:
    events = [
        _event(1, 0, workflow_execution_started_event_attributes={}),
        *_activity(10, "plan_failover", 20, 50),  # 20 ms idle before it
        *_activity(20, "assess_sites", 60, 90),  # 10 ms idle
        *_activity(30, "gather_signals", 65, 80),  # overlaps assess: no stretch of its own
        *_activity(40, "promote_standby", 100, 150),  # 10 ms idle
        *_activity(50, "dns_cutover", 170, 200),  # 20 ms idle; the path ends at its completion
        *_activity(60, "verify_writes", 300, 320),  # after DNS: not on the path
    ]
    assert _handoffs(events) == (4, 60.0)


def test_no_dns_step_no_figure() -> None:
    events = [_event(1, 0, workflow_execution_started_event_attributes={}), *_activity(10, "plan", 5, 9)]
    assert _handoffs(events) is None
