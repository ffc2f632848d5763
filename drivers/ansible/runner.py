"""The Ansible runner: a playbook of ``infra/ansible/`` run through ``ansible-runner`` (the library
AWX uses), its events streamed into heartbeats, its recap turned into a :class:`PlaybookResult`.

One run, one private data directory (``<work_root>/<playbook>-<token>``, mode 0700, removed when
the run ends, whatever the outcome): the inventory (a mapping is written there as
``inventory/hosts.json``), the extra variables (``env/extravars``, mode 0600, handed to
``ansible-playbook`` as ``-e @file``: never in its command line) and ansible-runner's artifacts
(the events, which may quote a variable a careless task printed).

Secrets: ``secret_extravars`` maps extra variable names to secret references (``env:NAME``,
``file:PATH``), resolved at each run. Their values are refused in the command line and
redacted from every text the runner copies out of Ansible (heartbeats, the result, errors);
tasks that handle them also set ``no_log`` (see the roles). ``ansible-playbook`` gets an
environment built from a few plain variables of the worker's (``PATH``, ``HOME``, the SSH
agent, proxies), ``ANSIBLE_*`` settings and the runner's ``envvars``; never the worker's
credentials.

Progress: when called in an activity, each task start and each host result heartbeats
``{"playbook", "task", "host", "ok", "changed", "failed", "unreachable", "skipped", "seconds"}``
(counts so far, all hosts); every :data:`drivers.process.HEARTBEAT_S` when Ansible is quiet.
Cancellation and the deadline stop ``ansible-playbook`` (its process group is killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_runner import Runner, RunnerConfig  # type: ignore[import-untyped]

from drivers.ansible.errors import HostsUnreachable, PlaybookError, PlaybookFailed, PlaybookTimeout
from drivers.ansible.types import FailedTask, HostRecap, PlaybookResult
from drivers.process import HEARTBEAT_S, redact, refuse_secrets, tail
from drivers.progress import report as report_progress
from drivers.secrets import resolve_secret
from hybridops.childenv import child_environment
from hybridops.errors import ConfigError
from hybridops.secrets import MIN_SECRET_LEN

MESSAGE_LIMIT = 500
"""Longest task message kept (a module's stderr can be long)."""
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "VIRTUAL_ENV",
)
"""The only variables of the worker's environment ``ansible-playbook`` sees (with ``ANSIBLE_*``):
none is a credential."""
POLL_S = 0.25
"""How often ansible-runner's loop looks at the cancel flag while Ansible prints nothing."""
STOP_GRACE_S = 30.0
"""How long a stopped run has to wind down before the runner stops waiting for its thread."""
_COUNTED = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass
class _Progress:
    """What the events said so far (written by ansible-runner's thread, read by the loop's)."""

    playbook: str
    secrets: list[str]
    task: str | None = None
    host: str | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
    )
    failed_tasks: list[FailedTask] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def details(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "task": self.task,
            "host": self.host,
            **self.counts,
            "seconds": round(time.monotonic() - self.started, 1),
        }

    def on_event(self, event: Mapping[str, Any]) -> bool:
        """Account for one ansible-runner event; whether it had news worth a heartbeat."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.task = self._clean(data.get("task") or data.get("name") or "")
            self.host = None
            return True
        counted = _COUNTED.get(str(kind))
        if counted is None:
            return False
        if counted == "failed" and data.get("ignore_errors"):
            return False  # a failure the play expects and handles itself
        res = data.get("res") or {}
        self.host = self._clean(str(data.get("host", "")))
        self.task = self._clean(str(data.get("task", self.task or "")))
        self.counts[counted] += 1
        if counted == "ok" and isinstance(res, dict) and res.get("changed"):
            self.counts["changed"] += 1
        if counted in ("failed", "unreachable"):
            self.failed_tasks.append(
                FailedTask(
                    host=self.host,
                    task=self.task or "",
                    message=self._clean(_message(res)),
                    unreachable=counted == "unreachable",
                )
            )
        return True

    def _clean(self, text: str) -> str:
        text = redact(text, self.secrets)
        return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _message(res: Any) -> str:
    """What a failed module said: ``msg``, else stderr; for a loop, each failed item's."""
    if not isinstance(res, dict):
        return str(res)
    items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if items:
        return "; ".join(_message(r) for r in items)
    for key in ("msg", "stderr", "reason", "module_stderr"):
        value = res.get(key)
        if value:
            return str(value).strip()
    return "(no message)"


class AnsibleRunner:
    """Runs the playbooks of one directory (``infra/ansible``), each run in a private data
    directory under ``work_root``.

    :meth:`run_playbook` is as idempotent as the playbook (ours are: a second run changes
    nothing). It raises :class:`PlaybookFailed` (fatal: a task failed), :class:`HostsUnreachable`
    (retryable), :class:`PlaybookTimeout` (retryable), :class:`PlaybookError` (fatal: the
    playbook could not run) and :class:`hybridops.errors.ConfigError` (no such playbook or
    inventory, no ``ansible-playbook``, a bad secret reference).
    """

    def __init__(
        self,
        playbook_dir: Path,
        work_root: Path | None = None,
        *,
        secret_extravars: Mapping[str, str] | None = None,
        envvars: Mapping[str, str] | None = None,
        timeout: float = 3600.0,
        binary: str = "ansible-playbook",
        forks: int | None = None,
    ) -> None:
        """``playbook_dir``: where the playbooks (and their ``roles/``) are. ``work_root``: where
        private data directories go (default: the system's temporary directory).
        ``secret_extravars``: extra variable name -> secret reference, for every run.
        ``envvars``: plain, non-secret variables for ``ansible-playbook`` (``ANSIBLE_*``
        settings, ``ANSIBLE_PRIVATE_KEY_FILE``). ``timeout``: seconds a run may take.
        ``binary``: ``ansible-playbook`` or a path (found next to the worker's Python when not
        on ``PATH``)."""
        self.playbook_dir = Path(playbook_dir).resolve()
        self.work_root = Path(work_root) if work_root is not None else Path(tempfile.gettempdir())
        self.secret_extravars = dict(secret_extravars or {})
        self.envvars = dict(envvars or {})
        self.timeout = timeout
        self.binary = binary
        self.forks = forks

    async def run_playbook(
        self,
        playbook: str,
        inventory: Path | str | Mapping[str, Any],
        extravars: Mapping[str, Any] | None = None,
        *,
        check: bool = False,
        limit: str | None = None,
        secret_extravars: Mapping[str, str] | None = None,
    ) -> PlaybookResult:
        """Run ``playbook`` (a file of :attr:`playbook_dir`) on ``inventory`` (a path, or an
        inventory as a mapping: ``{"all": {"hosts": {...}}}``) with ``extravars`` (plain values)
        and ``secret_extravars`` (name -> secret reference, on top of the runner's).

        ``check``: ``--check --diff`` (nothing changes; ``changed`` says what would). ``limit``:
        ``--limit``. Returns the result when every host succeeded; otherwise raises (above),
        the error carrying the result.
        """
        path = self._playbook(playbook)
        plain = dict(extravars or {})
        refs = {**self.secret_extravars, **dict(secret_extravars or {})}
        clash = sorted(set(plain) & set(refs))
        if clash:
            raise ConfigError(f"extra variables both plain and secret: {', '.join(clash)}", playbook=playbook)
        resolved = {name: resolve_secret(ref) for name, ref in refs.items()}
        secrets = [v for v in resolved.values() if v is not None and len(v) >= MIN_SECRET_LEN]
        binary = self._binary_path()

        self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Path(tempfile.mkdtemp(prefix=f"{path.stem}-{uuid.uuid4().hex[:8]}-", dir=self.work_root))
        try:
            return await self._run(
                private,
                path,
                binary,
                inventory,
                {**plain, **resolved},
                secrets,
                check=check,
                limit=limit,
            )
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def _run(
        self,
        private: Path,
        playbook: Path,
        binary: str,
        inventory: Path | str | Mapping[str, Any],
        extravars: Mapping[str, Any],
        secrets: list[str],
        *,
        check: bool,
        limit: str | None,
    ) -> PlaybookResult:
        ids: dict[str, object] = {"playbook": playbook.name}
        _write_private(private / "env" / "extravars", extravars)
        progress = _Progress(playbook=playbook.name, secrets=secrets)
        loop = asyncio.get_running_loop()
        news: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()

        def on_event(event: dict[str, Any]) -> bool:
            if progress.on_event(event):
                loop.call_soon_threadsafe(news.put_nowait, progress.details())
            # only the recap is kept on disk (ansible-runner's stats read it); other events
            # may quote what a task printed
            return event.get("event") == "playbook_on_stats"

        config = RunnerConfig(
            private_data_dir=str(private),
            project_dir=str(self.playbook_dir),
            playbook=str(playbook),
            inventory=self._inventory(private, inventory, ids),
            limit=limit,
            forks=self.forks,
            cmdline="--check --diff" if check else None,
            envvars=self.envvars,
            settings={"pexpect_timeout": POLL_S, "suppress_ansible_output": True},
            suppress_ansible_output=True,
            quiet=True,
        )
        config.prepare()
        # given ``binary``, ansible-runner would run it raw (no playbook argument): name it here
        config.command[0] = binary
        refuse_secrets(config.command, secrets)
        config.env = self._environment(config.env)
        runner = Runner(config, event_handler=on_event, cancel_callback=stop.is_set)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                runner.run()
            except BaseException as err:  # handed to the loop's side
                failure.append(err)
            finally:
                loop.call_soon_threadsafe(news.put_nowait, None)

        thread = threading.Thread(target=work, name=f"ansible-{playbook.stem}", daemon=True)
        started = time.monotonic()
        thread.start()
        timed_out = False
        try:
            while True:
                left = self.timeout - (time.monotonic() - started)
                if left <= 0:
                    timed_out = True
                    break
                try:
                    details = await asyncio.wait_for(news.get(), min(HEARTBEAT_S, left))
                except TimeoutError:
                    report_progress(progress.details())
                    continue
                if details is None:
                    break
                report_progress(details)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.to_thread(thread.join, STOP_GRACE_S)
            raise
        if timed_out:
            stop.set()
            await asyncio.to_thread(thread.join, STOP_GRACE_S)
            raise PlaybookTimeout(
                f"ansible-playbook {playbook.name} timed out after {self.timeout:g}s", **ids
            )
        await asyncio.to_thread(thread.join)
        if failure:
            raise PlaybookError(
                f"ansible-runner could not run {playbook.name}: {redact(str(failure[0]), secrets)}", **ids
            ) from None
        result = self._result(runner, playbook, progress, check=check, seconds=time.monotonic() - started)
        self._raise_for(result, runner, secrets, ids)
        return result

    def _result(
        self, runner: Runner, playbook: Path, progress: _Progress, *, check: bool, seconds: float
    ) -> PlaybookResult:
        stats = runner.stats or {}
        names = set().union(*(stats.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped")))
        hosts = {
            host: HostRecap(
                host=host,
                ok=int((stats.get("ok") or {}).get(host, 0)),
                changed=int((stats.get("changed") or {}).get(host, 0)),
                failed=int((stats.get("failures") or {}).get(host, 0)),
                unreachable=int((stats.get("dark") or {}).get(host, 0)),
                skipped=int((stats.get("skipped") or {}).get(host, 0)),
            )
            for host in sorted(names)
        }
        return PlaybookResult(
            playbook=playbook.name,
            check=check,
            status=str(runner.status),
            rc=runner.rc,
            changed=any(h.changed for h in hosts.values()),
            hosts=hosts,
            failed_tasks=list(progress.failed_tasks),
            seconds=round(seconds, 3),
        )

    def _raise_for(
        self, result: PlaybookResult, runner: Runner, secrets: list[str], ids: dict[str, object]
    ) -> None:
        """The error a finished run's recap calls for, if any."""
        failed, unreachable = result.failed_hosts, result.unreachable_hosts
        if failed:
            tasks = [t for t in result.failed_tasks if not t.unreachable]
            shown = "; ".join(f"{t.host}: task {t.task!r}: {t.message}" for t in tasks[:5]) or "(no details)"
            also = f" (unreachable: {', '.join(unreachable)})" if unreachable else ""
            raise PlaybookFailed(
                f"{result.playbook} failed on {', '.join(failed)}: {shown}{also}",
                hosts=failed,
                failed_tasks=result.failed_tasks,
                result=result,
                **ids,
            )
        if unreachable:
            shown = "; ".join(f"{t.host}: {t.message}" for t in result.failed_tasks if t.unreachable)
            raise HostsUnreachable(
                f"{result.playbook}: unreachable: {shown or ', '.join(unreachable)}",
                hosts=unreachable,
                result=result,
                **ids,
            )
        if result.status != "successful":
            raise PlaybookError(
                f"ansible-playbook {result.playbook} ended {result.status} (rc={result.rc}): "
                + (tail(redact(_stdout(runner), secrets), 10) or "(no output)"),
                **ids,
            )

    def _playbook(self, name: str) -> Path:
        path = (self.playbook_dir / name).resolve()
        if not path.is_relative_to(self.playbook_dir) or not path.is_file():
            raise ConfigError(f"playbook {name!r} is not a file of {self.playbook_dir.name}/", playbook=name)
        return path

    def _inventory(
        self, private: Path, inventory: Path | str | Mapping[str, Any], ids: dict[str, object]
    ) -> str:
        if isinstance(inventory, Mapping):
            path = private / "inventory" / "hosts.json"
            _write_private(path, inventory)
            return str(path)
        path = Path(inventory)
        if not path.exists():
            raise ConfigError(f"inventory {str(inventory)!r} does not exist", **ids)
        return str(path.resolve())

    def _binary_path(self) -> str:
        found = shutil.which(self.binary)
        if found is None and os.sep not in self.binary:
            beside = Path(sys.executable).parent / self.binary  # the venv's, when not on PATH
            found = str(beside) if os.access(beside, os.X_OK) else None
        if found is None:
            raise ConfigError(f"ansible binary {self.binary!r} not found (not executable, or not on PATH)")
        return found

    def _environment(self, prepared: Mapping[str, Any]) -> dict[str, str]:
        """ansible-runner's environment for the child (the worker's whole one, plus its own
        settings), cut down to what Ansible needs: what the runner added or changed,
        ``ANSIBLE_*``, :data:`INHERITED_ENV` and :attr:`envvars`, through the one allow-list
        (:func:`hybridops.childenv.child_environment`)."""
        added = {k: str(v) for k, v in prepared.items() if not (k in os.environ and os.environ[k] == str(v))}
        ansible = [k for k in prepared if k.startswith("ANSIBLE_")]
        return child_environment({**added, **self.envvars}, (*INHERITED_ENV, *ansible))


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(data), f, default=str)


def _stdout(runner: Runner) -> str:
    """What ``ansible-playbook`` printed (ansible-runner keeps it in the artifacts)."""
    try:
        handle = runner.stdout
    except (OSError, AttributeError):
        return ""
    with handle:
        return str(handle.read())


async def run_playbook(
    playbook: Path | str,
    inventory: Path | str | Mapping[str, Any],
    extravars: Mapping[str, Any] | None = None,
    check: bool = False,
    limit: str | None = None,
    **runner_options: Any,
) -> PlaybookResult:
    """Run the playbook at path ``playbook`` once: :meth:`AnsibleRunner.run_playbook` with a
    runner for its directory (``runner_options``: :class:`AnsibleRunner`'s keyword arguments)."""
    path = Path(playbook)
    runner = AnsibleRunner(path.parent, **runner_options)
    return await runner.run_playbook(path.name, inventory, extravars, check=check, limit=limit)


__all__ = ["AnsibleRunner", "run_playbook"]
