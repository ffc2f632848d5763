"""The rfc2136 driver's settings: checked when the inventory loads, and a malformed TSIG secret
named by its reference, never shown; its probe (a TSIG-signed SOA query) against a small
dnspython server that checks the signature as BIND does. (The driver itself runs against the
lab's real BIND in tests/lab/test_bind.py.)"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import dns.tsig
import pytest
from pydantic import ValidationError

from drivers.dns import make_dns_driver
from drivers.dns.rfc2136 import Rfc2136Driver
from hybridops.capabilities import Capability
from hybridops.errors import ConfigError, DnsAuthError, DnsError
from hybridops.inventory import DnsKind, DnsSettings

BASE = {"driver": "rfc2136", "zone": "corp.example.com", "record": "db.corp.example.com"}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({}, "dns.server"),
        ({"server": "10.0.0.53", "tsig_key": "k"}, "dns.tsig_key"),
        ({"server": "10.0.0.53", "credentials_ref": "env:X"}, "dns.tsig_key"),
    ],
)
def test_settings_name_the_key_that_is_wrong(changes: dict[str, str], key: str) -> None:
    with pytest.raises(ValidationError) as err:
        DnsSettings.model_validate({**BASE, **changes})
    assert key in str(err.value)


def test_a_secret_that_is_not_base64_is_named_by_its_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "not base64 but secret!!"
    monkeypatch.setenv("HYBRIDOPS_TEST_TSIG", secret)
    settings = DnsSettings.model_validate(
        {**BASE, "server": "10.0.0.53", "tsig_key": "k", "credentials_ref": "env:HYBRIDOPS_TEST_TSIG"}
    )
    with pytest.raises(ConfigError) as err:
        make_dns_driver(settings)
    assert "env:HYBRIDOPS_TEST_TSIG" in str(err.value) and secret not in str(err.value)


def test_the_registry_has_it_and_it_declares_no_weighted_records() -> None:
    settings = DnsSettings.model_validate({**BASE, "server": "10.0.0.53"})
    assert settings.driver == DnsKind.RFC2136
    driver = make_dns_driver(settings)
    assert isinstance(driver, Rfc2136Driver)
    assert Capability.WEIGHTED not in driver.capabilities


KEY = dns.tsig.Key("hybridops.", base64.b64encode(b"k" * 32).decode(), "hmac-sha256")


@pytest.fixture
def server() -> Iterator[int]:
    """An authoritative server for corp.example.com on loopback UDP that takes only queries
    signed with :data:`KEY`: another key or secret gets NOTAUTH with the TSIG error BIND sends
    (BADKEY, BADSIG). Its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                query = dns.message.from_wire(wire, keyring={KEY.name: KEY})
                response = dns.message.make_response(query)
                response.flags |= dns.flags.AA
                response.answer.append(
                    dns.rrset.from_text("corp.example.com.", 60, "IN", "SOA", "ns. admin. 42 60 60 600 60")
                )
            except (dns.tsig.BadSignature, dns.message.UnknownTSIGKey) as err:
                query = dns.message.from_wire(wire, keyring=False)
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.NOTAUTH)
                bad = dns.rcode.BADSIG if isinstance(err, dns.tsig.BadSignature) else dns.rcode.BADKEY
                response.use_tsig(dns.tsig.Key(query.keyname, b"", query.keyalgorithm), tsig_error=bad)
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join()
    sock.close()


def probing(
    port: int, secret: bytes, monkeypatch: pytest.MonkeyPatch, key: str = "hybridops."
) -> Rfc2136Driver:
    monkeypatch.setenv("HYBRIDOPS_TEST_TSIG", base64.b64encode(secret).decode())
    settings = DnsSettings.model_validate(
        {
            **BASE,
            "server": "127.0.0.1",
            "port": port,
            "tsig_key": key,
            "tsig_algorithm": "hmac-sha256",
            "credentials_ref": "env:HYBRIDOPS_TEST_TSIG",
            "timeout_s": 0.5,
        }
    )
    driver = make_dns_driver(settings)
    assert isinstance(driver, Rfc2136Driver)
    return driver


async def test_a_probe_is_a_signed_soa_query(server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = await probing(server, b"k" * 32, monkeypatch).probe("db.corp.example.com")
    assert probe.serial == 42 and probe.zone_id == f"127.0.0.1:{server}" and "TSIG-signed" in probe.detail


@pytest.mark.parametrize(("secret", "key"), [(b"x" * 32, "hybridops."), (b"k" * 32, "other.")])
async def test_a_wrong_key_or_secret_is_an_auth_error_without_it(
    server: int, monkeypatch: pytest.MonkeyPatch, secret: bytes, key: str
) -> None:
    with pytest.raises(DnsAuthError) as err:
        await probing(server, secret, monkeypatch, key).probe("db.corp.example.com")
    assert not err.value.retryable and "TSIG" in str(err.value)
    assert base64.b64encode(secret).decode() not in str(err.value)


async def test_a_server_that_does_not_answer_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: the query times out
        with pytest.raises(DnsError) as err:
            await probing(silent.getsockname()[1], b"k" * 32, monkeypatch).probe("db.corp.example.com")
    assert err.value.retryable and "127.0.0.1" in str(err.value)
