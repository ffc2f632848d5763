"""The Alertmanager webhook payload (version "4"), as the receiver reads it.

Unknown fields are ignored, so a newer Alertmanager that adds one still gets through; a
missing or mistyped field is a 422 that names it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hybridops.contracts.base import Timestamp

DRILL_LABEL = "drill"
"""An alert labelled ``drill="true"`` never starts a production runbook."""


def _utc(at: datetime) -> datetime:
    # Naive and aware times are compared (the episode, the latest end): naive ones are UTC, as
    # Alertmanager's always are. A time that leaves the calendar in UTC is refused here, not
    # met as an OverflowError later.
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range in UTC") from None


UtcTime = Annotated[datetime, AfterValidator(_utc)]
"""Any time (``endsAt`` is ``0001-01-01T00:00:00Z`` while firing), in UTC."""


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class WebhookAlert(_Payload):
    """One alert of a notification."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: Timestamp = Field(alias="startsAt")
    """When the alert began (2000 to 2200): the incident's episode, and a run's RTO start."""
    ends_at: UtcTime | None = Field(default=None, alias="endsAt")
    """``0001-01-01T00:00:00Z`` while firing."""
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @property
    def is_drill(self) -> bool:
        return self.labels.get(DRILL_LABEL, "").lower() == "true"


class WebhookPayload(_Payload):
    """One notification: an alert group, as Alertmanager's webhook receiver posts it."""

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str = ""
    group_labels: dict[str, str] = Field(default={}, alias="groupLabels")
    common_labels: dict[str, str] = Field(default={}, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default={}, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[WebhookAlert] = Field(min_length=1)

    @property
    def relevant(self) -> list[WebhookAlert]:
        """The alerts in the group's own state (the firing ones of a firing group)."""
        return [a for a in self.alerts if a.status == self.status] or self.alerts

    @property
    def incident_started_at(self) -> datetime:
        """The episode: the earliest ``startsAt`` of the group's alerts, firing or resolved, so
        the resolve of an incident names the same run as its firing did."""
        return min(a.starts_at for a in self.alerts)

    @property
    def is_drill(self) -> bool:
        """Any drill alert makes the whole notification a drill: a drill never starts a
        production runbook, even when grouped with a real alert (group by ``drill``)."""
        return any(a.is_drill for a in self.alerts)

    @property
    def alertnames(self) -> list[str]:
        return sorted({a.labels.get("alertname", "") for a in self.alerts} - {""})

    @property
    def ended_at(self) -> datetime | None:
        """The latest ``endsAt`` of the resolved alerts."""
        ends = [a.ends_at for a in self.alerts if a.status == AlertStatus.RESOLVED and a.ends_at]
        return max(ends) if ends else None
