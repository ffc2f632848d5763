"""An agent's liveness view (drivers/postgres/liveness.py) from what its probes saw, on a
clock the test sets: which site it calls the primary, how long that primary has been silent,
and the series the global Prometheus reads for HybridOpsPrimaryNotTakingWrites. The probes
against real servers (a freeze, a kill) are tests/lab/test_detection.py's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from drivers.postgres.liveness import LivenessCollector, LivenessProbe
from hybridops.inventory import load_inventory
from hybridops.policy import Detection

EXAMPLE = Path(__file__).resolve().parents[2] / "runbooks" / "inventory.example.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def probe(clock: Clock) -> LivenessProbe:
    inv = load_inventory(EXAMPLE)
    return LivenessProbe(inv, "azure", Detection(blip_tolerance_s=2.0, probe_interval_s=0.1), clock=clock)


def test_the_primary_is_the_site_that_took_the_last_write_and_its_silence_grows() -> None:
    clock = Clock()
    p = probe(clock)
    assert p.view() is None  # an observer that saw no write vouches for nobody
    p.seen["onprem"].last_write = 999.9
    p.seen["azure"].read_only = True  # a standby refuses: it is never the primary
    view = p.view()
    assert view is not None and (view.primary, round(view.silent_s, 3)) == ("onprem", 0.1)
    clock.now = 1003.0
    view = p.view()
    assert view is not None and round(view.silent_s, 3) == 3.1
    # After a failover the site taking writes is the new primary at once.
    p.seen["azure"].last_write = 1002.95
    view = p.view()
    assert view is not None and view.primary == "azure" and round(view.silent_s, 3) == 0.05


def test_the_threshold_rides_out_a_freeze_of_the_tolerance() -> None:
    p = probe(Clock())
    # A write is due one interval after the last success; a freeze may begin just before it.
    assert p.threshold_s == 2.0 + 2 * 0.1


def test_the_collector_exports_the_view_the_rule_reads() -> None:
    clock = Clock()
    p = probe(clock)
    p.seen["onprem"].last_write = 998.0
    p.seen["gcp"].last_write = None
    registry = CollectorRegistry()
    registry.register(LivenessCollector([p]))
    text = generate_latest(registry).decode()
    assert 'hybridops_liveness_primary_silent_seconds{observer="azure",site="onprem"} 2.0' in text
    assert 'hybridops_liveness_tolerance_seconds{observer="azure"} 2.2' in text
    assert 'hybridops_liveness_last_write_timestamp_seconds{observer="azure",site="onprem"} 998.0' in text
    assert 'site="gcp"' not in text


def test_a_server_that_does_not_answer_is_given_up_on_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe whose server never answers (a frozen one accepts the connection and says
    nothing) returns at the probe timeout, records why, and leaves the silence to grow."""

    async def main() -> None:
        async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_server(tarpit, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        inv = load_inventory(EXAMPLE)
        monkeypatch.setenv("HYBRIDOPS_TEST_PG_PASSWORD", "not-a-real-one")
        site = inv.site("onprem").model_copy(
            update={"host": "127.0.0.1", "port": port, "password_ref": "env:HYBRIDOPS_TEST_PG_PASSWORD"}
        )
        inv = inv.model_copy(update={"sites": {**inv.sites, "onprem": site}})
        p = LivenessProbe(inv, "azure", Detection(probe_timeout_s=0.3))
        p.seen["onprem"].last_write = 1.0
        loop = asyncio.get_running_loop()
        began = loop.time()
        seen = await p.probe("onprem")
        took = loop.time() - began
        assert took < 1.0, took
        assert "no answer within 0.3 s" in seen.error and seen.last_write == 1.0
        server.close()

    asyncio.run(main())
