"""The lab's processes: start one in a session of its own, keep its pid, stop it, wait for it.

Every long-running part of the lab (Temporal, DNS, the writer, the worker, the site agents, the
links between them and the servers, monitoring) is a
process started here, so ``lab down`` stops each and ``lab status`` lists each. Their pids are
kept in ``<root>/state.json`` and their output in ``<root>/logs/<name>.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from hybridops.errors import HybridOpsError

T = TypeVar("T")


class LabError(HybridOpsError):
    """The lab could not be brought into the asked state."""


def wait_until(what: str, check: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``check()`` until it returns something truthy; :class:`LabError` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except LabError:
            raise  # the check knows it never will be
        except Exception as err:  # the thing may not be up yet
            last = err
        time.sleep(interval)
    raise LabError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (within half a second)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 (within a second); raises while nothing listens."""
    with urllib.request.urlopen(url, timeout=1) as resp:
        return bool(resp.status == 200)


class Processes:
    """The processes of the lab rooted at ``root``, by name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_file(self) -> Path:
        """The pids of the running processes (``procs``), and what the last ``up`` chose."""
        return self.root / "state.json"

    def log(self, name: str) -> Path:
        """Where the process ``name`` writes its output."""
        return self.root / "logs" / f"{name}.log"

    def read_state(self) -> dict[str, Any]:
        if self.state_file.exists():
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        return {"procs": {}}

    def write_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, without: tuple[str, ...] = ()
    ) -> int:
        """Start ``argv`` as ``name`` in a session of its own (so stopping it stops its
        children), output appended to its log, ``env`` over this process's environment less
        the variables ``without``."""
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in without},
            )
        state = self.read_state()
        state["procs"][name] = proc.pid
        self.write_state(state)
        return proc.pid

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` while it runs (not a zombie); None otherwise."""
        pid = self.read_state()["procs"].get(name)
        if pid is None or not psutil.pid_exists(pid):
            return None
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            return None
        return int(pid)

    def kill(self, name: str, timeout: float = 10.0) -> None:
        """SIGKILL ``name``'s session at once (a host that dies), and wait until it is gone."""
        pid = self.pid(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
                psutil.Process(pid).wait(timeout)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        state = self.read_state()
        state["procs"].pop(name, None)
        self.write_state(state)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM ``name``'s session, SIGKILL it after ``timeout``; forget its pid."""
        pid = self.pid(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                psutil.Process(pid).wait(timeout)
            except psutil.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        state = self.read_state()
        state["procs"].pop(name, None)
        self.write_state(state)
