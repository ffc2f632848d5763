"""The azuredns driver: the real ``azure-mgmt-dns`` client and ``ClientSecretCredential``
(azure-identity, MSAL) against a fake ARM and Entra ID token endpoint over HTTPS
(tests/fakes/azuredns.py), which check the grant, the bearer token, the api-version, the paths
and the etag conditions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.dns import make_dns_driver
from drivers.dns.azuredns import AzureDnsDriver
from hybridops.capabilities import Capability
from hybridops.errors import CapabilityMissing, DnsAuthError, DnsError, DnsZoneNotFound
from hybridops.inventory import DnsSettings
from tests.fakes.azuredns import FakeAzure

RECORD = "db.corp.example.com"
SECRET_ENV = "HYBRIDOPS_TEST_AZURE_SECRET"
SECRET = "s3cret-client-secret-value"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    server = FakeAzure("tenant-1", "client-1", SECRET, "sub-1", "rg-dns", "corp.example.com")
    server.start(tmp_path)
    # requests (under azure-core and MSAL) trusts the fake's certificate through this.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    yield server
    server.stop()


def driver(fake: FakeAzure, **changes: object) -> AzureDnsDriver:
    settings = DnsSettings.model_validate(
        {
            "driver": "azuredns",
            "zone": "corp.example.com",
            "record": RECORD,
            "subscription_id": "sub-1",
            "resource_group": "rg-dns",
            "tenant_id": "tenant-1",
            "client_id": "client-1",
            "credentials_ref": f"env:{SECRET_ENV}",
            "authority_host": fake.host,
            "endpoint_url": f"https://{fake.host}",
            **changes,
        }
    )
    d = make_dns_driver(settings)
    assert isinstance(d, AzureDnsDriver)
    return d


async def test_create_then_replace_on_the_etag_idempotently(fake: FakeAzure) -> None:
    d = driver(fake)
    assert d.get_record_sync(RECORD) is None
    first = await d.ensure_record(RECORD, "A", ["10.0.0.1"], 30)
    assert first.changed and first.previous is None
    etag = fake.record_sets[("A", "db")]["etag"]
    second = await d.ensure_record(RECORD, "A", ["10.0.0.2"], 30)
    assert second.changed and second.previous is not None and second.previous.values == ("10.0.0.1",)
    assert fake.record_sets[("A", "db")]["etag"] != etag
    puts = [r for r in fake.requests if r.startswith("PUT")]
    assert not (await d.ensure_record(RECORD, "A", ["10.0.0.2"], 30)).changed
    assert [r for r in fake.requests if r.startswith("PUT")] == puts
    assert any(r.endswith("/oauth2/v2.0/token") for r in fake.requests)


async def test_a_concurrent_edit_fails_the_etag_condition(fake: FakeAzure) -> None:
    d = driver(fake)
    await d.ensure_record(RECORD, "A", ["10.0.0.1"], 30)
    real = d._get_sync
    calls: list[str] = []

    def stale(name: str, type: str):  # type: ignore[no-untyped-def]
        got = real(name, type)
        calls.append(name)
        if len(calls) == 2:  # the read for the etag: someone changes the set right after it
            fake.record_sets[("A", "db")]["etag"] = "changed-by-someone"
        return got

    d._get_sync = stale  # type: ignore[method-assign]
    with pytest.raises(DnsError) as err:
        await d.ensure_record(RECORD, "A", ["10.0.0.9"], 30)
    assert err.value.retryable and "412" in str(err.value)
    assert fake.record_sets[("A", "db")]["properties"]["ARecords"] == [{"ipv4Address": "10.0.0.1"}]


async def test_a_token_that_expires_mid_run_is_fetched_again(fake: FakeAzure) -> None:
    """Tokens that live one second: the fake refuses one past its expiry, and the run goes on
    because azure-core's policy asks azure-identity for a new token once it expired."""
    fake.expires_in = 1
    d = driver(fake)
    await d.ensure_record(RECORD, "A", ["10.0.0.1"], 30)
    issued = len(fake.tokens)
    await asyncio.sleep(1.2)  # the token's life, not a wait for a condition
    await d.ensure_record(RECORD, "A", ["10.0.0.2"], 30)
    assert fake.record_sets[("A", "db")]["properties"]["ARecords"] == [{"ipv4Address": "10.0.0.2"}]
    assert len(fake.tokens) > issued, fake.tokens


async def test_a_revoked_token_is_a_named_auth_error(fake: FakeAzure) -> None:
    """A token the service stops taking before its expiry (revoked): ARM's 401 is an auth
    error, fatal, naming ARM's code, never a silent retry loop."""
    fake.token_requests = 1
    d = driver(fake)
    d.get_record_sync(RECORD)
    with pytest.raises(DnsAuthError) as err:
        d.get_record_sync(RECORD)
    assert "401" in str(err.value) and not err.value.retryable


def test_a_wrong_secret_is_an_auth_error_without_the_secret(
    fake: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "wrong-secret-value-123")
    with pytest.raises(DnsAuthError) as err:
        driver(fake).get_record_sync(RECORD)
    assert not err.value.retryable
    assert "wrong-secret-value-123" not in str(err.value) and SECRET not in str(err.value)


async def test_a_missing_zone_and_no_weighted_records(fake: FakeAzure) -> None:
    fake.zone_exists = False
    d = driver(fake)
    with pytest.raises(DnsZoneNotFound):
        d.get_record_sync(RECORD)
    assert await d.ensure_zone() is True and await d.ensure_zone() is False
    assert Capability.WEIGHTED not in d.capabilities
    with pytest.raises(CapabilityMissing) as missing:
        await d.get_weights("app.corp.example.com")
    assert missing.value.ids == {"driver": "AzureDnsDriver", "capability": "weighted"}


async def test_a_probe_gets_the_zone_and_names_a_refusal(
    fake: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zones Get: the zone's resource id back; a wrong secret a fatal auth error without it;
    a missing zone a missing zone."""
    probe = await driver(fake).probe(RECORD)
    assert probe.zone_id.endswith("/dnsZones/corp.example.com"), probe
    fake.zone_exists = False
    with pytest.raises(DnsZoneNotFound):
        await driver(fake).probe(RECORD)
    monkeypatch.setenv(SECRET_ENV, "wrong-secret-value-123")
    with pytest.raises(DnsAuthError) as err:
        await driver(fake).probe(RECORD)
    assert not err.value.retryable and "wrong-secret-value-123" not in str(err.value)


async def test_an_unreachable_token_endpoint_is_retryable_not_an_auth_error(fake: FakeAzure) -> None:
    """azure-identity reports a token endpoint that does not answer as an authentication
    error; nothing refused the client, so the driver makes it a retryable DnsError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(DnsError) as err:
        await driver(fake, authority_host=f"127.0.0.1:{dead}").probe(RECORD)
    assert type(err.value) is DnsError and err.value.retryable, err.value
    assert "token endpoint could not be reached" in str(err.value) and SECRET not in str(err.value)
