"""The Prometheus driver: instant queries through the HTTP API (``/api/v1/query``).

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

One request per collection: every (candidate, signal) query and its ``timestamp()`` go in one
instant query, each wrapped in ``label_replace`` to tag it with a ``hybridops_signal`` label
naming the pair and the half (``3``, ``3t``), joined with ``or`` (which matches label sets without
the metric name, so the distinct tags keep every sample), and POSTed (it is long). The answer is
split by tag and each pair read by the rules above. Two requests per pair made a collection of
the lab's 10 signals for 2 candidates take 5 to 7 times as long (bench/signals.py). When
Prometheus refuses the combined query (a template that is invalid PromQL, gives a scalar, which
``label_replace`` does not take, ...), each query goes on its own as before, so each error names
its query. When Prometheus does not answer at all, that is the collection's one error.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.http import HttpSource, SourceError, Unreachable, finite, guarded, substitute, utc
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef

log = logging.getLogger(__name__)

API_PATH = "/api/v1/query"
TAG = "hybridops_signal"
"""The label that tags each part of the combined query with its pair."""

Sample = tuple[float, datetime]
"""One sample of an instant query: value, timestamp."""


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
        at = f"{utc(now).timestamp():.3f}"
        queries = [query for _, _, query in jobs]
        try:
            async with HttpSource(self.source) as http:
                results = await guarded(self._read_all(http, queries, at))
                if isinstance(results, Unreachable):
                    raise results
                if isinstance(results, SourceError):
                    log.debug("combined query refused (%s): one query each", results)
                    results = await asyncio.gather(*(self._read(http, query, at) for query in queries))
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        for (target, signal, query), result in zip(jobs, results, strict=True):
            if isinstance(result, str):
                reading.errors.append(f"query {query!r} (site {target.name}, {signal}): {result}")
            else:
                reading.values.setdefault(target.name, {})[signal] = result
        return reading

    async def _read_all(self, http: HttpSource, queries: list[str], at: str) -> list[Signal | str]:
        """Each query's signal, or the reason there is none, from one combined query. Raises
        :class:`SourceError` when Prometheus refuses it or answers anything but a vector."""
        parts = []
        for i, query in enumerate(queries):
            parts.append(f'label_replace({query}, "{TAG}", "{i}", "", "")')
            parts.append(f'label_replace(timestamp({query}), "{TAG}", "{i}t", "", "")')
        body = await http.post_json(http.url(API_PATH), {"query": " or ".join(parts), "time": at})
        kind, result = _data(body)
        if kind != "vector":
            raise SourceError(f"result type {kind!r} of the combined query, expected an instant vector")
        tagged: dict[str, list[Any]] = {}
        for series in result:
            tagged.setdefault(series["metric"][TAG], []).append(series)
        return [
            self._signal(_settled(tagged.get(f"{i}", [])), _settled(tagged.get(f"{i}t", [])))
            for i in range(len(queries))
        ]

    async def _read(self, http: HttpSource, query: str, at: str) -> Signal | str:
        """The query's one sample as a signal, or the reason there is none."""
        value, stamp = await asyncio.gather(
            guarded(self._instant(http, query, at)),
            guarded(self._instant(http, f"timestamp({query})", at)),
        )
        return self._signal(value, stamp)

    def _signal(self, value: Sample | SourceError | None, stamp: Sample | SourceError | None) -> Signal | str:
        """A query's sample and its ``timestamp()``'s as a signal, or the reason there is none."""
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

    async def _instant(self, http: HttpSource, query: str, at: str) -> Sample | None:
        """The single sample an instant query gives; None for no sample."""
        body = await http.get_json(http.url(API_PATH), {"query": query, "time": at})
        kind, result = _data(body)
        if kind == "vector" and isinstance(result, list):
            return _one(result)
        if kind == "scalar":
            return _sample(result)
        raise SourceError(f"result type {kind!r}, expected an instant vector")


def _data(body: Any) -> tuple[Any, Any]:
    """An answer's result type and result."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise SourceError(f"answer has no 'data': {str(body)[:200]!r}")
    return data.get("resultType"), data.get("result")


def _one(vector: list[Any]) -> Sample | None:
    """The single sample of an instant vector; None for no sample."""
    if not vector:
        return None
    if len(vector) > 1:
        raise SourceError(f"{len(vector)} series, expected one (aggregate them)")
    return _sample(vector[0].get("value") if isinstance(vector[0], dict) else None)


def _settled(vector: list[Any]) -> Sample | SourceError | None:
    """:func:`_one`, its error returned rather than raised (as :func:`guarded` does)."""
    try:
        return _one(vector)
    except SourceError as err:
        return err


def _sample(sample: Any) -> Sample:
    if not (isinstance(sample, list) and len(sample) == 2):
        raise SourceError(f"malformed sample {sample!r}")
    stamp = finite(sample[0], "sample timestamp")
    return finite(sample[1], "sample"), datetime.fromtimestamp(stamp, UTC)
