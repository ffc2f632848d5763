"""The Azure Monitor driver: platform metrics through ``azure-monitor-query``'s
``MetricsQueryClient`` (ARM's Metrics - List), authenticated by azure-identity.

``GET {url}{resourceId}/providers/Microsoft.Insights/metrics?metricnames=NAME
&timespan=START/END&interval=PT1M&aggregation=AGG&api-version=...`` with an Entra ID bearer
token for ARM (audience ``https://management.azure.com``).

Why ``azure-monitor-query`` 1.x: its ``MetricsQueryClient`` reads one resource's metrics from
ARM, by resource id, which is what a site names here. In 2.x the metrics client moved to
``azure-monitor-querymetrics``, whose ``MetricsClient`` reads a batch of resources from the
regional data-plane endpoint (``https://REGION.metrics.monitor.azure.com``) and so would need a
region per site and another token audience.

- ``url``: the ARM endpoint, ``https://management.azure.com`` in the public cloud (azure-core
  sends a bearer token only over HTTPS).
- ``resources``: site name to the resource id its metrics are read from
  (``/subscriptions/.../resourceGroups/.../providers/Microsoft.ContainerService/managedClusters/dr``).
  A candidate without one is not covered by this source: its signals are left to the others.
- ``queries``: signal to metric name, optionally ``NAME:AGGREGATION`` with ``Average`` (the
  default), ``Total``, ``Minimum``, ``Maximum`` or ``Count``: ``node_cpu_usage_percentage:Maximum``.
- ``credential``: ``token`` (the fixed token ``token_ref`` names) or ``azure`` (the worker's
  credential chain, whose tokens azure-core's policy fetches again before they expire).

The value is the newest one-minute point that has the aggregation within the last
:data:`WINDOW` (Azure publishes with a delay of a minute or more, and leaves empty minutes
without the field); ``observed_at`` is that point's ``timeStamp`` (the start of its minute).
A metric split into several time series (by a dimension) is an error naming the count.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.monitor.query import MetricsQueryClient

from drivers.secrets import resolve_secret
from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.http import (
    AZURE_ARM_SCOPE,
    SourceError,
    api_error_line,
    chain_credential,
    chain_error,
    connection_refusal,
    finite,
    guarded,
    not_json_line,
    utc,
)
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef
from hybridops.errors import ConfigError
from hybridops.inventory import SignalCredential, SignalSource

ARM_AUDIENCE = AZURE_ARM_SCOPE.removesuffix("/.default")
"""The token's audience: ARM's, whatever ``url`` says (the client would take the endpoint's)."""
WINDOW = timedelta(minutes=10)
"""How far back a point may be and still be read (staleness is for the policy to judge)."""
INTERVAL = timedelta(minutes=1)
AGGREGATIONS = ("Average", "Total", "Minimum", "Maximum", "Count")
FIXED_TOKEN_LIFE_S = 3600
"""What a fixed token is said to live, to azure-core's policy (it cannot be fetched again)."""


def parse_metric(query: str) -> tuple[str, str]:
    """``NAME[:AGGREGATION]`` as (name, aggregation); :class:`SourceError` for an unknown one."""
    name, sep, agg = query.rpartition(":")
    if not sep:
        return query, "Average"
    for known in AGGREGATIONS:
        if agg.lower() == known.lower():
            return name, known
    raise SourceError(f"aggregation {agg!r} is not one of {', '.join(AGGREGATIONS)}")


class _Credential:
    """A token credential for the client: the fixed token, or the kept credential chain. It
    remembers every token it hands out, so an error text that echoes one can be redacted."""

    def __init__(self, fixed: str | None, chain: Any) -> None:
        self._fixed = fixed
        self._chain = chain
        self.issued: set[str] = {fixed} if fixed else set()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self._fixed is not None:
            return AccessToken(self._fixed, int(time.time()) + FIXED_TOKEN_LIFE_S)
        token: AccessToken = self._chain.get_token(*scopes, **kwargs)
        self.issued.add(token.token)
        return token

    def redact(self, text: str) -> str:
        for token in self.issued:
            text = text.replace(token, "***")
        return text


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
        try:
            credential = await asyncio.to_thread(_credential, self.source)
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        client = MetricsQueryClient(
            credential,
            endpoint=self.source.url,
            audience=ARM_AUDIENCE,
            # No retries: the next collection is the retry, and azure-core's backoff would
            # outlast the source's bound.
            retry_total=0,
            connection_timeout=self.source.timeout_s,
            read_timeout=self.source.timeout_s,
        )
        at = utc(now)
        with client:
            # The client is blocking (requests): each read runs in a thread of its own.
            results = await asyncio.gather(
                *(
                    guarded(asyncio.to_thread(self._read, client, credential, metric, resource, at))
                    for _, _, metric, resource in jobs
                )
            )
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

    def _read(
        self, client: MetricsQueryClient, credential: _Credential, query: str, resource: str, now: datetime
    ) -> Signal | None:
        """The newest point of one metric of one resource; None when there is none (blocking)."""
        name, aggregation = parse_metric(query)
        answers: list[Any] = []

        def keep_answer(response: Any, answer: Any, headers: Any) -> Any:
            # The result model drops each metric's errorCode: keep the decoded answer to read it.
            answers.append(answer)
            return answer

        try:
            result = client.query_resource(
                resource,
                [name],
                timespan=(now - WINDOW, now),
                granularity=INTERVAL,
                aggregations=[aggregation],
                cls=keep_answer,
            )
        except AzureError as err:
            raise SourceError(credential.redact(self._failure(err))) from None
        except json.JSONDecodeError as err:  # a body not labelled JSON is decoded by the operation
            raise SourceError(credential.redact(not_json_line(err.doc.encode()))) from None
        answer = answers[0] if answers else None
        metrics = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(metrics, list):
            raise SourceError("answer has no 'value' list")
        for metric in metrics:
            code = metric.get("errorCode", "Success")
            if code != "Success":
                raise SourceError(credential.redact(f"{code}: {metric.get('errorMessage', '')}"))
        series = [s for metric in result.metrics for s in metric.timeseries]
        if len(series) > 1:
            raise SourceError(f"{len(series)} time series, expected one (filter the dimension)")
        field = aggregation.lower()  # the data point's attribute: average, total, ...
        newest: tuple[datetime, float] | None = None
        for point in series[0].data if series else []:
            value = getattr(point, field)
            if value is None:
                continue  # a minute without data
            at = utc(point.timestamp)
            if newest is None or at > newest[0]:
                newest = (at, finite(value, f"{field} at {at.isoformat()}"))
        if newest is None:
            return None
        return Signal(value=newest[1], source=self.name, observed_at=newest[0])

    def _failure(self, err: AzureError) -> str:
        """azure-core's error as one line: the HTTP status and ARM's error, a body that is not
        JSON, no answer in time, or the reason a connection failed."""
        if isinstance(err, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)):
            return f"no answer within {self.source.timeout_s:g} s"
        response = getattr(err, "response", None)
        if isinstance(err, HttpResponseError) and response is not None:
            raw = response.body()
            status = response.status_code
            return api_error_line(status, raw) if status >= 400 else not_json_line(raw)
        refusal = connection_refusal(err)
        if refusal is not None:
            return f"cannot connect to {_host_port(self.source.url)}: {refusal}"
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def _credential(source: SignalSource) -> _Credential:
    """The source's token credential, with a first token fetched (blocking): a reference that
    does not resolve, or a chain that refuses, is one error line before any request."""
    if source.credential == SignalCredential.TOKEN:
        try:
            token = resolve_secret(source.token_ref)
        except ConfigError as err:
            raise SourceError(f"token: {err}") from None
        if not token:
            raise SourceError("token: none (token_ref is not set and credential is 'token')")
        return _Credential(token, None)
    if source.credential != SignalCredential.AZURE:
        raise SourceError(f"credential {source.credential.value!r}: Azure Monitor takes 'token' or 'azure'")
    try:
        credential = _Credential(None, chain_credential(source.credential))
        credential.get_token(AZURE_ARM_SCOPE)
    except Exception as err:  # the chain's own errors (refused, unavailable)
        raise chain_error(source.credential, err) from None
    return credential


def _host_port(url: str) -> str:
    """``host:port`` of ``url``, the port HTTPS's when it names none."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
