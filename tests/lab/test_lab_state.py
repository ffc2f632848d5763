"""The lab keeps its DNS across `lab down` / `lab up` and a killed DNS server, and says so
loudly when two servers are writable (hybridops/lab/dns.py, dns_state.py, status.py)."""

from __future__ import annotations

import json
import os
import signal

import psutil
import psycopg
import pytest
from typer.testing import CliRunner

from drivers.dns.route53 import Route53Driver
from hybridops.cli import app
from hybridops.cli import lab as lab_commands
from hybridops.lab import Lab
from hybridops.lab.dns_state import run_sync
from hybridops.lab.postgres import WritableSite
from hybridops.lab.processes import wait_until
from tests.lab.helpers import assert_one_writer, dns_points_at, writable_sites

QUIET = {"temporal": False, "worker": False, "writer": False, "monitoring": False}


def _weights(lab: Lab) -> dict[str, tuple[str, int]]:
    inv = lab.inventory()
    return run_sync(Route53Driver(inv.dns).get_weights(f"app.{inv.dns.zone}"))


def test_dns_comes_back_where_it_was_after_down_and_up(lab: Lab) -> None:
    assert lab.dns_note.startswith("DNS first start") and dns_points_at(lab) == "onprem"
    lab.point_dns("azure")
    inv = lab.inventory()
    burst = {"onprem": (lab.ip("onprem"), 70), "azure": (lab.ip("azure"), 30)}
    run_sync(Route53Driver(inv.dns).ensure_weights(f"app.{inv.dns.zone}", "A", burst, inv.burst.ttl))

    lab.down()
    assert lab.pid("dns") is None
    lab.up(**QUIET)

    assert dns_points_at(lab) == "azure"
    assert _weights(lab) == burst
    assert "re-applied" in lab.dns_note and "(lab down)" in lab.dns_note and not lab.dns_stale
    # Only DNS moved (by hand): the servers came back as they were, onprem the one writer.
    assert writable_sites(lab) == ["onprem"]


def test_a_killed_dns_server_comes_back_with_the_last_snapshot(lab: Lab) -> None:
    lab.point_dns("gcp")
    pid = lab.pid("dns")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until("the DNS server to die", lambda: lab.pid("dns") is None)

    lab.up(**QUIET)

    assert lab.pid("dns") not in (None, pid)
    assert dns_points_at(lab) == "gcp"
    assert lab.dns_stale and "(lab point_dns)" in lab.dns_note and "without `lab down`" in lab.dns_note
    assert writable_sites(lab) == ["onprem"]


def test_two_writable_servers_are_named_loudly(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lab.warnings() == []
    # A stranger promotes azure by hand while onprem still runs.
    with psycopg.connect(host=lab.ip("azure"), port=lab.ports.pg, user="postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_promote(true, 60)")

    lab.up(**QUIET)  # must not hang on azure, which no longer streams

    assert lab.writable_sites() == [WritableSite("onprem", 1), WritableSite("azure", 2)]
    assert writable_sites(lab) == ["onprem", "azure"]  # read by a write on each server
    warnings = lab.warnings()
    assert len(warnings) == 2, warnings
    split, dns = warnings
    assert "2 writable servers: onprem (timeline 1), azure (timeline 2)" in split
    assert "runbooks/failover.md" in split
    assert "points at onprem, which is not the single writable server" in dns
    assert lab.status()["warnings"] == warnings

    # `hybridops lab status`: the table on stdout, the warnings on stderr, exit 0.
    monkeypatch.setattr(lab_commands, "_lab", lambda: lab)
    result = CliRunner().invoke(app, ["lab", "status"])
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert "WARNING: 2 writable servers: onprem (timeline 1), azure (timeline 2)" in stderr
    assert "WARNING" not in result.stdout


def test_lab_reset_starts_the_snapshots_anew_at_onprem(lab: Lab) -> None:
    lab.point_dns("azure")
    lab.reset()
    pid = lab.pid("dns")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until("the DNS server to die", lambda: lab.pid("dns") is None)

    lab.up(**QUIET)

    assert dns_points_at(lab) == "onprem"
    assert "(lab reset)" in lab.dns_note
    assert assert_one_writer(lab) == "onprem"


def test_a_site_that_cannot_start_is_named_and_the_others_come_up(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcp's configuration is broken while the lab is down: `lab up` brings the others up,
    names gcp and its log's FATAL line on one line, exits 1; `lab status` says the same."""
    lab.down()
    conf = lab.data_dir("gcp") / "postgresql.auto.conf"
    with conf.open("a") as f:  # appended: the file keeps the server's user as owner
        f.write("shared_buffers = 'banana'\n")
    monkeypatch.setattr(lab_commands, "_lab", lambda: lab)
    monkeypatch.setattr(lab, "up", lambda **_: Lab.up(lab, **QUIET))  # no Temporal of its own

    result = CliRunner().invoke(app, ["lab", "up"])

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: gcp did not start: FATAL:") and "contains errors" in errors[0]
    assert "Traceback" not in result.output
    assert [lab.role(s) for s in ("onprem", "azure")] == ["primary", "standby"]
    assert lab.role("gcp") == "down" and assert_one_writer(lab) == "onprem"

    status = CliRunner().invoke(app, ["lab", "status", "--json"])
    assert status.exit_code == 0, status.output
    gcp = json.loads(status.stdout)["pg:gcp"]
    assert gcp.startswith("down: FATAL:") and "postgresql.auto.conf" in gcp and "contains errors" in gcp

    # Repaired, the next `lab up` starts it and says nothing of it.
    conf.write_text(conf.read_text().replace("shared_buffers = 'banana'\n", ""))
    result = CliRunner().invoke(app, ["lab", "up"])
    assert result.exit_code == 0, result.output
    assert lab.role("gcp") == "standby" and lab.status()["pg:gcp"] == "standby"


def _reaches(lab: Lab, observer: str, site: str) -> bool:
    """A session opens and answers through ``observer``'s link to ``site``'s server, within
    libpq's shortest connect timeout (a cut link holds the connection: it never answers)."""
    host, port = lab.link_address(observer, site)
    try:
        with psycopg.connect(host=host, port=port, user="postgres", connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_a_cut_link_black_holes_one_agents_path_and_a_reset_heals_it(lab: Lab) -> None:
    assert _reaches(lab, "azure", "onprem") and _reaches(lab, "gcp", "onprem")
    assert lab.cut("azure") == ["azure>gcp", "azure>onprem"]  # azure's host cut off from the others
    assert lab.status()["links"] == "running, cut: azure>gcp, azure>onprem"
    assert not _reaches(lab, "azure", "onprem") and not _reaches(lab, "azure", "gcp")
    # Every other path is up: the other agents' links, the servers themselves.
    assert _reaches(lab, "gcp", "onprem") and _reaches(lab, "onprem", "azure")
    assert assert_one_writer(lab) == "onprem"
    lab.reset()
    assert lab.links.cut_links() == [] and _reaches(lab, "azure", "onprem")
    lab.down()
    assert lab.pid("links") is None


def test_lab_freeze_blips_thaws_and_never_holds_up_a_stop(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab freeze SITE --for S` is a blip: frozen, then answering again; without `--for` the
    server stays frozen (its processes stopped) until `lab thaw`, a failover's isolation, or a
    stop, which thaws it first and so stops it cleanly (pg_ctl's signal heard, not a kill after
    its 30 s)."""
    monkeypatch.setattr(lab_commands, "_lab", lambda: lab)

    def postmaster() -> psutil.Process:
        pid_file = lab.postgres.layout.data_dir("onprem") / "postmaster.pid"
        return psutil.Process(int(pid_file.read_text().split("\n", 1)[0]))

    blip = CliRunner().invoke(app, ["lab", "freeze", "onprem", "--for", "0.5"])
    assert blip.exit_code == 0, blip.output
    assert "onprem's server frozen at" in blip.output and "onprem's server thawed at" in blip.output
    assert postmaster().status() != psutil.STATUS_STOPPED
    assert writable_sites(lab) == ["onprem"]  # a write on each server: onprem takes it again

    unknown = CliRunner().invoke(app, ["lab", "freeze", "aws"])
    assert unknown.exit_code == 2 and "site: unknown site 'aws'" in unknown.output, unknown.output

    frozen = CliRunner().invoke(app, ["lab", "freeze", "onprem"])
    assert frozen.exit_code == 0 and "thawed" not in frozen.output, frozen.output
    assert postmaster().status() == psutil.STATUS_STOPPED
    log = lab.postgres.layout.data_dir("onprem") / "log" / "server.log"
    before = log.stat().st_size
    lab.stop_postgres()
    with log.open() as f:
        f.seek(before)
        assert "received fast shutdown request" in f.read()
    thaw = CliRunner().invoke(app, ["lab", "thaw", "onprem"])
    assert thaw.exit_code == 2 and "onprem's server is not running" in thaw.output, thaw.output

    lab.up(**QUIET)
    assert assert_one_writer(lab) == "onprem" and dns_points_at(lab) == "onprem"
