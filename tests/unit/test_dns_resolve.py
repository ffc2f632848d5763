"""The client-side resolution verify and the writer use (drivers/dns/resolve.py): asked over
the DNS protocol of a real (small, in-process) UDP name server, with and without a client's
cache; how ``auto`` is decided; the inventory's resolvers validated, naming the field."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from pydantic import ValidationError

from drivers.dns.resolve import ClientResolver, ResolveError, resolution
from hybridops.inventory import DnsKind, DnsSettings, Resolution, split_address

NAME = "db.corp.example.com"


class TinyServer:
    """Answers A queries for NAME from ``self.address`` (NXDOMAIN when None), TTL ``ttl``;
    counts the queries it answered."""

    def __init__(self, ttl: int = 300) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address: str | None = "10.0.0.1"
        self.ttl = ttl
        self.queries = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            qname = query.question[0].name.to_text().rstrip(".")
            if qname != NAME or self.address is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.answer.append(dns.rrset.from_text(NAME + ".", self.ttl, "IN", "A", self.address))
            self.queries += 1
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[TinyServer]:
    s = TinyServer()
    yield s
    s.close()


def settings(**kw: object) -> DnsSettings:
    return DnsSettings.model_validate({"zone": "corp.example.com", "record": NAME, **kw})


def test_a_client_resolver_asks_the_named_resolver_over_dns(server: TinyServer) -> None:
    r = ClientResolver(settings(resolvers=[f"127.0.0.1:{server.port}"]))
    assert r.how == f"DNS query to 127.0.0.1:{server.port}"
    assert r.address() == "10.0.0.1"
    server.address = "10.0.0.2"
    assert r.address() == "10.0.0.2", "without a cache, a change is seen at once"
    server.address = None
    assert r.address() is None, "NXDOMAIN is no address, not an error"


def test_the_cache_keeps_an_answer_for_its_ttl_as_a_client_does(server: TinyServer) -> None:
    r = ClientResolver(settings(resolvers=[f"127.0.0.1:{server.port}"]), cache=True)
    assert r.address() == "10.0.0.1"
    server.address = "10.0.0.2"
    assert r.address(connected=False) == "10.0.0.1", "the 300 s TTL has not expired"
    assert server.queries == 1


def test_no_answer_is_a_resolve_error_naming_the_name_and_how() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        r = ClientResolver(settings(resolvers=[f"127.0.0.1:{silent.getsockname()[1]}"]), lifetime_s=0.3)
        with pytest.raises(ResolveError, match=f"cannot resolve {NAME} \\(DNS query to 127.0.0.1:"):
            r.address()
    finally:
        silent.close()


def test_auto_asks_dns_wherever_a_name_server_answers() -> None:
    moto = settings(endpoint_url="http://127.0.0.1:5000")
    assert resolution(moto) == Resolution.API, "a stand-in API serves no DNS"
    assert "API at http://127.0.0.1:5000 (no DNS query)" in ClientResolver(moto).how
    assert resolution(settings(endpoint_url="http://x", resolvers=["10.1.1.1"])) == Resolution.DNS
    assert resolution(settings(endpoint_url="http://x", resolution="dns")) == Resolution.DNS
    assert resolution(settings()) == Resolution.DNS, "a real provider: the host's resolver"
    bind = settings(driver=DnsKind.RFC2136, server="127.0.0.5", port=5353)
    assert ClientResolver(bind).how == "DNS query to 127.0.0.5:5353"


def test_split_address() -> None:
    assert split_address("10.0.0.1") == ("10.0.0.1", 53)
    assert split_address("10.0.0.1:5353") == ("10.0.0.1", 5353)
    assert split_address("[::1]:5353") == ("::1", 5353)
    assert split_address("::1") == ("::1", 53)


@pytest.mark.parametrize("bad", ["dns.example.com", "10.0.0.1:0", "10.0.0.1:x", "[::1]5353"])
def test_a_bad_resolver_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        settings(resolvers=["10.0.0.9", bad])
    assert err.value.errors()[0]["loc"] == ("resolvers",)
    assert repr(bad) in str(err.value)
