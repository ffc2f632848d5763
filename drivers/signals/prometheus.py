"""The Prometheus driver: instant queries through the HTTP API (``GET /api/v1/query``).

Each ``queries`` entry is PromQL in which ``{site}`` and ``{cloud}`` are replaced by the
candidate's name and cloud (``onprem`` for the on-prem site), as plain text, so the braces of
label matchers stay as they are::

    lag_seconds: hybridops_replication_lag_seconds{site="{site}"}
    error_rate:  sum(rate(http_errors_total{cloud="{cloud}"}[5m]))
                   / sum(rate(http_requests_total{cloud="{cloud}"}[5m]))

A query must give one sample per candidate. No sample leaves the signal missing; several are an
error naming the count, never a silent pick, since which one is right is the query's business
(aggregate with ``max``/``sum``). NaN and infinities are errors too.

Staleness: Prometheus stamps every sample of an instant query with the evaluation time, however
old the data behind it (up to the lookback delta, 5 min by default, for series without
staleness markers such as federated or remote-written ones). So each query is paired with
``timestamp(<query>)``, which gives the time the sample was scraped for a plain selector, and
``observed_at`` is that time. For an expression where Prometheus cannot tell (an aggregation, a
scalar) ``timestamp()`` gives the evaluation time, which is then what ``observed_at`` says.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.http import HttpSource, SourceError, finite, guarded, substitute, utc
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef

API_PATH = "/api/v1/query"


class PrometheusDriver(SignalsDriver):
    """A Prometheus server (or anything that speaks its query API: Thanos, Mimir, VictoriaMetrics)."""

    name = "prometheus"

    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        reading = SourceReading()
        jobs = [
            (target, signal, substitute(template, target))
            for target in targets
            for signal, template in self.source.queries.items()
        ]
        if not jobs:
            return reading
        try:
            async with HttpSource(self.source) as http:
                results = await asyncio.gather(*(self._read(http, query, utc(now)) for _, _, query in jobs))
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        for (target, signal, query), result in zip(jobs, results, strict=True):
            if isinstance(result, str):
                reading.errors.append(f"query {query!r} (site {target.name}, {signal}): {result}")
            else:
                reading.values.setdefault(target.name, {})[signal] = result
        return reading

    async def _read(self, http: HttpSource, query: str, now: datetime) -> Signal | str:
        """The query's one sample as a signal, or the reason there is none."""
        at = f"{now.timestamp():.3f}"
        value, stamp = await asyncio.gather(
            guarded(self._instant(http, query, at)),
            guarded(self._instant(http, f"timestamp({query})", at)),
        )
        if isinstance(value, SourceError):
            return str(value)
        if value is None:
            return "returned nothing"
        number, evaluated_at = value
        observed_at = evaluated_at
        if isinstance(stamp, tuple):
            # The scrape time behind the sample; never later than the evaluation.
            observed_at = min(evaluated_at, datetime.fromtimestamp(stamp[0], UTC))
        return Signal(value=number, source=self.name, observed_at=observed_at)

    async def _instant(self, http: HttpSource, query: str, at: str) -> tuple[float, datetime] | None:
        """The single sample an instant query gives (value, timestamp); None for no sample."""
        body = await http.get_json(http.url(API_PATH), {"query": query, "time": at})
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise SourceError(f"answer has no 'data': {str(body)[:200]!r}")
        kind, result = data.get("resultType"), data.get("result")
        sample: Any
        if kind == "vector" and isinstance(result, list):
            if not result:
                return None
            if len(result) > 1:
                raise SourceError(f"{len(result)} series, expected one (aggregate them)")
            sample = result[0].get("value") if isinstance(result[0], dict) else None
        elif kind == "scalar":
            sample = result
        else:
            raise SourceError(f"result type {kind!r}, expected an instant vector")
        if not (isinstance(sample, list) and len(sample) == 2):
            raise SourceError(f"malformed sample {sample!r}")
        stamp = finite(sample[0], "sample timestamp")
        return finite(sample[1], "sample"), datetime.fromtimestamp(stamp, UTC)
