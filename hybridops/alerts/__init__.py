"""The Alertmanager webhook receiver (``hybridops serve alerts``) and its routes file.

- :mod:`hybridops.alerts.routes`: which alert starts which runbook, and the workflow id of an
  incident's one run.
- :mod:`hybridops.alerts.payload`: the webhook payload (version "4").
- :mod:`hybridops.alerts.receiver`: the aiohttp app, its HTTP contract, and ``serve_alerts``.
- :mod:`hybridops.alerts.limits`: the start budget (runs a minute) and the token strength check.
"""

from __future__ import annotations

from hybridops.alerts.payload import AlertStatus, WebhookAlert, WebhookPayload
from hybridops.alerts.receiver import AlertReceiver, Result, serve_alerts
from hybridops.alerts.routes import (
    RUNBOOKS,
    Route,
    RoutesFile,
    RunbookSpec,
    incident_workflow_id,
    load_routes,
    parse_routes,
)

__all__ = [
    "RUNBOOKS",
    "AlertReceiver",
    "AlertStatus",
    "Result",
    "Route",
    "RoutesFile",
    "RunbookSpec",
    "WebhookAlert",
    "WebhookPayload",
    "incident_workflow_id",
    "load_routes",
    "parse_routes",
    "serve_alerts",
]
