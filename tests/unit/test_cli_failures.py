"""The CLI's failures a user meets end as one line and an exit code, never a traceback
(hybridops/cli/failures.py); the real CLI runs, against a Temporal port nobody listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from hybridops.cli import app
from hybridops.cli.common import EXIT_CANNOT, EXIT_FAILED, TemporalUnreachable
from hybridops.cli.failures import explain
from hybridops.contracts.burst import BurstInput
from hybridops.inventory import TemporalSettings, load_inventory, write_inventory
from tests.conftest import TEST_NET

EXAMPLE = Path(__file__).parents[2] / "runbooks" / "inventory.example.yaml"


@pytest.fixture
def closed_port() -> Iterator[str]:
    """``HOST:PORT`` where nothing listens: bound (so no one else takes it), never listening,
    so a connection is refused at once."""
    with socket.socket() as s:
        s.bind((f"{TEST_NET}.0.1", 0))
        host, port = s.getsockname()
        yield f"{host}:{port}"


@pytest.fixture
def env(tmp_path: Path, closed_port: str) -> dict[str, str]:
    """An inventory whose Temporal is the closed port, and a home of its own."""
    inv = load_inventory(EXAMPLE).model_copy(update={"temporal": TemporalSettings(address=closed_port)})
    write_inventory(inv, tmp_path / "inventory.yaml")
    return {"HYBRIDOPS_INVENTORY": str(tmp_path / "inventory.yaml"), "HYBRIDOPS_HOME": str(tmp_path / "home")}


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_failover_with_temporal_down_says_where_and_what_fixes_it(
    env: dict[str, str], closed_port: str
) -> None:
    """The console script's own process: one line on the way out, exit 2, no traceback."""
    out = subprocess.run(
        [sys.executable, "-m", "hybridops.cli", "failover"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == EXIT_CANNOT == 2, out.stdout + out.stderr
    [line] = lines(out.stdout + out.stderr)
    assert line.startswith("error: cannot reach Temporal at " + closed_port), line
    assert "connection refused" in line and "hybridops lab up" in line and "temporal.address" in line
    assert env["HYBRIDOPS_INVENTORY"] in line  # which inventory to fix
    assert "Traceback" not in out.stderr and "tonic" not in line


@pytest.mark.parametrize(
    "args",
    [
        ["failback", "--no-approval"],
        ["status", "failover-1"],
        ["approve", "failover-1", "--by", "alice"],
        ["burst", "stop", "burst-1"],
        ["drill", "status"],
        ["drill", "schedule", "list"],
        ["audit", "verify", "failover-1"],
        ["audit", "replay", "failover-1"],
    ],
)
def test_every_command_that_needs_temporal_fails_the_same_way(
    env: dict[str, str], closed_port: str, args: list[str]
) -> None:
    """One handler around the app, not one per command."""
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == EXIT_CANNOT, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [line] = lines(result.output)
    assert line.startswith(f"error: cannot reach Temporal at {closed_port} (connection refused)"), line


def test_a_bad_input_names_the_field_and_starts_nothing(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["burst", "start", "--traffic-share", "500"], env=env)
    assert result.exit_code == EXIT_CANNOT, result.output
    [line] = lines(result.output)
    assert line.startswith("error: invalid BurstInput: traffic_share: ") and "(got 500)" in line, line
    assert "cannot reach" not in line  # refused before any connection


def test_no_inventory_says_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = CliRunner().invoke(
        app, ["failover"], env={"HYBRIDOPS_INVENTORY": str(missing), "HYBRIDOPS_HOME": str(tmp_path)}
    )
    assert result.exit_code == EXIT_CANNOT, result.output
    [line] = lines(result.output)
    assert line == f"error: no inventory at {missing}: run 'hybridops lab up', or set HYBRIDOPS_INVENTORY"


def test_known_failures_become_one_line_and_a_code() -> None:
    try:
        BurstInput(traffic_share=500, extra_nodes=0)
    except ValidationError as err:
        invalid = err
    text, code = explain(invalid) or ("", 0)
    assert code == EXIT_CANNOT and "traffic_share" in text and "extra_nodes" in text and "\n" not in text

    missing = RPCError("workflow not found for ID: failover-1", RPCStatusCode.NOT_FOUND, b"")
    assert explain(missing) == ("workflow not found for ID: failover-1", EXIT_CANNOT)
    gone = explain(RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b""))
    assert (
        gone is not None and gone[0].startswith("lost the connection to Temporal") and gone[1] == EXIT_CANNOT
    )

    activity = ApplicationError("onprem is the primary", type="PreconditionFailed")
    failed = explain(WorkflowFailureError(cause=ApplicationError("run failed", type="X")))
    assert failed == ("the run failed: X: run failed", EXIT_FAILED)
    assert explain(activity) == ("PreconditionFailed: onprem is the primary", EXIT_CANNOT)


def test_debug_shows_the_traceback_instead(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["status", "failover-1"], env={**env, "HYBRIDOPS_DEBUG": "1"})
    assert isinstance(result.exception, TemporalUnreachable), result.output
    assert "error:" not in result.output


def test_a_bug_keeps_its_traceback() -> None:
    assert explain(KeyError("steps")) is None
    assert explain(RuntimeError("something else")) is None


def test_a_worker_with_temporal_down_says_where(env: dict[str, str], closed_port: str) -> None:
    """``hybridops worker`` checks its inventory, then becomes ``python -m workers``: with no
    server, that process ends as one line and exit 2 too, never a traceback."""
    out = subprocess.run(
        [sys.executable, "-m", "hybridops.cli", "worker", "--queue", "hybridops-dns"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == EXIT_CANNOT, out.stdout + out.stderr
    [line] = [x for x in lines(out.stderr) if x.startswith("error:")]
    assert line == f"error: cannot reach Temporal at {closed_port} (connection refused)", line
    assert "Traceback" not in out.stderr
