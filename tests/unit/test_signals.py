"""The signal drivers against fakes at the boundary their clients talk to (loopback servers that
check what they receive and answer in each API's documented format): Prometheus's HTTP API and
ARM's Metrics - List (HTTPS, for azure-monitor-query) on an aiohttp server, Cloud Monitoring's
gRPC API (for google-cloud-monitoring) in tests/fakes/cloudmonitoring.py; the merge of their
readings, and the Prometheus driver against a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from aiohttp import web
from google.cloud.monitoring_v3 import ListTimeSeriesRequest, ListTimeSeriesResponse

from drivers.signals import SignalsDriver, SourceReading, collect_signals, make_signal_drivers
from drivers.signals.azure_monitor import AzureMonitorDriver
from drivers.signals.gcp_monitoring import GcpMonitoringDriver
from drivers.signals.http import HttpSource, SourceError
from drivers.signals.prometheus import PrometheusDriver
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import Signal, SignalName
from hybridops.contracts.sites import SiteRef
from hybridops.inventory import SignalsKind, SignalSource, SignalsSettings
from tests.fakes.azuredns import self_signed
from tests.fakes.cloudmonitoring import Call, FakeCloudMonitoring, Refuse

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
TOKEN = "tok-9f8e7d-very-secret"
TOKEN_ENV = "HYBRIDOPS_TEST_SIGNALS_TOKEN"
ONPREM = SiteRef(name="onprem")
AZURE = SiteRef(name="azure", cloud=Cloud.AZURE)
GCP = SiteRef(name="gcp", cloud=Cloud.GCP)
AZURE_RID = (
    "/subscriptions/sub-1/resourceGroups/dr/providers/Microsoft.ContainerService/managedClusters/aks-dr"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    """The query string's parameters, and a POSTed form's."""
    auth: str | None
    method: str = "GET"


PARAMS = web.RequestKey("params", dict[str, str])
"""What the fake received as parameters (query string, and a POSTed form)."""


def params(request: web.Request) -> dict[str, str]:
    return request[PARAMS]


@dataclass
class FakeApi:
    """An HTTP server on loopback: records every request, answers with ``handler``."""

    url: str = ""
    tls_url: str = ""
    """The same server over HTTPS (azure-core sends a bearer token over HTTPS only)."""
    ca: Path | None = None
    """The HTTPS site's self-signed certificate (the tests trust it through REQUESTS_CA_BUNDLE)."""
    seen: list[Seen] = field(default_factory=list)
    handler: Handler | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown: frees handlers that hold their answer back (timeout tests)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received = dict(request.query)
        if request.method == "POST":
            received |= {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        request[PARAMS] = received
        auth = request.headers.get("Authorization")
        self.seen.append(Seen(request.path, received, auth, request.method))
        assert self.handler is not None, "the test sets the fake's handler"
        wrong = self.misaddressed(request)
        if wrong is not None:
            return web.json_response({"error": {"code": 400, "message": wrong}}, status=400)
        return await self.handler(request)

    @staticmethod
    def misaddressed(request: web.Request) -> str | None:
        """Whatever the test's answer, a request must be one of the APIs' documented ones:
        Prometheus's instant query (GET, or POST with a form), ARM's Metrics - List on a resource
        (GET), each with its required parameters, and a bearer token when it carries
        authorization at all (ARM: always, and over HTTPS)."""
        path, query = request.path, set(params(request))
        auth = request.headers.get("Authorization")
        if auth is not None and not (auth.startswith("Bearer ") and len(auth) > len("Bearer ")):
            return f"malformed Authorization {auth[:12]!r}"
        if path == "/api/v1/query":
            need = {"query", "time"}
        elif request.method != "GET":
            return f"{request.method} {path}: ARM's Metrics - List is a GET"
        elif path.startswith("/subscriptions/") and path.endswith("/providers/Microsoft.Insights/metrics"):
            need = {"api-version", "metricnames", "timespan", "interval", "aggregation"}
            if auth is None or request.scheme != "https":
                return "ARM takes a bearer token over HTTPS only"
        else:
            return f"no such API path {path}"
        missing = need - query
        return f"missing query parameters {sorted(missing)}" if missing else None

    def answer(self, body: Any, status: int = 200) -> None:
        """Answer every request with ``body`` (JSON unless bytes)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if isinstance(body, bytes):
                return web.Response(body=body, status=status, content_type="text/plain")
            return web.json_response(body, status=status)

        self.handler = handler

    def hang(self) -> None:
        """Never answer (until teardown)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await self.release.wait()
            return web.json_response({})

        self.handler = handler


@pytest_asyncio.fixture
async def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeApi]:
    api = FakeApi()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", api.handle)
    app.router.add_route("POST", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    cert, key = self_signed(tmp_path, common_name="fake ARM metrics")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    (host, port), (_, tls_port) = (address[:2] for address in runner.addresses)
    api.url, api.tls_url, api.ca = f"http://{host}:{port}", f"https://{host}:{tls_port}", cert
    # requests (under azure-core) trusts the HTTPS site's certificate through this.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    try:
        yield api
    finally:
        api.release.set()
        await runner.cleanup()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return f"env:{TOKEN_ENV}"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port where nothing listens: a bound socket that never listens refuses connections
    (and keeps the port from anyone else while the test runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def errors_of(reading: SourceReading) -> list[str]:
    """The reading's errors, after checking none of them leaks the token."""
    for line in reading.errors:
        assert TOKEN not in line
    return reading.errors


# --------------------------------------------------------------------------- prometheus


def prom_vector(*samples: tuple[dict[str, str], float, str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [ts, value]} for labels, ts, value in samples],
        },
    }


def prometheus(url: str, token_ref: str | None = None, **queries: str) -> PrometheusDriver:
    return PrometheusDriver(
        SignalSource(
            driver=SignalsKind.PROMETHEUS,
            url=url,
            queries={SignalName(k): v for k, v in queries.items()},
            token_ref=token_ref,
            timeout_s=0.5,
        )
    )


LAG_Q = 'hybridops_lag_seconds{site="{site}",cloud="{cloud}"}'

PromAnswer = Callable[[str], Any]
"""A fake Prometheus's answer to one plain query: a body, or (body, HTTP status)."""
TAGGED = re.compile(r'label_replace\((.*?), "hybridops_signal", "(\d+t?)", "", ""\)')
"""A part of the driver's combined query: the query, its tag."""


def tagged(query: str, tag: str) -> str:
    return f'label_replace({query}, "hybridops_signal", "{tag}", "", "")'


def bad_data(error: str) -> tuple[dict[str, Any], int]:
    return {"status": "error", "errorType": "bad_data", "error": error}, 400


def _reply(answer: Any) -> web.Response:
    body, status = answer if isinstance(answer, tuple) else (answer, 200)
    return web.json_response(body, status=status)


def promql(answer: PromAnswer, combined: bool = True) -> Handler:
    """A fake Prometheus: each plain query answered by ``answer``; the driver's combined query,
    when ``combined``, as Prometheus evaluates it (every part's samples with its tag, or the
    first part's error; a part whose result is not a vector refused, as ``label_replace``
    refuses it), else refused as a parse error, which sends the driver to one query each."""

    async def handler(request: web.Request) -> web.StreamResponse:
        query = params(request)["query"]
        parts = TAGGED.findall(query)
        if not parts:
            return _reply(answer(query))
        if not combined or " or ".join(tagged(q, t) for q, t in parts) != query:
            return _reply(bad_data("1:1: parse error: refused by the test"))
        result = []
        for part, tag in parts:
            body, status = got if isinstance(got := answer(part), tuple) else (got, 200)
            if status != 200:
                return _reply((body, status))
            kind = body["data"]["resultType"]
            if kind != "vector":
                return _reply(
                    bad_data(f'expected type instant vector in call to "label_replace", got {kind}')
                )
            result += [
                {"metric": s["metric"] | {"hybridops_signal": tag}, "value": s["value"]}
                for s in body["data"]["result"]
            ]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    return handler


def requests_for(pairs: int, combined: bool) -> int:
    """A collection's requests: the combined query; when it is refused, each (candidate,
    signal) pair's query and its ``timestamp()`` besides."""
    return 1 if combined else 1 + 2 * pairs


BOTH_PATHS = pytest.mark.parametrize("combined", [True, False], ids=["combined", "per-query"])
"""The same rules, whether Prometheus answers the combined query or refuses it."""


@BOTH_PATHS
async def test_prometheus_reads_one_sample_per_target_with_scrape_time(
    fake: FakeApi, token: str, combined: bool
) -> None:
    evaluated = NOW.timestamp()
    scraped = evaluated - 7.25
    values = {"onprem": "0", "azure": "1.5"}

    def answer(query: str) -> Any:
        site = "azure" if '"azure"' in query else "onprem"
        if query.startswith("timestamp("):
            return prom_vector(({"site": site}, evaluated, str(scraped)))
        return prom_vector(({"site": site}, evaluated, values[site]))

    fake.handler = promql(answer, combined)
    driver = prometheus(fake.url, token, lag_seconds=LAG_Q)
    reading = await driver.collect([ONPREM, AZURE], NOW)

    assert errors_of(reading) == []
    assert reading.values["azure"][SignalName.LAG_SECONDS] == Signal(
        value=1.5, source="prometheus", observed_at=datetime.fromtimestamp(scraped, UTC)
    )
    assert reading.values["onprem"][SignalName.LAG_SECONDS].value == 0.0
    assert {s.path for s in fake.seen} == {"/api/v1/query"}
    assert {s.auth for s in fake.seen} == {f"Bearer {TOKEN}"}
    assert {s.query["time"] for s in fake.seen} == {f"{evaluated:.3f}"}
    onprem_q = 'hybridops_lag_seconds{site="onprem",cloud="onprem"}'
    azure_q = 'hybridops_lag_seconds{site="azure",cloud="azure"}'
    first, *rest = fake.seen
    assert (first.method, first.query["query"]) == (
        "POST",
        " or ".join(
            [
                tagged(onprem_q, "0"),
                tagged(f"timestamp({onprem_q})", "0t"),
                tagged(azure_q, "1"),
                tagged(f"timestamp({azure_q})", "1t"),
            ]
        ),
    )
    assert len(fake.seen) == requests_for(2, combined)
    assert sorted((s.method, s.query["query"]) for s in rest) == (
        []
        if combined
        else sorted(
            ("GET", q) for q in [onprem_q, azure_q, f"timestamp({onprem_q})", f"timestamp({azure_q})"]
        )
    )


@BOTH_PATHS
async def test_prometheus_without_timestamp_uses_evaluation_time(fake: FakeApi, combined: bool) -> None:
    """An aggregation has no scrape time: ``timestamp()`` fails or says nothing, the evaluation
    time stands. No token configured: no Authorization header."""

    def answer(query: str) -> Any:
        if query.startswith("timestamp("):
            return prom_vector()
        return prom_vector(({}, NOW.timestamp(), "3"))

    fake.handler = promql(answer, combined)
    reading = await prometheus(fake.url, capacity='max(free_nodes{site="{site}"})').collect([GCP], NOW)
    assert reading.errors == []
    assert reading.values["gcp"][SignalName.CAPACITY].observed_at == NOW
    assert {s.auth for s in fake.seen} == {None}
    assert len(fake.seen) == requests_for(1, combined)


@BOTH_PATHS
async def test_prometheus_empty_result_leaves_signal_missing(
    fake: FakeApi, token: str, combined: bool
) -> None:
    fake.handler = promql(lambda query: prom_vector(), combined)
    reading = await prometheus(fake.url, token, lag_seconds=LAG_Q).collect([AZURE], NOW)
    assert reading.values == {}
    assert errors_of(reading) == [
        'query \'hybridops_lag_seconds{site="azure",cloud="azure"}\' (site azure, lag_seconds): '
        "returned nothing"
    ]
    assert len(fake.seen) == requests_for(1, combined)


@BOTH_PATHS
async def test_prometheus_several_series_is_an_error_naming_the_count(fake: FakeApi, combined: bool) -> None:
    two = prom_vector(({"pod": "a"}, NOW.timestamp(), "1"), ({"pod": "b"}, NOW.timestamp(), "2"))
    fake.handler = promql(lambda query: two, combined)
    reading = await prometheus(fake.url, error_rate='rate(x{site="{site}"}[1m])', lag_seconds=LAG_Q).collect(
        [AZURE], NOW
    )
    assert reading.values == {}
    assert reading.errors == [
        "query 'rate(x{site=\"azure\"}[1m])' (site azure, error_rate): "
        "2 series, expected one (aggregate them)",
        'query \'hybridops_lag_seconds{site="azure",cloud="azure"}\' (site azure, lag_seconds): '
        "2 series, expected one (aggregate them)",
    ]
    assert len(fake.seen) == requests_for(2, combined)


@BOTH_PATHS
async def test_prometheus_nan_is_an_error(fake: FakeApi, combined: bool) -> None:
    def answer(query: str) -> Any:
        # A NaN scrape time is ignored (the evaluation time stands); a NaN value is an error.
        return prom_vector(({}, NOW.timestamp(), "NaN" if query in ("slo", "timestamp(lag)") else "1"))

    fake.handler = promql(answer, combined)
    reading = await prometheus(fake.url, slo_score="slo", lag_seconds="lag").collect([AZURE], NOW)
    assert reading.values == {
        "azure": {SignalName.LAG_SECONDS: Signal(value=1, source="prometheus", observed_at=NOW)}
    }
    assert reading.errors == ["query 'slo' (site azure, slo_score): sample: value is NaN"]
    assert len(fake.seen) == requests_for(2, combined)


async def test_prometheus_error_body_names_type_and_query(fake: FakeApi, token: str) -> None:
    fake.answer(
        {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}, status=400
    )
    reading = await prometheus(fake.url, token, lag_bytes="lag{").collect([ONPREM], NOW)
    assert reading.values == {}
    assert errors_of(reading) == [
        "query 'lag{' (site onprem, lag_bytes): HTTP 400: bad_data: parse error: unexpected \"}\""
    ]
    assert len(fake.seen) == requests_for(1, combined=False)


async def test_prometheus_one_invalid_template_costs_one_query_each(fake: FakeApi) -> None:
    """Prometheus refuses the whole combined query for one bad template: the driver asks each
    query on its own, so the good ones are read and the error names the bad one."""

    def answer(query: str) -> Any:
        if "lag{" in query:
            return bad_data("1:5: parse error: unexpected end of input inside braces")
        return prom_vector(({}, NOW.timestamp(), "2"))

    fake.handler = promql(answer)
    reading = await prometheus(fake.url, lag_seconds=LAG_Q, lag_bytes="lag{").collect([AZURE, GCP], NOW)
    assert {site: set(signals) for site, signals in reading.values.items()} == {
        "azure": {SignalName.LAG_SECONDS},
        "gcp": {SignalName.LAG_SECONDS},
    }
    assert reading.errors == [
        f"query 'lag{{' (site {site}, lag_bytes): HTTP 400: bad_data: "
        "1:5: parse error: unexpected end of input inside braces"
        for site in ("azure", "gcp")
    ]
    assert len(fake.seen) == requests_for(4, combined=False)


async def test_prometheus_scalar_template_is_read_one_query_each(fake: FakeApi) -> None:
    """``label_replace`` takes no scalar, so a template that gives one makes Prometheus refuse
    the combined query; on its own the scalar reads as before (at the evaluation time, since
    ``timestamp()`` takes no scalar either)."""

    def answer(query: str) -> Any:
        if query.startswith("timestamp("):
            return bad_data('expected type instant vector in call to function "timestamp", got scalar')
        return {"status": "success", "data": {"resultType": "scalar", "result": [NOW.timestamp(), "4"]}}

    fake.handler = promql(answer)
    reading = await prometheus(fake.url, capacity="scalar(free_nodes)").collect([AZURE], NOW)
    assert reading.errors == []
    assert reading.values == {
        "azure": {SignalName.CAPACITY: Signal(value=4, source="prometheus", observed_at=NOW)}
    }
    assert len(fake.seen) == requests_for(1, combined=False)


async def test_prometheus_unreachable_is_one_error_and_no_second_try(
    fake: FakeApi, refused_port: int
) -> None:
    """No answer to the combined query: one error for the collection; asking each query on its
    own would only take longer to fail."""
    queries = {"lag_seconds": LAG_Q, "lag_bytes": "lag"}
    refused = await prometheus(f"http://127.0.0.1:{refused_port}", **queries).collect([AZURE, GCP], NOW)
    assert refused.values == {}
    assert refused.errors == [f"cannot connect to 127.0.0.1:{refused_port}: Connection refused"]

    fake.hang()
    silent = await prometheus(fake.url, **queries).collect([AZURE, GCP], NOW)
    assert silent.errors == ["no answer within 0.5 s"]
    assert [s.method for s in fake.seen] == ["POST"]


async def test_prometheus_query_time_out_is_an_error(fake: FakeApi) -> None:
    fake.answer({"status": "error", "errorType": "timeout", "error": "query timed out"}, status=503)
    reading = await prometheus(fake.url, lag_bytes="lag").collect([ONPREM], NOW)
    assert reading.errors == ["query 'lag' (site onprem, lag_bytes): HTTP 503: timeout: query timed out"]


async def test_prometheus_matrix_result_is_an_error(fake: FakeApi) -> None:
    fake.answer({"status": "success", "data": {"resultType": "matrix", "result": []}})
    reading = await prometheus(fake.url, lag_bytes="lag[5m]").collect([ONPREM], NOW)
    assert reading.values == {}
    assert "result type 'matrix'" in reading.errors[0]


# --------------------------------------------------------------------------- azure monitor


def azure(url: str, token_ref: str | None, **queries: str) -> AzureMonitorDriver:
    return AzureMonitorDriver(
        SignalSource(
            driver=SignalsKind.AZURE_MONITOR,
            url=url,
            queries={SignalName(k): v for k, v in queries.items()},
            resources={"azure": AZURE_RID},
            token_ref=token_ref,
            timeout_s=0.5,
        )
    )


def azure_metrics(name: str, data: list[dict[str, Any]], series: int = 1) -> dict[str, Any]:
    """A Metrics - List answer, as documented for api-version 2024-02-01."""
    return {
        "cost": 0,
        "timespan": "2026-11-26T02:50:00Z/2026-11-26T03:00:00Z",
        "interval": "PT1M",
        "value": [
            {
                "id": f"{AZURE_RID}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name},
                "displayDescription": "",
                "unit": "Count",
                "timeseries": [{"metadatavalues": [], "data": data} for _ in range(series)],
                "errorCode": "Success",
            }
        ],
        "namespace": "Microsoft.ContainerService/managedClusters",
        "resourceregion": "westeurope",
    }


async def test_azure_reads_newest_point_with_a_value(fake: FakeApi, token: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.query["metricnames"]
        field_ = request.query["aggregation"].lower()
        data: list[dict[str, Any]] = [
            {"timeStamp": "2026-11-26T02:57:00Z", field_: 3.0},
            {"timeStamp": "2026-11-26T02:58:00Z", field_: 5.0},
            {"timeStamp": "2026-11-26T02:59:00Z"},  # the current minute: no data yet
        ]
        return web.json_response(azure_metrics(name, data))

    fake.handler = handler
    driver = azure(fake.tls_url, token, capacity="kube_node_status_allocatable_cpu_cores:Maximum")
    # onprem has no resource: not this source's business, no error either.
    reading = await driver.collect([ONPREM, AZURE], NOW)

    assert errors_of(reading) == []
    assert reading.values == {
        "azure": {
            SignalName.CAPACITY: Signal(
                value=5.0, source="azure_monitor", observed_at=datetime(2026, 11, 26, 2, 58, tzinfo=UTC)
            )
        }
    }
    [seen] = fake.seen
    assert seen.path == f"{AZURE_RID}/providers/Microsoft.Insights/metrics"
    assert seen.auth == f"Bearer {TOKEN}"
    assert seen.query == {
        "api-version": "2024-02-01",
        "metricnames": "kube_node_status_allocatable_cpu_cores",
        "timespan": "2026-11-26T02:50:00.000Z/2026-11-26T03:00:00.000Z",
        "interval": "PT1M",
        "aggregation": "Maximum",
    }


async def test_azure_default_aggregation_is_average(fake: FakeApi, token: str) -> None:
    fake.answer(azure_metrics("Percentage CPU", [{"timeStamp": "2026-11-26T02:59:00Z", "average": 42}]))
    reading = await azure(fake.tls_url, token, error_rate="Percentage CPU").collect([AZURE], NOW)
    assert reading.values["azure"][SignalName.ERROR_RATE].value == 42.0
    assert fake.seen[0].query["aggregation"] == "Average"
    assert fake.seen[0].query["metricnames"] == "Percentage CPU"


async def test_azure_no_data_leaves_signal_missing(fake: FakeApi, token: str) -> None:
    fake.answer(azure_metrics("m", [{"timeStamp": "2026-11-26T02:59:00Z"}]))
    reading = await azure(fake.tls_url, token, latency_ms="m").collect([AZURE], NOW)
    assert reading.values == {}
    assert reading.errors == ["metric 'm' (site azure, latency_ms): no data point in the last 10 min"]


async def test_azure_several_time_series_is_an_error(fake: FakeApi, token: str) -> None:
    fake.answer(azure_metrics("m", [], series=3))
    reading = await azure(fake.tls_url, token, latency_ms="m").collect([AZURE], NOW)
    assert "3 time series, expected one" in reading.errors[0]


async def test_azure_metric_error_code_is_an_error(fake: FakeApi, token: str) -> None:
    body = azure_metrics("nope", [])
    body["value"][0].update(errorCode="MetricNotFound", errorMessage="no metric 'nope'")
    fake.answer(body)
    reading = await azure(fake.tls_url, token, latency_ms="nope").collect([AZURE], NOW)
    assert reading.errors == ["metric 'nope' (site azure, latency_ms): MetricNotFound: no metric 'nope'"]


async def test_azure_unknown_aggregation_is_an_error_without_a_request(fake: FakeApi, token: str) -> None:
    reading = await azure(fake.tls_url, token, latency_ms="m:Median").collect([AZURE], NOW)
    assert "aggregation 'Median' is not one of" in reading.errors[0]
    assert fake.seen == []


async def test_azure_without_a_token_is_an_error_without_a_request(fake: FakeApi) -> None:
    """ARM takes no request without a bearer token: a source with neither ``token_ref`` nor a
    credential chain says so instead of asking."""
    reading = await azure(fake.tls_url, None, latency_ms="m").collect([AZURE], NOW)
    assert reading.errors == ["token: none (token_ref is not set and credential is 'token')"]
    assert fake.seen == []


async def test_azure_never_sends_a_token_over_plain_http(fake: FakeApi, token: str) -> None:
    reading = await azure(fake.url, token, latency_ms="m").collect([AZURE], NOW)
    [error] = errors_of(reading)
    assert "non-TLS" in error or "https" in error.lower(), error
    assert fake.seen == []


# --------------------------------------------------------------------------- gcp monitoring


@pytest.fixture
def monitoring() -> Iterator[FakeCloudMonitoring]:
    """The fake Cloud Monitoring API, taking the fixed token only."""
    api = FakeCloudMonitoring(accept=lambda token: token == TOKEN)
    api.start()
    yield api
    api.stop()


def gcp(url: str, token_ref: str | None, timeout_s: float = 0.5, **queries: str) -> GcpMonitoringDriver:
    return GcpMonitoringDriver(
        SignalSource(
            driver=SignalsKind.GCP_MONITORING,
            url=url,
            queries={SignalName(k): v for k, v in queries.items()},
            resources={"gcp": "dr-project-1"},
            token_ref=token_ref,
            timeout_s=timeout_s,
        )
    )


def gcp_series(*points: tuple[datetime, dict[str, Any]], series: int = 1) -> ListTimeSeriesResponse:
    """A ListTimeSeries answer: points newest first, as the API sends them."""
    return ListTimeSeriesResponse(
        time_series=[
            {
                "metric": {"type": "custom.googleapis.com/lag", "labels": {"site": "gcp"}},
                "resource": {"type": "global", "labels": {"project_id": "dr-project-1"}},
                "metric_kind": "GAUGE",
                "value_type": "DOUBLE",
                "points": [{"interval": {"end_time": end}, "value": value} for end, value in points],
            }
            for _ in range(series)
        ],
        unit="s",
    )


async def test_gcp_reads_newest_point(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(
        gcp_series(
            (datetime(2026, 11, 26, 2, 59, 30, 123456, tzinfo=UTC), {"int64_value": 12}),
            (datetime(2026, 11, 26, 2, 58, 30, tzinfo=UTC), {"double_value": 2.5}),
        )
    )
    query = 'custom.googleapis.com/lag | metric.labels.site = "{site}" AND metric.labels.cloud = "{cloud}"'
    reading = await gcp(monitoring.url, token, lag_seconds=query).collect([ONPREM, GCP], NOW)

    assert errors_of(reading) == []
    assert reading.values == {
        "gcp": {
            SignalName.LAG_SECONDS: Signal(
                value=12.0,
                source="gcp_monitoring",
                observed_at=datetime(2026, 11, 26, 2, 59, 30, 123456, tzinfo=UTC),
            )
        }
    }
    [call] = monitoring.seen
    assert call.request.name == "projects/dr-project-1"
    assert call.metadata["authorization"] == f"Bearer {TOKEN}"
    assert call.request.filter == (
        'metric.type = "custom.googleapis.com/lag" AND '
        '(metric.labels.site = "gcp" AND metric.labels.cloud = "gcp")'
    )
    assert call.request.interval.start_time == datetime(2026, 11, 26, 2, 50, tzinfo=UTC)
    assert call.request.interval.end_time == NOW


async def test_gcp_bare_metric_type_and_bool_value(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(gcp_series((NOW - timedelta(minutes=1), {"bool_value": True})))
    reading = await gcp(monitoring.url, token, standby_up="custom.googleapis.com/up").collect([GCP], NOW)
    assert reading.values["gcp"][SignalName.STANDBY_UP].value == 1.0
    assert monitoring.seen[0].request.filter == 'metric.type = "custom.googleapis.com/up"'


async def test_gcp_empty_answer_leaves_signal_missing(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(ListTimeSeriesResponse(unit="s"))
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert reading.values == {}
    assert reading.errors == [
        "metric 'custom.googleapis.com/lag' (site gcp, project dr-project-1, lag_seconds): "
        "no point in the last 10 min"
    ]


async def test_gcp_several_series_is_an_error(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(gcp_series((NOW, {"double_value": 1}), series=2))
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert "2 time series, expected one" in reading.errors[0]


async def test_gcp_more_than_a_page_is_an_error(monitoring: FakeCloudMonitoring, token: str) -> None:
    answer = gcp_series((NOW, {"double_value": 1}))
    answer.next_page_token = "page-2"
    monitoring.answer(answer)
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert "more than one page of time series" in reading.errors[0]
    assert len(monitoring.seen) == 1, "the next page is not asked for"


async def test_gcp_distribution_value_is_an_error(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(gcp_series((NOW, {"distribution_value": {"count": 3}})))
    reading = await gcp(monitoring.url, token, latency_ms="custom.googleapis.com/latency").collect([GCP], NOW)
    assert "unsupported value type 'distribution_value'" in reading.errors[0]


async def test_gcp_status_error_names_code_and_message(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.refuse(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied")
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert errors_of(reading) == [
        "metric 'custom.googleapis.com/lag' (site gcp, project dr-project-1, lag_seconds): "
        "PERMISSION_DENIED: Permission monitoring.timeSeries.list denied"
    ]


async def test_gcp_refused_token_is_unauthenticated(monitoring: FakeCloudMonitoring) -> None:
    os.environ["HYBRIDOPS_TEST_GCP_OTHER_TOKEN"] = "not-the-token-777"
    try:
        reading = await gcp(
            monitoring.url, "env:HYBRIDOPS_TEST_GCP_OTHER_TOKEN", lag_seconds="custom.googleapis.com/lag"
        ).collect([GCP], NOW)
    finally:
        del os.environ["HYBRIDOPS_TEST_GCP_OTHER_TOKEN"]
    [error] = reading.errors
    assert error.endswith("UNAUTHENTICATED: Request had invalid authentication credentials.")
    assert "not-the-token-777" not in error


async def test_gcp_undecodable_answer_is_an_error(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.answer(b"\xff\xff\xff not a protobuf")
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    [error] = errors_of(reading)
    assert "INTERNAL" in error and "deserializ" in error.lower(), error


async def test_gcp_timeout(monitoring: FakeCloudMonitoring, token: str) -> None:
    monitoring.hang()
    loop = asyncio.get_running_loop()
    started = loop.time()
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert errors_of(reading)[0].endswith("no answer within 0.5 s")
    assert loop.time() - started < 3
    assert monitoring.seen, "the call reached the server"


async def test_gcp_connection_refused(refused_port: int, token: str) -> None:
    driver = gcp(f"http://127.0.0.1:{refused_port}", token, lag_seconds="custom.googleapis.com/lag")
    [error] = errors_of(await driver.collect([GCP], NOW))
    assert "UNAVAILABLE" in error and f"127.0.0.1:{refused_port}" in error and "Connection refused" in error


async def test_gcp_echoed_token_is_redacted(monitoring: FakeCloudMonitoring, token: str) -> None:
    """A server that puts the authorization metadata in its error does not leak the token."""

    def handler(request: ListTimeSeriesRequest, call: Call) -> ListTimeSeriesResponse:
        raise Refuse(grpc.StatusCode.PERMISSION_DENIED, f"bad credentials: {call.metadata['authorization']}")

    monitoring.handler = handler
    reading = await gcp(monitoring.url, token, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert errors_of(reading)[0].endswith("PERMISSION_DENIED: bad credentials: Bearer ***")


async def test_gcp_without_a_token_is_an_error_without_a_call(monitoring: FakeCloudMonitoring) -> None:
    reading = await gcp(monitoring.url, None, lag_seconds="custom.googleapis.com/lag").collect([GCP], NOW)
    assert reading.errors == ["token: none (token_ref is not set and credential is 'token')"]
    assert monitoring.seen == []


# --------------------------------------------------------------------------- failures, HTTP drivers

DriverFactory = Callable[[FakeApi | int, str | None], SignalsDriver]


def _at(where: FakeApi | int, tls: bool) -> str:
    """The fake's URL (its HTTPS one for ARM), or the refusing port's."""
    if isinstance(where, int):
        return f"{'https' if tls else 'http'}://127.0.0.1:{where}"
    return where.tls_url if tls else where.url


DRIVERS: dict[str, tuple[DriverFactory, SiteRef, dict[str, Any]]] = {
    "prometheus": (
        lambda where, ref: prometheus(_at(where, False), ref, lag_seconds=LAG_Q),
        AZURE,
        {"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"},
    ),
    "azure_monitor": (
        lambda where, ref: azure(_at(where, True), ref, lag_seconds="lag"),
        AZURE,
        {"error": {"code": "AuthorizationFailed", "message": "client has no access"}},
    ),
}
API_ERROR = {
    "prometheus": "HTTP 422: execution: many-to-many matching not allowed",
    "azure_monitor": "HTTP 422: AuthorizationFailed: client has no access",
}


async def failing_reading(kind: str, where: FakeApi | int, token_ref: str) -> tuple[SourceReading, SiteRef]:
    factory, target, _ = DRIVERS[kind]
    reading = await factory(where, token_ref).collect([target], NOW)
    assert reading.values == {}
    errors_of(reading)
    assert len(reading.errors) == 1, reading.errors
    return reading, target


@pytest.mark.parametrize("kind", DRIVERS)
async def test_api_error_body(kind: str, fake: FakeApi, token: str) -> None:
    fake.answer(DRIVERS[kind][2], status=422)
    reading, target = await failing_reading(kind, fake, token)
    assert reading.errors[0].endswith(API_ERROR[kind])
    assert f"site {target.name}" in reading.errors[0]


@pytest.mark.parametrize("kind", DRIVERS)
async def test_http_500(kind: str, fake: FakeApi, token: str) -> None:
    fake.answer(b"upstream exploded\n", status=500)
    reading, _ = await failing_reading(kind, fake, token)
    assert reading.errors[0].endswith("HTTP 500: 'upstream exploded'")
    if kind == "azure_monitor":
        assert len(fake.seen) == 1, "azure-core retries nothing within a collection"


@pytest.mark.parametrize("kind", DRIVERS)
async def test_malformed_json(kind: str, fake: FakeApi, token: str) -> None:
    fake.answer(b'{"status": "success", "data": {')
    reading, _ = await failing_reading(kind, fake, token)
    assert "answer is not JSON" in reading.errors[0]


@pytest.mark.parametrize("kind", DRIVERS)
async def test_json_of_the_wrong_shape(kind: str, fake: FakeApi, token: str) -> None:
    fake.answer({"data": [1, 2], "value": {"x": 1}, "timeSeries": [{"points": [{"interval": 3}]}]})
    reading, _ = await failing_reading(kind, fake, token)
    assert reading.errors[0]


@pytest.mark.parametrize("kind", DRIVERS)
async def test_timeout(kind: str, fake: FakeApi, token: str) -> None:
    fake.hang()
    loop = asyncio.get_running_loop()
    started = loop.time()
    reading, _ = await failing_reading(kind, fake, token)
    assert reading.errors[0].endswith("no answer within 0.5 s")
    assert loop.time() - started < 3
    assert fake.seen, "the request reached the server"


@pytest.mark.parametrize("kind", DRIVERS)
async def test_connection_refused(kind: str, refused_port: int, token: str) -> None:
    reading, _ = await failing_reading(kind, refused_port, token)
    assert reading.errors[0].endswith(f"cannot connect to 127.0.0.1:{refused_port}: Connection refused")


@pytest.mark.parametrize("kind", DRIVERS)
async def test_echoed_token_is_redacted(kind: str, fake: FakeApi, token: str) -> None:
    """A server that puts the Authorization header in its error page does not leak it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"bad credentials: {request.headers['Authorization']}", status=401)

    fake.handler = handler
    reading, _ = await failing_reading(kind, fake, token)
    assert "HTTP 401: 'bad credentials: Bearer ***'" in reading.errors[0]


UNRESOLVED = "env:HYBRIDOPS_TEST_NO_SUCH_VAR"


@pytest.mark.parametrize("kind", [*DRIVERS, "gcp_monitoring"])
async def test_unresolvable_token_is_an_error_line(
    kind: str, fake: FakeApi, monitoring: FakeCloudMonitoring
) -> None:
    if kind == "gcp_monitoring":
        driver: SignalsDriver = gcp(monitoring.url, UNRESOLVED, lag_seconds="custom.googleapis.com/lag")
        target = GCP
    else:
        driver, target = DRIVERS[kind][0](fake, UNRESOLVED), DRIVERS[kind][1]
    reading = await driver.collect([target], NOW)
    assert reading.values == {}
    assert reading.errors == [
        "token: secret reference 'env:HYBRIDOPS_TEST_NO_SUCH_VAR': environment variable "
        "HYBRIDOPS_TEST_NO_SUCH_VAR is not set"
    ]
    assert fake.seen == [] and monitoring.seen == []


# --------------------------------------------------------------------------- registry and merge


class FixedDriver(SignalsDriver):
    """An in-memory driver: returns what it is given."""

    def __init__(self, name: str, reading: SourceReading | None = None, fail: bool = False) -> None:
        super().__init__(SignalSource(driver=SignalsKind.PROMETHEUS, url="http://unused", timeout_s=0.2))
        self.name = name
        self.reading = reading or SourceReading()
        self.fail = fail
        self.asked: list[tuple[list[SiteRef], datetime]] = []

    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        self.asked.append((targets, now))
        if self.fail:
            raise RuntimeError("driver bug")
        return self.reading


class HangingDriver(FixedDriver):
    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def sig(value: float, source: str, age_s: float = 5) -> Signal:
    return Signal(value=value, source=source, observed_at=NOW - timedelta(seconds=age_s))


async def test_merge_precedence_static_and_order() -> None:
    first = FixedDriver(
        "prometheus",
        SourceReading(
            values={
                "azure": {
                    SignalName.SLO_SCORE: sig(0.99, "prometheus"),
                    SignalName.LAG_SECONDS: sig(1, "prometheus"),
                },
                "elsewhere": {SignalName.LAG_SECONDS: sig(9, "prometheus")},
            },
            errors=["query 'x' (site gcp, lag_seconds): returned nothing"],
        ),
    )
    second = FixedDriver(
        "azure_monitor",
        SourceReading(
            values={
                "azure": {
                    SignalName.LAG_SECONDS: sig(2, "azure_monitor"),
                    SignalName.CAPACITY: sig(4, "azure_monitor"),
                }
            },
            errors=["metric 'm' (site azure, latency_ms): HTTP 500: 'x'"],
        ),
    )
    static = {
        "azure": {SignalName.HOURLY_COST: 3.5, SignalName.CAPACITY: 100.0},
        "onprem": {SignalName.HOURLY_COST: 0.0},
        "unknown-site": {SignalName.CREDITS: 1.0},
    }
    snapshot = await collect_signals([first, second], static, [ONPREM, AZURE, GCP], NOW)

    assert first.asked == [([ONPREM, AZURE, GCP], NOW)] and len(second.asked) == 1
    assert snapshot.taken_at == NOW
    assert [(c.site, c.cloud) for c in snapshot.candidates] == [
        ("onprem", None),
        ("azure", Cloud.AZURE),
        ("gcp", Cloud.GCP),
    ]
    onprem, azure_, gcp_ = snapshot.candidates
    assert onprem.values == {SignalName.HOURLY_COST: Signal(value=0.0, source="static", observed_at=None)}
    assert azure_.values == {
        SignalName.LAG_SECONDS: sig(1, "prometheus"),  # the first source wins
        SignalName.CAPACITY: sig(4, "azure_monitor"),  # live beats static
        SignalName.HOURLY_COST: Signal(value=3.5, source="static"),
        SignalName.SLO_SCORE: sig(0.99, "prometheus"),
    }
    assert list(azure_.values) == [n for n in SignalName if n in azure_.values]
    assert gcp_.values == {}
    assert snapshot.errors == [
        "prometheus: query 'x' (site gcp, lag_seconds): returned nothing",
        "azure_monitor: metric 'm' (site azure, latency_ms): HTTP 500: 'x'",
    ]
    # The snapshot goes into histories: it must survive a JSON round trip unchanged.
    assert type(snapshot).model_validate(json.loads(snapshot.model_dump_json())) == snapshot


async def test_merge_survives_a_raising_and_a_hanging_driver() -> None:
    good = FixedDriver("gcp_monitoring", SourceReading(values={"gcp": {SignalName.CAPACITY: sig(3, "g")}}))
    snapshot = await collect_signals(
        [FixedDriver("prometheus", fail=True), HangingDriver("azure_monitor"), good], {}, [GCP], NOW
    )
    assert snapshot.candidates[0].values == {SignalName.CAPACITY: sig(3, "g")}
    assert snapshot.errors == [
        "prometheus: failed: RuntimeError: driver bug",
        "azure_monitor: no reading within 1.4 s",
    ]


async def test_no_sources_gives_static_values_only() -> None:
    snapshot = await collect_signals([], {"gcp": {SignalName.CREDITS: 50.0}}, [AZURE, GCP], NOW)
    assert [c.values for c in snapshot.candidates] == [
        {},
        {SignalName.CREDITS: Signal(value=50.0, source="static")},
    ]
    assert snapshot.errors == []


def test_make_signal_drivers_in_inventory_order() -> None:
    settings = SignalsSettings.model_validate(
        {
            "sources": [
                {"driver": "gcp_monitoring", "url": "https://monitoring.googleapis.com"},
                {"driver": "prometheus", "url": "http://prometheus:9090"},
                {"driver": "azure_monitor", "url": "https://management.azure.com"},
            ]
        }
    )
    drivers = make_signal_drivers(settings)
    assert [type(d) for d in drivers] == [GcpMonitoringDriver, PrometheusDriver, AzureMonitorDriver]
    assert [d.name for d in drivers] == ["gcp_monitoring", "prometheus", "azure_monitor"]
    assert [d.source for d in drivers] == settings.sources
    assert {k.value for k in SignalsKind} == {d.name for d in drivers}, "every driver kind has a driver"


# --------------------------------------------------------------------------- a real Prometheus

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class PerQueryDriver(PrometheusDriver):
    """The Prometheus driver with its combined query refused: one query (and its
    ``timestamp()``) per pair, to compare the two ways against one server."""

    async def _read_all(self, http: HttpSource, queries: list[str], at: str) -> list[Signal | str]:
        raise SourceError("refused by the test")


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The method of every request the signal drivers' HTTP sessions send from now on in the
    test, in order."""
    sent: list[str] = []
    send = HttpSource._json

    async def counted(self: HttpSource, method: str, url: str, **request: Any) -> Any:
        sent.append(method)
        return await send(self, method, url, **request)

    monkeypatch.setattr(HttpSource, "_json", counted)
    return sent


async def _poll(check: Callable[[], Awaitable[bool]], deadline_s: float, what: str, log: Path) -> None:
    """Call ``check`` until it is true, or fail after ``deadline_s`` showing Prometheus' log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not await check():
        if loop.time() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{what} not within {deadline_s} s; prometheus log:\n{tail}")
        await asyncio.sleep(0.1)


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason="prometheus is not installed")
async def test_prometheus_driver_against_a_real_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny exporter: what Prometheus scrapes.
    async def metrics(request: web.Request) -> web.Response:
        text = "# TYPE hybridops_test_lag_seconds gauge\nhybridops_test_lag_seconds 4.5\n"
        return web.Response(text=text, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    exporter = "{}:{}".format(*runner.addresses[0][:2])

    workdir = Path(tempfile.mkdtemp(prefix="hybridops-prom-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: hybridops-signals\n    static_configs:\n"
        f"      - targets: ['{exporter}']\n        labels: {{site: azure, cloud: azure}}\n"
    )
    log = workdir / "prometheus.log"
    proc: asyncio.subprocess.Process | None = None
    try:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                stdout=out,
                stderr=out,
            )
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def ready() -> bool:
                assert proc is not None and proc.returncode is None, "prometheus exited"
                try:
                    async with http.get(f"{url}/-/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            async def scraped() -> bool:
                params = {"query": 'hybridops_test_lag_seconds{site="azure"}'}
                async with http.get(f"{url}/api/v1/query", params=params) as resp:
                    return bool((await resp.json())["data"]["result"])

            await _poll(ready, 30, "/-/ready", log)
            await _poll(scraped, 30, "the exporter's series", log)

        def source(**queries: str) -> SignalSource:
            return SignalSource(
                driver=SignalsKind.PROMETHEUS, url=url, queries={SignalName(k): v for k, v in queries.items()}
            )

        driver = PrometheusDriver(
            source(
                lag_seconds='hybridops_test_lag_seconds{site="{site}"}',
                standby_up='up{job="hybridops-signals",cloud="{cloud}"}',
            )
        )
        sent = count_requests(monkeypatch)
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what the query's time says
        reading = await driver.collect([AZURE, GCP], now)
        assert sent == ["POST"], ("one request for the collection", reading)

        lag = reading.values["azure"][SignalName.LAG_SECONDS]
        assert (lag.value, lag.source) == (4.5, "prometheus")
        assert lag.observed_at is not None and now - timedelta(seconds=5) < lag.observed_at <= now
        assert reading.values["azure"][SignalName.STANDBY_UP].value == 1.0
        assert "gcp" not in reading.values
        assert sorted(reading.errors) == [
            "query 'hybridops_test_lag_seconds{site=\"gcp\"}' (site gcp, lag_seconds): returned nothing",
            'query \'up{job="hybridops-signals",cloud="gcp"}\' (site gcp, standby_up): returned nothing',
        ]

        # Evaluated in the future, a sample still carries its scrape time, not the evaluation's:
        # that is what makes staleness real.
        later = datetime.now(UTC) + timedelta(seconds=30)
        lag_later = (await driver.collect([AZURE], later)).values["azure"][SignalName.LAG_SECONDS]
        assert lag_later.observed_at is not None and lag_later.observed_at < later - timedelta(seconds=25)

        # One query each gives the same values and times, evaluated at the same time (a second
        # on: by then every sample scraped before it is stored).
        await asyncio.sleep(1)
        sent.clear()
        combined = await driver.collect([AZURE, GCP], now)
        assert sent == ["POST"]
        assert await PerQueryDriver(driver.source).collect([AZURE, GCP], now) == combined
        assert sent == ["POST"] + ["GET"] * 8
        assert combined.values["azure"][SignalName.LAG_SECONDS] == lag

        # What Prometheus will not combine, read one query each: a scalar (label_replace takes
        # none; nor does timestamp(), so the evaluation time stands), and a selector of two
        # metrics with one label set once timestamp() drops their names.
        scalar = PrometheusDriver(source(lag_seconds='scalar(hybridops_test_lag_seconds{site="{site}"})'))
        sent.clear()
        assert await scalar.collect([AZURE], now) == SourceReading(
            values={
                "azure": {SignalName.LAG_SECONDS: Signal(value=4.5, source="prometheus", observed_at=now)}
            }
        )
        assert sent == ["POST", "GET", "GET"]
        two = '{__name__=~"hybridops_test_lag_seconds|up",site="{site}"}'
        sent.clear()
        assert (await PrometheusDriver(source(standby_up=two)).collect([AZURE], now)).errors == [
            f"query {two.replace('{site}', 'azure')!r} (site azure, standby_up): 2 series, expected one "
            "(aggregate them)"
        ]
        assert sent == ["POST", "GET", "GET"]
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
