"""What ``lab up`` and ``lab status`` say of a server that could not start: its log's FATAL
line (hybridops/lab/postgres.py, ``LabPostgres.last_fatal``), from PostgreSQL 18's own lines."""

from __future__ import annotations

from pathlib import Path

from hybridops.lab.layout import LabLayout
from hybridops.lab.postgres import LabPostgres

T = "2026-12-03 20:52:46.7"
RAN_AND_STOPPED = [
    f"{T} UTC [100] LOG:  starting PostgreSQL 18.6 on x86_64-pc-linux-gnu",
    f"{T} UTC [100] LOG:  database system is ready to accept connections",
    f"{T} UTC [120] FATAL:  terminating connection due to administrator command",
    f"{T} UTC [100] LOG:  database system is shut down",
]
# A fenced old primary whose WAL went past the new timeline's fork, started as a standby:
# pg_ctl start -w exits 0 ("server shut down because of recovery target settings").
STARTUP_FAILED = [
    f"{T} UTC [200] LOG:  starting PostgreSQL 18.6 on x86_64-pc-linux-gnu",
    f"{T} UTC [201] FATAL:  the database system is starting up",
    f"{T} UTC [207] FATAL:  requested timeline 2 does not contain minimum recovery point 0/F82CC0"
    " on timeline 1",
    f"{T} UTC [200] LOG:  startup process (PID 207) exited with exit code 1",
    f"{T} UTC [200] LOG:  shutting down due to startup process failure",
    f"{T} UTC [200] LOG:  database system is shut down",
]
BAD_CONFIG = [
    f'{T} UTC [300] LOG:  invalid value for parameter "shared_buffers": "banana"',
    f'{T} UTC [300] FATAL:  configuration file "postgresql.auto.conf" contains errors',
]


def _postgres(tmp_path: Path, lines: list[str]) -> LabPostgres:
    pg = LabPostgres(LabLayout(tmp_path))
    log = pg.layout.data_dir("gcp") / "log"
    log.mkdir(parents=True)
    (log / "server.log").write_text("\n".join(lines) + "\n")
    return pg


def test_a_clean_stop_is_stopped(tmp_path: Path) -> None:
    pg = _postgres(tmp_path, RAN_AND_STOPPED)
    assert pg.last_fatal("gcp") is None and pg.stopped_state("gcp") == "stopped"
    assert LabPostgres(LabLayout(tmp_path / "none")).last_fatal("gcp") is None  # no log yet


def test_the_startup_process_fatal_is_the_reason(tmp_path: Path) -> None:
    pg = _postgres(tmp_path, RAN_AND_STOPPED + STARTUP_FAILED)
    assert pg.last_fatal("gcp") == (
        "FATAL:  requested timeline 2 does not contain minimum recovery point 0/F82CC0 on timeline 1"
    )
    assert pg.stopped_state("gcp").startswith("down: FATAL:  requested timeline 2")


def test_a_configuration_error_before_the_start_line_is_the_reason(tmp_path: Path) -> None:
    pg = _postgres(tmp_path, RAN_AND_STOPPED + BAD_CONFIG)
    assert pg.last_fatal("gcp") == 'FATAL:  configuration file "postgresql.auto.conf" contains errors'
