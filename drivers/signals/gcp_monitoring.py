"""The Google Cloud Monitoring driver: time series through the Monitoring API v3 (REST).

``GET {url}/v3/projects/{project}/timeSeries?filter=...&interval.startTime=...
&interval.endTime=...`` with an OAuth 2 bearer token (``token_ref``; scope ``monitoring.read``).

- ``url``: the API endpoint, ``https://monitoring.googleapis.com``.
- ``resources``: site name to the project id its metrics live in. A candidate without one is
  not covered by this source: its signals are left to the others.
- ``queries``: signal to ``METRIC_TYPE`` or ``METRIC_TYPE | EXTRA_FILTER``, where the extra
  filter is in the Monitoring filter language and is ANDed to ``metric.type = "METRIC_TYPE"``;
  ``{site}`` and ``{cloud}`` are replaced by the candidate's name and cloud (``onprem`` for the
  on-prem site)::

      lag_seconds: custom.googleapis.com/hybridops/lag_seconds | metric.labels.site = "{site}"
      capacity: custom.googleapis.com/hybridops/free_nodes | resource.labels.cluster_name = "dr-{site}"

The value is the newest point (by ``interval.endTime``) within the last :data:`WINDOW`, from
``doubleValue``, ``int64Value`` (a string in JSON) or ``boolValue``; ``observed_at`` is its
``endTime``. The filter must select one time series: several are an error naming the count.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.http import (
    HttpSource,
    SourceError,
    finite,
    guarded,
    parse_time,
    rfc3339,
    substitute,
    utc,
)
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef

WINDOW = timedelta(minutes=10)
"""How far back a point may be and still be read (staleness is for the policy to judge)."""


def monitoring_filter(query: str) -> str:
    """``METRIC_TYPE [| EXTRA_FILTER]`` (placeholders already replaced) as a Monitoring filter."""
    metric_type, sep, extra = query.partition("|")
    metric_type, extra = metric_type.strip(), extra.strip()
    if not metric_type or (sep and not extra):
        raise SourceError("expected 'METRIC_TYPE' or 'METRIC_TYPE | FILTER'")
    text = f'metric.type = "{metric_type}"'
    return f"{text} AND ({extra})" if extra else text


def point_value(value: Any, what: str) -> float:
    """A ``TypedValue`` as a float: ``doubleValue``, ``int64Value`` or ``boolValue``."""
    if not isinstance(value, dict):
        raise SourceError(f"{what}: malformed value {value!r}")
    for key in ("doubleValue", "int64Value"):
        if key in value:
            return finite(value[key], what)
    if "boolValue" in value:
        return 1.0 if value["boolValue"] else 0.0
    raise SourceError(f"{what}: unsupported value type {sorted(value)}")


class GcpMonitoringDriver(SignalsDriver):
    """Cloud Monitoring time series, one project per site."""

    name = "gcp_monitoring"

    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        reading = SourceReading()
        jobs = [
            (target, signal, substitute(template, target), self.source.resources[target.name])
            for target in targets
            if target.name in self.source.resources
            for signal, template in self.source.queries.items()
        ]
        if not jobs:
            return reading
        try:
            async with HttpSource(self.source) as http:
                results = await asyncio.gather(
                    *(guarded(self._read(http, query, project, utc(now))) for _, _, query, project in jobs)
                )
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        for (target, signal, query, project), result in zip(jobs, results, strict=True):
            what = f"metric {query!r} (site {target.name}, project {project}, {signal})"
            if isinstance(result, SourceError):
                reading.errors.append(f"{what}: {result}")
            elif result is None:
                reading.errors.append(f"{what}: no point in the last {WINDOW.total_seconds() / 60:g} min")
            else:
                reading.values.setdefault(target.name, {})[signal] = result
        return reading

    async def _read(self, http: HttpSource, query: str, project: str, now: datetime) -> Signal | None:
        body = await http.get_json(
            http.url(f"v3/projects/{project}/timeSeries"),
            {
                "filter": monitoring_filter(query),
                "interval.startTime": rfc3339(now - WINDOW),
                "interval.endTime": rfc3339(now),
            },
        )
        if not isinstance(body, dict):
            raise SourceError("answer is not an object")
        series = body.get("timeSeries") or []
        if body.get("nextPageToken"):
            raise SourceError("more than one page of time series, expected one series")
        if len(series) > 1:
            raise SourceError(f"{len(series)} time series, expected one (narrow the filter)")
        points = (series[0].get("points") or []) if series else []
        newest: tuple[datetime, float] | None = None
        for point in points:
            at = parse_time(point["interval"]["endTime"], "point")
            if newest is None or at > newest[0]:
                newest = (at, point_value(point.get("value"), f"point at {rfc3339(at)}"))
        if newest is None:
            return None
        return Signal(value=newest[1], source=self.name, observed_at=newest[0])
