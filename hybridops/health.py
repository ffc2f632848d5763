"""What monitoring reports after a failover's cutover (issue 17 item 5): the apps' error rate
at the new primary's site against the policy's ``constraints.max_error_rate``, and whether the
alert that started the run resolved. Pure functions of what the run recorded (a signal
snapshot taken by the ``check_health`` step, the alert notifications it received), so a
replay computes the same; each check carries its value, its threshold and where the value
came from, and ``passed`` is ``None`` when nothing could say (no monitoring source gives the
value, the policy sets no threshold, no alert started the run).

These checks inform; they do not fail a run that has passed its point of no return (going
back would be worse): a ``False`` is a finding for the operator, in the evidence and report.
"""

from __future__ import annotations

import math

from hybridops.constants import ALERT_REQUESTER
from hybridops.contracts.base import AlertNotice, HealthCheck
from hybridops.contracts.decision import SignalName, SignalSnapshot
from hybridops.policy import Policy

ERROR_RATE = "apps.error_rate"
ALERT_RESOLVED = "alert.resolved"


def error_rate_check(
    snapshot: SignalSnapshot | None, site: str, policy: Policy, why: str = ""
) -> HealthCheck:
    """The apps' error rate at ``site`` as monitoring reported it after the cutover, against
    ``constraints.max_error_rate``. ``snapshot`` None: the step could not ask (``why``)."""
    limit = policy.constraints.max_error_rate
    threshold = f"<= {limit:g}" if limit is not None else "none (constraints.max_error_rate)"
    check = HealthCheck(id=ERROR_RATE, site=site, threshold=threshold)
    if snapshot is None:
        check.detail = f"monitoring did not answer: {why}" if why else "monitoring was not asked"
        return check
    values = next((c.values for c in snapshot.candidates if c.site == site), {})
    signal = values.get(SignalName.ERROR_RATE)
    if signal is None or math.isnan(signal.value):
        errors = "; ".join(snapshot.errors)
        check.detail = f"no source reports {SignalName.ERROR_RATE.value} for {site}" + (
            f" ({errors})" if errors else ""
        )
        return check
    check.value, check.source = round(signal.value, 6), signal.source
    if limit is None:
        check.detail = "the policy sets no constraints.max_error_rate: not judged"
        return check
    check.passed = signal.value <= limit
    verdict = "within" if check.passed else "above"
    check.detail = (
        f"{signal.value:g} of requests failed at {site} ({signal.source}), {verdict} the policy's {limit:g}"
    )
    return check


def alert_check(requested_by: str, waited_s: float, alerts: list[AlertNotice]) -> HealthCheck:
    """Whether the alert that started the run resolved once the new primary took writes:
    monitoring's own word that the incident is over. ``waited_s``: how long the run waited
    for it (``await_alert_resolve_s``); 0 did not wait, so a firing alert is not judged."""
    check = HealthCheck(id=ALERT_RESOLVED, threshold="resolved", source="alertmanager")
    by_alert = requested_by.startswith(ALERT_REQUESTER)
    if not alerts and not by_alert:
        check.source, check.detail = "none", "no alert started this run"
        return check
    resolved = [a for a in alerts if a.status == "resolved"]
    if resolved:
        last = resolved[-1]
        names = ", ".join(last.alertnames) or "the alert"
        check.value, check.passed = "resolved", True
        check.detail = f"{names} resolved (notified at {last.received_at.isoformat()})"
        return check
    check.value = "firing"
    if waited_s > 0:
        check.passed = False
        check.detail = f"the alert still fired {waited_s:g} s after the cutover (await_alert_resolve_s)"
    else:
        check.detail = (
            "not resolved when the run ended; the run did not wait for it (await_alert_resolve_s 0)"
        )
    return check
