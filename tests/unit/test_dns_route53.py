"""The Route53 driver's error map and its wait for INSYNC, on boto3's own client with its
responses stubbed (botocore's Stubber checks each request's parameters against the API model)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from drivers.dns.route53 import Route53Driver
from hybridops.errors import DnsAuthError, DnsError, DnsZoneNotFound
from hybridops.inventory import DnsSettings

ZONE_ID = "Z123"


def driver() -> tuple[Route53Driver, Stubber]:
    d = Route53Driver(
        DnsSettings(zone="corp.example.com", record="db.corp.example.com", credentials_ref=None)
    )
    return d, Stubber(d._client)


def zones(stub: Stubber) -> None:
    stub.add_response(
        "list_hosted_zones_by_name",
        {
            "HostedZones": [
                {"Id": f"/hostedzone/{ZONE_ID}", "Name": "corp.example.com.", "CallerReference": "x"}
            ],
            "IsTruncated": False,
            "MaxItems": "100",
        },
        {"DNSName": "corp.example.com."},
    )


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidClientTokenId", "SignatureDoesNotMatch"])
def test_an_auth_failure_is_an_auth_error_not_a_missing_zone(code: str) -> None:
    d, stub = driver()
    stub.add_client_error("list_hosted_zones_by_name", service_error_code=code, http_status_code=403)
    with stub, pytest.raises(DnsAuthError) as err:
        d.get_record_sync("db.corp.example.com")
    assert not err.value.retryable and code in str(err.value)


def test_a_missing_zone_is_still_one() -> None:
    d, stub = driver()
    stub.add_response(
        "list_hosted_zones_by_name", {"HostedZones": [], "IsTruncated": False, "MaxItems": "100"}
    )
    with stub, pytest.raises(DnsZoneNotFound):
        d.get_record_sync("db.corp.example.com")


def _change(status: str) -> dict[str, Any]:
    return {"ChangeInfo": {"Id": "/change/C1", "Status": status, "SubmittedAt": "2026-01-01T00:00:00Z"}}


async def test_an_upsert_waits_for_insync_with_boto3s_waiter() -> None:
    """PENDING, then INSYNC on the waiter's next GetChange: done only then."""
    d, stub = driver()
    zones(stub)
    stub.add_response(
        "list_resource_record_sets", {"ResourceRecordSets": [], "IsTruncated": False, "MaxItems": "1"}
    )
    stub.add_response("change_resource_record_sets", _change("PENDING"))
    stub.add_response("get_change", _change("PENDING"), {"Id": "/change/C1"})
    stub.add_response("get_change", _change("INSYNC"), {"Id": "/change/C1"})
    with stub:
        change = await d.ensure_record("db.corp.example.com", "A", ["10.0.0.1"], 5)
        stub.assert_no_pending_responses()
    assert change.changed


def test_a_waiter_that_meets_an_auth_failure_says_so() -> None:
    d, stub = driver()
    stub.add_client_error("get_change", service_error_code="AccessDenied", http_status_code=403)
    with stub, pytest.raises((DnsAuthError, DnsError)) as err:
        d._wait_insync(_change("PENDING"))
    assert isinstance(err.value, DnsAuthError)


async def test_a_probe_reads_the_hosted_zone_with_getHostedZone() -> None:
    """The probe: GetHostedZone on the zone found by name, its id and record count back."""
    d, stub = driver()
    zones(stub)
    stub.add_response(
        "get_hosted_zone",
        {
            "HostedZone": {
                "Id": f"/hostedzone/{ZONE_ID}",
                "Name": "corp.example.com.",
                "CallerReference": "x",
                "ResourceRecordSetCount": 3,
            },
            "DelegationSet": {"NameServers": ["ns-1.example"]},
        },
        {"Id": ZONE_ID},
    )
    with stub:
        probe = await d.probe("db.corp.example.com")
        stub.assert_no_pending_responses()
    assert probe.zone_id == ZONE_ID and "3 record sets" in probe.detail


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("Throttling", 400)])
async def test_a_probe_refused_is_an_auth_error_and_a_throttled_one_retryable(code: str, status: int) -> None:
    d, stub = driver()
    zones(stub)
    stub.add_client_error("get_hosted_zone", service_error_code=code, http_status_code=status)
    with stub, pytest.raises((DnsError, DnsAuthError)) as err:
        await d.probe("db.corp.example.com")
    assert isinstance(err.value, DnsAuthError) == (code == "AccessDenied"), err.value
    assert err.value.retryable == (code != "AccessDenied") and code in str(err.value)


async def test_a_probe_of_a_dead_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens: retryable, naming the endpoint (credentials set, so it is the
    connection that fails, not their absence)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    d = Route53Driver(
        DnsSettings(
            zone="corp.example.com",
            record="db.corp.example.com",
            credentials_ref=None,
            endpoint_url="http://127.0.0.1:9",
        )
    )
    with pytest.raises(DnsError) as err:
        await d.probe("db.corp.example.com")
    assert err.value.retryable and "127.0.0.1:9" in str(err.value), err.value
