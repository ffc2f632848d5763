"""The Azure Monitor driver: platform metrics through the ARM REST API (Metrics - List).

``GET {url}{resourceId}/providers/Microsoft.Insights/metrics?api-version=2023-10-01
&metricnames=NAME&timespan=START/END&interval=PT1M&aggregation=AGG`` with an Entra ID bearer
token (``token_ref``; audience ``https://management.azure.com``).

- ``url``: the ARM endpoint, ``https://management.azure.com`` in the public cloud.
- ``resources``: site name to the resource id its metrics are read from
  (``/subscriptions/.../resourceGroups/.../providers/Microsoft.ContainerService/managedClusters/dr``).
  A candidate without one is not covered by this source: its signals are left to the others.
- ``queries``: signal to metric name, optionally ``NAME:AGGREGATION`` with ``Average`` (the
  default), ``Total``, ``Minimum``, ``Maximum`` or ``Count``: ``node_cpu_usage_percentage:Maximum``.

The value is the newest one-minute point that has the aggregation within the last
:data:`WINDOW` (Azure publishes with a delay of a minute or more, and leaves empty minutes
without the field); ``observed_at`` is that point's ``timeStamp`` (the start of its minute).
A metric split into several time series (by a dimension) is an error naming the count.
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
    utc,
)
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef

API_VERSION = "2023-10-01"
WINDOW = timedelta(minutes=10)
"""How far back a point may be and still be read (staleness is for the policy to judge)."""
INTERVAL = "PT1M"
AGGREGATIONS = ("Average", "Total", "Minimum", "Maximum", "Count")


def parse_metric(query: str) -> tuple[str, str]:
    """``NAME[:AGGREGATION]`` as (name, aggregation); :class:`SourceError` for an unknown one."""
    name, sep, agg = query.rpartition(":")
    if not sep:
        return query, "Average"
    for known in AGGREGATIONS:
        if agg.lower() == known.lower():
            return name, known
    raise SourceError(f"aggregation {agg!r} is not one of {', '.join(AGGREGATIONS)}")


class AzureMonitorDriver(SignalsDriver):
    """Azure Monitor platform metrics of one resource per site."""

    name = "azure_monitor"

    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        reading = SourceReading()
        jobs = [
            (target, signal, metric, self.source.resources[target.name])
            for target in targets
            if target.name in self.source.resources
            for signal, metric in self.source.queries.items()
        ]
        if not jobs:
            return reading
        at = utc(now)
        try:
            async with HttpSource(self.source) as http:
                results = await asyncio.gather(
                    *(guarded(self._read(http, metric, resource, at)) for _, _, metric, resource in jobs)
                )
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        for (target, signal, metric, _), result in zip(jobs, results, strict=True):
            if isinstance(result, SourceError):
                reading.errors.append(f"metric {metric!r} (site {target.name}, {signal}): {result}")
            elif result is None:
                reading.errors.append(
                    f"metric {metric!r} (site {target.name}, {signal}): no data point in the last "
                    f"{WINDOW.total_seconds() / 60:g} min"
                )
            else:
                reading.values.setdefault(target.name, {})[signal] = result
        return reading

    async def _read(self, http: HttpSource, query: str, resource: str, now: datetime) -> Signal | None:
        """The newest point of one metric of one resource; None when there is none."""
        name, aggregation = parse_metric(query)
        body = await http.get_json(
            http.url(f"{resource}/providers/Microsoft.Insights/metrics"),
            {
                "api-version": API_VERSION,
                "metricnames": name,
                "timespan": f"{rfc3339(now - WINDOW)}/{rfc3339(now)}",
                "interval": INTERVAL,
                "aggregation": aggregation,
            },
        )
        metrics = body.get("value") if isinstance(body, dict) else None
        if not isinstance(metrics, list):
            raise SourceError("answer has no 'value' list")
        series: list[Any] = []
        for metric in metrics:
            if not isinstance(metric, dict):
                raise SourceError(f"malformed metric {metric!r}")
            code = metric.get("errorCode", "Success")
            if code != "Success":
                raise SourceError(f"{code}: {metric.get('errorMessage', '')}")
            series.extend(metric.get("timeseries") or [])
        if len(series) > 1:
            raise SourceError(f"{len(series)} time series, expected one (filter the dimension)")
        field = aggregation.lower()  # the data points' key: average, total, ...
        points = (series[0].get("data") or []) if series else []
        newest: tuple[datetime, float] | None = None
        for point in points:
            if not isinstance(point, dict):
                raise SourceError(f"malformed data point {point!r}")
            if point.get(field) is None:
                continue  # a minute without data
            at = parse_time(point.get("timeStamp"), "data point")
            if newest is None or at > newest[0]:
                newest = (at, finite(point[field], f"{field} at {point.get('timeStamp')}"))
        if newest is None:
            return None
        return Signal(value=newest[1], source=self.name, observed_at=newest[0])
