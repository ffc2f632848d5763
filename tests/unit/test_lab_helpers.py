"""The lab tests' safety reads (tests/lab/helpers.py, tests/lab/sampler.py) tell a server that is
down from one whose role they cannot read: against a port nobody listens on, and a fake server
at the protocol boundary that answers as PostgreSQL does when it is starting up, when it has too
many clients, when it never answers, and when it is killed mid-query. The real psycopg and libpq
code reads every answer."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest

from hybridops.lab import Lab
from tests.lab.helpers import RoleUnknown, can_write, role
from tests.lab.sampler import WritableSampler

NEGOTIATIONS = {80877103, 80877104}
"""SSLRequest and GSSENCRequest: refused with ``N``, then the client sends its startup."""


def error_response(sqlstate: str, message: str) -> bytes:
    body = b"".join(
        key + value.encode() + b"\0"
        for key, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body += b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


READY = b"R" + struct.pack("!II", 8, 0) + b"Z" + struct.pack("!I", 5) + b"I"
"""AuthenticationOk, then ReadyForQuery: a session that is open."""
DROP = b""
"""No answer at all: the connection closed before the session began."""


@dataclass
class FakeServer:
    """Listens on loopback and gives every startup ``reply``: an error (the server refuses the
    session), :data:`READY` (then it drops the connection at the first query, as a killed
    server does, and stops listening), :data:`DROP` (it drops the connection before answering,
    as a killed server resets the ones in its listen queue, and stops listening), or None (it
    never answers)."""

    reply: bytes | None
    sock: socket.socket = field(default_factory=socket.socket)
    held: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.held.append(conn)
            try:
                self._session(conn)
            except OSError:
                pass

    def _session(self, conn: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!II", _read(conn, 8))
            _read(conn, length - 8)
            if code not in NEGOTIATIONS:
                break
            conn.sendall(b"N")
        if self.reply is None:
            return  # holds the connection and never answers
        if self.reply is DROP:
            self.sock.close()
            conn.close()
            return
        conn.sendall(self.reply)
        if self.reply is READY:
            conn.recv(1)  # the first query: the server dies here, and nothing listens after
            self.sock.close()
            conn.close()

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("the client went away")
        data += chunk
    return data


def lab_at(port: int) -> Lab:
    """Just what the reads use of a lab: every site at 127.0.0.1:``port``."""
    return cast(Lab, SimpleNamespace(ip=lambda site: "127.0.0.1", ports=SimpleNamespace(pg=port)))


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    fake = FakeServer(request.param)
    fake.start()
    yield fake
    fake.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sampled(lab: Lab) -> WritableSampler:
    sampler = WritableSampler(lab, sites=("onprem",))
    try:
        sampler.sample()
    finally:
        sampler.close()
    return sampler


def test_a_server_nobody_listens_for_is_down() -> None:
    lab = lab_at(closed_port())
    assert role(lab, "onprem") == "down" and not can_write(lab, "onprem")
    sampler = sampled(lab)
    assert sampler.last == () and sampler.unknown == []
    sampler.check()


@pytest.mark.parametrize(
    "server", [error_response("57P03", "the database system is starting up")], indirect=True, ids=["57P03"]
)
def test_a_server_that_is_starting_up_is_down(server: FakeServer) -> None:
    lab = lab_at(server.port)
    assert role(lab, "onprem") == "down" and not can_write(lab, "onprem")
    assert sampled(lab).unknown == []


@pytest.mark.parametrize(
    "server",
    [error_response("53300", "sorry, too many clients already"), None],
    indirect=True,
    ids=["too-many-clients", "no-answer"],
)
def test_too_many_clients_or_no_answer_leaves_the_role_unknown(server: FakeServer) -> None:
    lab = lab_at(server.port)
    for read in (role, can_write):
        with pytest.raises(RoleUnknown, match="onprem: cannot tell its role"):
            read(lab, "onprem")
    sampler = sampled(lab)
    assert sampler.last == () and [u.site for u in sampler.unknown] == ["onprem"]
    with pytest.raises(AssertionError, match=r"1 reads left a role unknown: .*onprem unknown"):
        sampler.check()
    with pytest.raises(RoleUnknown):
        sampler.check_known()


@pytest.mark.parametrize("server", [READY, DROP], indirect=True, ids=["mid-query", "at-startup"])
def test_a_server_killed_mid_query_or_at_startup_is_read_again_and_found_down(server: FakeServer) -> None:
    assert role(lab_at(server.port), "onprem") == "down"


@pytest.mark.parametrize("server", [READY, DROP], indirect=True, ids=["mid-query", "at-startup"])
def test_the_sampler_reads_a_server_killed_mid_query_or_at_startup_again(server: FakeServer) -> None:
    sampler = sampled(lab_at(server.port))
    assert sampler.last == () and sampler.unknown == []
