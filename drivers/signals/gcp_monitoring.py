"""The Google Cloud Monitoring driver: time series through ``google-cloud-monitoring``'s
``MetricServiceClient`` (Monitoring API v3, ``projects.timeSeries.list``), authenticated by
google-auth.

The library speaks gRPC only (it has no REST transport): each read is one
``google.monitoring.v3.MetricService/ListTimeSeries`` call with ``name=projects/PROJECT``, the
filter, the interval and the ``FULL`` view, and an OAuth 2 bearer token in its metadata (scope
``monitoring.read``).

- ``url``: the API endpoint, ``https://monitoring.googleapis.com`` (TLS, port 443 unless named).
  ``http://HOST:PORT`` is a plaintext endpoint on this machine (a local proxy, the tests' fake):
  gRPC's local credentials, which carry the token only over a loopback connection.
- ``resources``: site name to the project id its metrics live in. A candidate without one is
  not covered by this source: its signals are left to the others.
- ``queries``: signal to ``METRIC_TYPE`` or ``METRIC_TYPE | EXTRA_FILTER``, where the extra
  filter is in the Monitoring filter language and is ANDed to ``metric.type = "METRIC_TYPE"``;
  ``{site}`` and ``{cloud}`` are replaced by the candidate's name and cloud (``onprem`` for the
  on-prem site)::

      lag_seconds: custom.googleapis.com/hybridops/lag_seconds | metric.labels.site = "{site}"
      capacity: custom.googleapis.com/hybridops/free_nodes | resource.labels.cluster_name = "dr-{site}"

- ``credential``: ``token`` (the fixed token ``token_ref`` names) or ``google`` (Application
  Default Credentials, kept per process; google-auth fetches a new token before each call
  when the one it holds expires within its refresh margin).

The value is the newest point (by its interval's end) within the last :data:`WINDOW`, from a
double, int64 or bool value; ``observed_at`` is that end. The filter must select one time
series: several are an error naming the count.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.oauth2.credentials import Credentials as FixedToken

from drivers.secrets import resolve_secret
from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.http import (
    SourceError,
    chain_credential,
    chain_error,
    finite,
    guarded,
    substitute,
    utc,
)
from hybridops.contracts.decision import Signal
from hybridops.contracts.sites import SiteRef
from hybridops.errors import ConfigError
from hybridops.inventory import SignalCredential, SignalSource

WINDOW = timedelta(minutes=10)
"""How far back a point may be and still be read (staleness is for the policy to judge)."""
VALUE_KINDS = ("double_value", "int64_value", "bool_value")


def monitoring_filter(query: str) -> str:
    """``METRIC_TYPE [| EXTRA_FILTER]`` (placeholders already replaced) as a Monitoring filter."""
    metric_type, sep, extra = query.partition("|")
    metric_type, extra = metric_type.strip(), extra.strip()
    if not metric_type or (sep and not extra):
        raise SourceError("expected 'METRIC_TYPE' or 'METRIC_TYPE | FILTER'")
    text = f'metric.type = "{metric_type}"'
    return f"{text} AND ({extra})" if extra else text


def point_value(value: monitoring_v3.TypedValue, what: str) -> float:
    """A ``TypedValue`` as a float: a double, an int64 or a bool."""
    kind = monitoring_v3.TypedValue.pb(value).WhichOneof("value")
    if kind not in VALUE_KINDS:
        raise SourceError(f"{what}: unsupported value type {kind!r}")
    if kind == "bool_value":
        return 1.0 if value.bool_value else 0.0
    return finite(getattr(value, kind), what)


def endpoint(url: str) -> tuple[str, grpc.ChannelCredentials | None]:
    """The gRPC target of ``url`` and its channel credentials: TLS (None: the transport's
    default) for ``https://`` or a bare host, local credentials for ``http://`` (see the
    module's docstring)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"signals url {url!r}: expected https://HOST[:PORT] or http://HOST:PORT")
    host = parts.netloc.rsplit("@", 1)[-1]
    if parts.scheme == "http":
        return host, grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    return host, None


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
            session = await asyncio.to_thread(_session, self.source)
        except SourceError as err:
            reading.errors.append(str(err))
            return reading
        try:
            # The client is blocking (a gRPC channel): each read runs in a thread of its own.
            results = await asyncio.gather(
                *(
                    guarded(asyncio.to_thread(self._read, session, query, project, utc(now)))
                    for _, _, query, project in jobs
                )
            )
        finally:
            session.client.transport.close()
        for (target, signal, query, project), result in zip(jobs, results, strict=True):
            what = f"metric {query!r} (site {target.name}, project {project}, {signal})"
            if isinstance(result, SourceError):
                reading.errors.append(f"{what}: {result}")
            elif result is None:
                reading.errors.append(f"{what}: no point in the last {WINDOW.total_seconds() / 60:g} min")
            else:
                reading.values.setdefault(target.name, {})[signal] = result
        return reading

    def _read(self, session: _Session, query: str, project: str, now: datetime) -> Signal | None:
        """The newest point of the one series ``query`` selects; None when there is none
        (blocking)."""
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{project}",
            filter=monitoring_filter(query),
            interval=monitoring_v3.TimeInterval(start_time=now - WINDOW, end_time=now),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        )
        try:
            # No retries: the next collection is the retry; the deadline is the source's bound.
            pager = session.client.list_time_series(
                request=request, retry=None, timeout=self.source.timeout_s
            )
        except gexc.GoogleAPICallError as err:
            raise SourceError(session.redact(self._failure(err))) from None
        if pager.next_page_token:
            raise SourceError("more than one page of time series, expected one series")
        series = list(pager.time_series)
        if len(series) > 1:
            raise SourceError(f"{len(series)} time series, expected one (narrow the filter)")
        newest: tuple[datetime, float] | None = None
        for point in series[0].points if series else []:
            end = point.interval.end_time
            # A plain datetime (the library's keeps nanoseconds the decision has no use for).
            at = datetime.combine(end.date(), end.time(), tzinfo=UTC)
            if newest is None or at > newest[0]:
                newest = (at, point_value(point.value, f"point at {at.isoformat()}"))
        if newest is None:
            return None
        return Signal(value=newest[1], source=self.name, observed_at=newest[0])

    def _failure(self, err: gexc.GoogleAPICallError) -> str:
        """The call's gRPC status as one line: ``CODE: message``, or no answer in time."""
        if isinstance(err, gexc.DeadlineExceeded):
            return f"no answer within {self.source.timeout_s:g} s"
        code = err.grpc_status_code.name if err.grpc_status_code is not None else str(err.code)
        return f"{code}: {err.message}"


@dataclass(frozen=True)
class _Session:
    """One collection's client and the credentials it calls with."""

    client: monitoring_v3.MetricServiceClient
    credentials: Any

    def redact(self, text: str) -> str:
        """``text`` without the token, should a server have echoed it back."""
        token = getattr(self.credentials, "token", None)
        return text.replace(token, "***") if token else text


def _session(source: SignalSource) -> _Session:
    """A client for the source (blocking: a chain's first token is fetched here, so a reference
    that does not resolve, or a chain that refuses, is one error line before any call)."""
    credentials: Any
    if source.credential == SignalCredential.TOKEN:
        try:
            token = resolve_secret(source.token_ref)
        except ConfigError as err:
            raise SourceError(f"token: {err}") from None
        if not token:
            raise SourceError("token: none (token_ref is not set and credential is 'token')")
        credentials = FixedToken(token=token)
    elif source.credential == SignalCredential.GOOGLE:
        try:
            import google.auth.transport.requests

            credentials = chain_credential(source.credential)
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
        except Exception as err:  # the chain's own errors (refused, no credentials)
            raise chain_error(source.credential, err) from None
    else:
        raise SourceError(
            f"credential {source.credential.value!r}: Cloud Monitoring takes 'token' or 'google'"
        )
    try:
        host, channel_credentials = endpoint(source.url)
    except ConfigError as err:
        raise SourceError(str(err)) from None
    transport = MetricServiceGrpcTransport(
        host=host,
        credentials=credentials,
        ssl_channel_credentials=channel_credentials,
        # OAuth tokens from the chain, kept and refreshed in one place, rather than the
        # self-signed JWTs the library would make from a service account's key.
        always_use_jwt_access=False,
    )
    return _Session(monitoring_v3.MetricServiceClient(transport=transport), credentials)
