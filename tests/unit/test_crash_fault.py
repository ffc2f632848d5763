"""The ``crash`` fault: a worker SIGKILLed at a step boundary, once across restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from activities.common import apply_fault, apply_fault_after
from hybridops.constants import FAULTS_DIR_ENV
from hybridops.errors import ConfigError

# A process that runs one step whose work leaves a line in a file, as a worker would.
STEP = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from temporalio.testing import ActivityEnvironment
    from activities.common import step_activity
    from hybridops.contracts.base import ActivityResult

    class Acts:
        faults = {"touch": sys.argv[1]}

        @step_activity("touch")
        async def touch(self) -> ActivityResult:
            with Path(sys.argv[2]).open("a") as f:
                f.write("done\\n")
            return ActivityResult(changed=True)

    asyncio.run(ActivityEnvironment().run(Acts().touch))
    print("reported")
    """
)


def _before(faults: dict[str, str], step: str) -> None:
    async def run() -> None:
        await apply_fault(faults, step)

    asyncio.run(run())


def _run(spec: str, work: Path, faults_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, FAULTS_DIR_ENV: str(faults_dir), "PYTHONPATH": str(Path.cwd())}
    return subprocess.run(
        [sys.executable, "-c", STEP, spec, str(work)], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("spec", ["crash", "crash:after"])
def test_crash_after_kills_once_with_the_work_done(tmp_path: Path, spec: str) -> None:
    work, faults = tmp_path / "work", tmp_path / "faults"
    first = _run(spec, work, faults)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert work.read_text() == "done\n", "the work ran before the kill"
    assert "reported" not in first.stdout
    assert (faults / "crash-touch").exists()
    # The restarted worker runs the step again (idempotent steps), and lives.
    second = _run(spec, work, faults)
    assert second.returncode == 0, second.stderr
    assert "reported" in second.stdout and work.read_text() == "done\ndone\n"
    assert _run(spec, work, faults).returncode == 0


def test_crash_before_kills_once_before_the_work(tmp_path: Path) -> None:
    work, faults = tmp_path / "work", tmp_path / "faults"
    first = _run("crash:before", work, faults)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not work.exists(), "killed before the step did anything"
    second = _run("crash:before", work, faults)
    assert second.returncode == 0 and work.read_text() == "done\n"


def test_marks_are_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step whose mark exists does not crash; another step's mark does not count."""
    monkeypatch.setenv(FAULTS_DIR_ENV, str(tmp_path))
    (tmp_path / "crash-a").write_text("1\n")
    _before({"a": "crash:before"}, "a")
    apply_fault_after({"a": "crash"}, "a")
    work = tmp_path / "work"
    assert _run("crash", work, tmp_path).returncode == -signal.SIGKILL


def test_crash_without_its_directory_names_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULTS_DIR_ENV, raising=False)
    with pytest.raises(ConfigError, match=rf"faults\.promote_standby: .*{FAULTS_DIR_ENV}"):
        _before({"promote_standby": "crash"}, "promote_standby")
    with pytest.raises(ConfigError, match=r"faults\.fence_primary"):
        apply_fault_after({"fence_primary": "crash:after"}, "fence_primary")


def test_unknown_crash_point_names_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULTS_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"faults\.dns_cutover: unknown crash point 'crash:during'"):
        _before({"dns_cutover": "crash:during"}, "dns_cutover")
    assert list(tmp_path.iterdir()) == [], "nothing marked"


MID = STEP.replace(
    'f.write("done\\n")',
    'f.write("half\\n")\n'
    "        from drivers.progress import report\n"
    '        report({"phase": "middle"})\n'
    '        with Path(sys.argv[2]).open("a") as f:\n'
    '            f.write("done\\n")',
)


def test_crash_at_a_phase_kills_once_in_the_middle(tmp_path: Path) -> None:
    """``crash:at-PHASE``: killed when the step's driver reports that phase, its work half
    done (a restore's copy complete, not yet swapped in); the restarted worker lives."""
    assert MID != STEP
    work, faults = tmp_path / "work", tmp_path / "faults"
    env = {**os.environ, FAULTS_DIR_ENV: str(faults), "PYTHONPATH": str(Path.cwd())}

    def run() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", MID, "crash:at-middle", str(work)]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    first = run()
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert work.read_text() == "half\n"
    second = run()
    assert second.returncode == 0, second.stderr
    assert work.read_text() == "half\nhalf\ndone\n"
