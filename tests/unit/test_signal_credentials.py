"""Signals on the clouds' credential chains (``credential: azure | google``): the Azure Monitor
and Cloud Monitoring clients (azure-monitor-query, google-cloud-monitoring) get their bearer
tokens from azure-identity and google-auth against fake token endpoints (tests/fakes/azuredns.py's
Entra ID, tests/fakes/clouddns.py's Google OAuth), and the fake APIs (test_signals.py's ARM over
HTTPS, tests/fakes/cloudmonitoring.py's gRPC MetricService) check each request's path or method,
parameters and token, refusing an expired one. Tokens that live one second expire between two
collections: the second gets a new one. A chain that refuses is one named error, before any call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.signals.azure_monitor import AzureMonitorDriver
from drivers.signals.gcp_monitoring import GcpMonitoringDriver
from drivers.signals.http import GOOGLE_MONITORING_SCOPE, forget_credentials
from hybridops.contracts.decision import SignalName
from hybridops.inventory import SignalCredential, SignalsKind, SignalSource
from tests.fakes.azuredns import FakeAzure
from tests.fakes.clouddns import FakeCloudDns
from tests.fakes.cloudmonitoring import FakeCloudMonitoring
from tests.unit.test_signals import (  # noqa: F401  (fake is a fixture)
    AZURE,
    AZURE_RID,
    GCP,
    NOW,
    FakeApi,
    azure_metrics,
    fake,
    gcp_series,
)

SECRET = "signals-client-secret-1"


@pytest.fixture
def entra(fake: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:  # noqa: F811
    login_dir = tmp_path / "entra"
    login_dir.mkdir()
    login = FakeAzure("tenant-1", "client-1", SECRET, "-", "-", "-", expires_in=1)
    host = login.start(login_dir)
    # requests trusts both fakes' self-signed certificates: Entra ID's and ARM's.
    assert fake.ca is not None
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(login.ca.read_bytes() + fake.ca.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    for key, value in {
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_CLIENT_SECRET": SECRET,
        "AZURE_AUTHORITY_HOST": host,
    }.items():
        monkeypatch.setenv(key, value)
    forget_credentials()
    yield login
    forget_credentials()
    login.stop()


def bearer_of(request: web.Request, tokens: dict[str, int], expiry: dict[str, float]) -> str | None:
    """The request's token when the token endpoint issued it and it has not expired."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token in tokens and time.time() <= expiry.get(token, 0):
        return token
    return None


async def test_azure_monitor_on_the_credential_chain_refreshes_an_expired_token(
    fake: FakeApi,  # noqa: F811
    entra: FakeAzure,
) -> None:
    used: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        token = bearer_of(request, entra.tokens, entra.expiry)
        if token is None:
            return web.json_response(
                {"error": {"code": "ExpiredAuthenticationToken", "message": "expired"}}, status=401
            )
        if request.path != f"{AZURE_RID}/providers/Microsoft.Insights/metrics" or not {
            "api-version",
            "metricnames",
            "timespan",
            "interval",
            "aggregation",
        } <= set(request.query):
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "path or query"}}, status=400
            )
        used.append(token)
        data: list[dict[str, Any]] = [{"timeStamp": "2026-11-26T02:58:00Z", "average": 7.0}]
        return web.json_response(azure_metrics(request.query["metricnames"], data))

    fake.handler = handler
    driver = AzureMonitorDriver(
        SignalSource(
            driver=SignalsKind.AZURE_MONITOR,
            url=fake.tls_url,
            queries={SignalName.CAPACITY: "cpu"},
            resources={"azure": AZURE_RID},
            credential=SignalCredential.AZURE,
            timeout_s=5,
        )
    )
    first = await driver.collect([AZURE], NOW)
    assert first.errors == [] and first.values["azure"][SignalName.CAPACITY].value == 7.0
    await asyncio.sleep(1.2)  # the token's life, not a wait for a condition
    second = await driver.collect([AZURE], NOW)
    assert second.errors == [] and len(used) == 2 and used[0] != used[1]


async def test_a_refused_azure_credential_is_a_named_source_error(
    fake: FakeApi,  # noqa: F811
    entra: FakeAzure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret-456")
    fake.answer({})
    driver = AzureMonitorDriver(
        SignalSource(
            driver=SignalsKind.AZURE_MONITOR,
            url=fake.tls_url,
            queries={SignalName.CAPACITY: "cpu"},
            resources={"azure": AZURE_RID},
            credential=SignalCredential.AZURE,
            timeout_s=5,
        )
    )
    reading = await driver.collect([AZURE], NOW)
    assert reading.values == {} and fake.seen == []
    [error] = reading.errors
    assert "azure credential chain" in error and "not-the-secret-456" not in error


@pytest.fixture
def google_oauth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudDns]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oauth = FakeCloudDns("-", "-", "-", key.public_key(), scope=GOOGLE_MONITORING_SCOPE, expires_in=1)
    url = oauth.start()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sa = tmp_path / "sa.json"
    sa.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "dr-project-1",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "signals@dr-project-1.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{url}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    forget_credentials()
    yield oauth
    forget_credentials()
    oauth.stop()


@pytest.fixture
def monitoring(google_oauth: FakeCloudDns) -> Iterator[FakeCloudMonitoring]:
    """The fake Cloud Monitoring API, taking the tokens the fake token endpoint issued until
    they expire."""
    api = FakeCloudMonitoring(
        accept=lambda token: token in google_oauth.tokens and time.time() <= google_oauth.expiry[token]
    )
    api.start()
    yield api
    api.stop()


def cloud_monitoring(url: str) -> GcpMonitoringDriver:
    return GcpMonitoringDriver(
        SignalSource(
            driver=SignalsKind.GCP_MONITORING,
            url=url,
            queries={SignalName.LATENCY_MS: "custom.googleapis.com/lag"},
            resources={"gcp": "dr-project-1"},
            credential=SignalCredential.GOOGLE,
            timeout_s=5,
        )
    )


async def test_cloud_monitoring_on_adc_gets_a_new_token_once_it_expired(
    monitoring: FakeCloudMonitoring, google_oauth: FakeCloudDns
) -> None:
    monitoring.answer(gcp_series((NOW, {"double_value": 2.5})))
    driver = cloud_monitoring(monitoring.url)
    first = await driver.collect([GCP], NOW)
    assert first.errors == [] and first.values["gcp"][SignalName.LATENCY_MS].value == 2.5
    await asyncio.sleep(1.2)  # the token's life, not a wait for a condition
    second = await driver.collect([GCP], NOW)
    assert second.errors == [], second.errors
    used = [call.token for call in monitoring.seen]
    # OAuth tokens from the token endpoint (not self-signed JWTs), a new one once it expired.
    assert len(used) == 2 and used[0] != used[1] and all(t in google_oauth.tokens for t in used)
    assert google_oauth.requests.count("POST /token") >= 2


async def test_a_refused_google_credential_is_a_named_source_error(
    monitoring: FakeCloudMonitoring, google_oauth: FakeCloudDns
) -> None:
    google_oauth.refuse_tokens = True
    monitoring.answer(gcp_series((NOW, {"double_value": 2.5})))
    reading = await cloud_monitoring(monitoring.url).collect([GCP], NOW)
    assert reading.values == {} and monitoring.seen == []
    [error] = reading.errors
    assert error.startswith("token from the google credential chain: RefreshError") and "BEGIN" not in error
