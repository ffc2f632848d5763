"""The clouddns driver: the real ``google-cloud-dns`` client and google-auth's service-account
credentials against a fake Cloud DNS API and token endpoint (tests/fakes/clouddns.py), which
check each request: the JWT grant and its signature, the bearer token, the paths, the change's
deletions against the zone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.dns import Record, make_dns_driver
from drivers.dns.clouddns import CloudDnsDriver
from hybridops.capabilities import Capability
from hybridops.errors import DnsAuthError, DnsError, DnsRecordInvalid, DnsZoneNotFound
from hybridops.inventory import DnsSettings
from tests.fakes.clouddns import FakeCloudDns

RECORD = "db.corp.example.com"
KEY_ENV = "HYBRIDOPS_TEST_GCP_SA_KEY"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudDns]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = FakeCloudDns("proj-1", "corp-example-com", "corp.example.com.", key.public_key())
    url = server.start()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sa = {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "hybridops@proj-1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{url}/token",
    }
    monkeypatch.setenv(KEY_ENV, json.dumps(sa))
    server.rrsets[(RECORD + ".", "A")] = {
        "kind": "dns#resourceRecordSet",
        "name": RECORD + ".",
        "type": "A",
        "ttl": 30,
        "rrdatas": ["10.0.0.1"],
    }
    yield server
    server.stop()


def driver(fake: FakeCloudDns, **changes: object) -> CloudDnsDriver:
    settings = DnsSettings.model_validate(
        {
            "driver": "clouddns",
            "zone": "corp.example.com",
            "record": RECORD,
            "managed_zone": "corp-example-com",
            "endpoint_url": fake.url,
            "credentials_ref": f"env:{KEY_ENV}",
            **changes,
        }
    )
    d = make_dns_driver(settings)
    assert isinstance(d, CloudDnsDriver)
    return d


async def test_a_change_deletes_and_adds_in_one_and_waits_until_done(fake: FakeCloudDns) -> None:
    d = driver(fake)
    assert d.get_record_sync(RECORD).values == ("10.0.0.1",)  # type: ignore[union-attr]
    change = await d.ensure_record(RECORD, "A", ["10.0.0.2"], 30)
    assert change.changed and change.current.values == ("10.0.0.2",)
    assert fake.rrsets[(RECORD + ".", "A")]["rrdatas"] == ["10.0.0.2"]
    (one,) = fake.changes.values()
    assert [r["rrdatas"] for r in one["deletions"]] == [["10.0.0.1"]]
    assert one["status"] == "done"  # read again until done
    posts = [r for r in fake.requests if r.startswith("POST /dns/")]
    again = await d.ensure_record(RECORD, "A", ["10.0.0.2"], 30)
    assert not again.changed and [r for r in fake.requests if r.startswith("POST /dns/")] == posts
    assert fake.requests[0] == "POST /token" and len(fake.tokens) == 1
    assert Capability.WEIGHTED not in d.capabilities


async def test_a_token_that_expires_mid_run_is_refreshed(fake: FakeCloudDns) -> None:
    fake.token_requests = 2
    d = driver(fake)
    for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        await d.ensure_record(RECORD, "A", [ip], 30)
    assert fake.rrsets[(RECORD + ".", "A")]["rrdatas"] == ["10.0.0.4"]
    assert len(fake.tokens) >= 3 and fake.requests.count("POST /token") == len(fake.tokens)


def test_a_refused_token_is_an_auth_error_without_the_key(fake: FakeCloudDns) -> None:
    fake.refuse_tokens = True
    with pytest.raises(DnsAuthError) as err:
        driver(fake).get_record_sync(RECORD)
    assert not err.value.retryable and "PRIVATE KEY" not in str(err.value)


def test_a_missing_zone_and_a_concurrent_edit(fake: FakeCloudDns) -> None:
    with pytest.raises(DnsZoneNotFound):
        driver(fake, managed_zone="other-zone").get_record_sync(RECORD)
    d = driver(fake)
    # Someone else changed the record between the read and the change: 412, retryable.
    real = d._rrset

    def stale(name: str, type: str) -> dict[str, object] | None:
        held = real(name, type)
        fake.rrsets[(RECORD + ".", "A")] = {**fake.rrsets[(RECORD + ".", "A")], "rrdatas": ["10.9.9.9"]}
        return held

    d._rrset = stale  # type: ignore[method-assign]
    with pytest.raises(DnsError) as err:
        d._upsert_sync(Record(RECORD, "A", 30, ("10.0.0.5",)))
    assert err.value.retryable and "412" in str(err.value)
    assert fake.rrsets[(RECORD + ".", "A")]["rrdatas"] == ["10.9.9.9"]


async def test_an_invalid_record_and_the_zone_check(fake: FakeCloudDns) -> None:
    d = driver(fake)
    with pytest.raises(DnsRecordInvalid):
        await d.ensure_record("db.elsewhere.example", "A", ["10.0.0.2"], 30)
    assert await d.ensure_zone() is False


async def test_a_probe_gets_the_managed_zone_and_names_a_refusal(fake: FakeCloudDns) -> None:
    """managedZones.get: the zone's id back; another managed zone not found; refused tokens
    a fatal auth error without the key."""
    probe = await driver(fake).probe(RECORD)
    assert probe.zone_id == "1" and "corp-example-com" in probe.detail, probe
    with pytest.raises(DnsZoneNotFound):
        await driver(fake, managed_zone="other-zone").probe(RECORD)
    fake.refuse_tokens = True
    with pytest.raises(DnsAuthError) as err:
        await driver(fake).probe(RECORD)
    assert not err.value.retryable and "PRIVATE KEY" not in str(err.value)
