"""The Packer runner: the ``packer`` CLI driven through its machine-readable output, for the
activities that bake node images (``infra/packer/``: an RKE2 node, provisioned by the
``rke2_server`` role of ``infra/ansible``).

Commands, as Packer documents them: ``init TEMPLATE``, ``validate -machine-readable
-var-file=FILE TEMPLATE``, ``build -machine-readable -color=false [-force] [-only=...]
-var-file=FILE TEMPLATE``. TEMPLATE is a directory of ``*.pkr.hcl`` files, or one of them.

The machine-readable format is one line per message, ``timestamp,target,type,data...``: commas
inside data are written ``%!(PACKER_COMMA)``, newlines ``\\n``. The runner reads ``ui`` (``say``,
``message``, ``error``: progress, and errors for the whole run), ``artifact`` (``INDEX,builder-id,
ID``, ``INDEX,id,ID``, ``INDEX,string,TEXT``, ``INDEX,files-count,N``, ``INDEX,file,N,NAME``,
``INDEX,end``) and ``error`` (a build's error, the build in ``target``).

Secrets: ``secret_env`` maps environment variable names to secret references: Packer reads
input variables from ``PKR_VAR_<name>`` and clouds their credentials from theirs
(``ARM_CLIENT_SECRET``, ``GOOGLE_APPLICATION_CREDENTIALS``). Packer's environment is otherwise
built from scratch (a few plain variables such as ``PATH`` and ``HOME``); plain variables go
in a var file (mode 0600, removed after the command). A secret is never in argv (refused), a
heartbeat, an error or a result (redacted from the output).

Progress: in an activity, each line of progress heartbeats ``{"phase", "build", "message",
"artifacts", "seconds"}``. Cancellation and the deadline give Packer SIGINT and
``interrupt_grace`` seconds to clean up what it created (temporary VMs), then kill its group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.packer.errors import (
    PackerAuthError,
    PackerBuildFailed,
    PackerInitFailed,
    PackerTemplateInvalid,
    PackerTimeout,
)
from drivers.packer.types import PackerArtifact, PackerBuildResult, PackerValidation
from drivers.process import redact, stream_tool, tail, tool_environment
from drivers.progress import report as report_progress
from hybridops.errors import ConfigError, HybridOpsError

MESSAGE_LIMIT = 300
"""Longest progress message in a heartbeat."""
INHERITED_ENV = (
    "PACKER_PLUGIN_PATH",
    "PACKER_CACHE_DIR",
)
"""What Packer sees of the worker's environment beyond :data:`hybridops.childenv.SAFE_ENV`."""
_BUILD = re.compile(r"[A-Za-z0-9_.*-]+")
_AUTH = re.compile(
    r"NoCredentialProviders|No valid credential sources|could not find default credentials"
    r"|invalid_grant|AADSTS\d+|AuthorizationFailed|InvalidAuthenticationToken|UnauthorizedOperation",
    re.IGNORECASE,
)
_ERRORED = re.compile(r"^Build '([^']+)' errored(?: after [^:]*)?: (.*)$", re.DOTALL)


def unescape(text: str) -> str:
    """A machine-readable field as Packer meant it."""
    return text.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")


@dataclass(frozen=True)
class MachineLine:
    """One line of ``-machine-readable`` output."""

    timestamp: int
    target: str
    """The build it is about (``qemu.rke2-node``), empty for the whole run."""
    type: str
    data: list[str]
    """The remaining fields, unescaped."""


def parse_line(line: str) -> MachineLine | None:
    """The message of one machine-readable line, or None for anything else (a plugin's stray
    output, a log line)."""
    parts = line.rstrip("\r\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    return MachineLine(int(parts[0]), unescape(parts[1]), parts[2], [unescape(p) for p in parts[3:]])


@dataclass
class _Build:
    """A machine-readable command's output as the runner needs it."""

    phase: str
    secrets: list[str] = field(default_factory=list)
    """Redacted again once fields are unescaped (a secret with a comma in it)."""
    build: str | None = None
    message: str | None = None
    artifacts: dict[tuple[str, int], PackerArtifact] = field(default_factory=dict)
    build_errors: dict[str, list[str]] = field(default_factory=dict)
    ui_errors: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def details(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "build": self.build,
            "message": self.message,
            "artifacts": len(self.artifacts),
            "seconds": round(time.monotonic() - self.started, 1),
        }

    def on_line(self, line: str) -> bool:
        """Account for one line; whether it is progress worth a heartbeat."""
        msg = parse_line(line)
        if msg is None:
            if line.strip():
                self.other.append(line)
            return False
        msg = MachineLine(msg.timestamp, msg.target, msg.type, [redact(d, self.secrets) for d in msg.data])
        if msg.type == "ui" and len(msg.data) >= 2:
            kind, text = msg.data[0], ",".join(msg.data[1:]).strip()
            if kind == "error":
                self.ui_errors.append(text)
                errored = _ERRORED.match(text)
                if errored:
                    self.build_errors.setdefault(errored.group(1), []).append(errored.group(2).strip())
            self.build = msg.target or self.build
            self.message = text[:MESSAGE_LIMIT]
            return True
        if msg.type == "error" and msg.target:
            errors = self.build_errors.setdefault(msg.target, [])
            text = ",".join(msg.data).strip()
            if text not in errors:
                errors.append(text)
            return True
        if msg.type == "artifact" and len(msg.data) >= 2 and msg.data[0].isdigit():
            self._artifact(msg.target, int(msg.data[0]), msg.data[1], msg.data[2:])
            self.build = msg.target
            return True
        if msg.type == "artifact-count" and msg.target not in self.finished:
            self.finished.append(msg.target)
        return False

    def _artifact(self, build: str, index: int, key: str, values: list[str]) -> None:
        artifact = self.artifacts.setdefault((build, index), PackerArtifact(build=build, index=index))
        value = ",".join(values)
        if key == "builder-id":
            artifact.builder_id = value
        elif key == "id":
            artifact.id = value
        elif key == "string":
            artifact.string = value
        elif key == "files-count":
            artifact.files_count = int(value) if value.isdigit() else 0
        elif key == "file" and len(values) >= 2:
            artifact.files.append(",".join(values[1:]))
        # "end" and "nil" need nothing


class PackerRunner:
    """Runs Packer on one template (a directory of ``*.pkr.hcl`` or one file), from one work
    directory (var files; Packer's own state goes where its template says).

    ``init`` converges (installs missing plugins); ``validate`` reads only; ``build`` makes new
    images each time it succeeds (with ``force``, a local output directory is replaced): an
    activity calling it again after a crash may make a second image, so image names carry the
    run's id. They raise :class:`PackerInitFailed`, :class:`PackerTemplateInvalid` (fatal),
    :class:`PackerAuthError` (fatal), :class:`PackerBuildFailed` and :class:`PackerTimeout`
    (retryable), :class:`hybridops.errors.ConfigError` (no binary, a bad secret reference, a
    build name that is not one).
    """

    def __init__(
        self,
        template: Path,
        workdir: Path,
        *,
        binary: str = "packer",
        secret_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 7200.0,
        command_timeout: float = 600.0,
        interrupt_grace: float = 120.0,
    ) -> None:
        """``template``: a directory of ``*.pkr.hcl`` files, or one. ``workdir``: where var files
        go. ``binary``: ``packer`` or a path. ``secret_env``: variable name -> secret reference
        (``PKR_VAR_rke2_token``, ``ARM_CLIENT_SECRET``). ``env``: plain variables
        (``ARM_SUBSCRIPTION_ID``). ``timeout``: for builds; ``command_timeout``: for init and
        validate. ``interrupt_grace``: how long Packer has to clean up after SIGINT."""
        self.template = Path(template).resolve()
        self.workdir = Path(workdir).resolve()
        self.binary = binary
        self.secret_env = dict(secret_env or {})
        self.env = dict(env or {})
        self.timeout = timeout
        self.command_timeout = command_timeout
        self.interrupt_grace = interrupt_grace

    async def init(self) -> None:
        """``packer init``: the template's ``required_plugins`` installed. Idempotent."""
        output = await self._run(["init", str(self.template)], _Build("init"), timeout=self.command_timeout)
        if output.returncode != 0:
            raise PackerInitFailed(
                f"packer init exited {output.returncode}: {output.summary}", **self._ids("init")
            )

    async def validate(self, variables: Mapping[str, Any] | None = None) -> PackerValidation:
        """``packer validate`` with ``variables``: the template and the values parse and check."""
        build = _Build("validate")
        with self._var_file(variables) as var_file:
            output = await self._run(
                ["validate", "-machine-readable", f"-var-file={var_file}", str(self.template)],
                build,
                timeout=self.command_timeout,
            )
        if output.returncode != 0:
            errors = build.ui_errors or _error_lines(output.stderr) or [output.summary]
            raise PackerTemplateInvalid(
                f"packer validate: the template is invalid: {'; '.join(errors[:5])}",
                errors=errors,
                **self._ids("validate"),
            )
        warnings = [line for line in build.other if "Warning" in line]
        return PackerValidation(template=self.template.name, warnings=warnings)

    async def build(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        only: Iterable[str] = (),
        force: bool = True,
    ) -> PackerBuildResult:
        """``packer build`` with ``variables`` (``only``: these builds, ``qemu.rke2-node``).

        Returns the artifacts of every build when all succeeded; otherwise raises
        :class:`PackerBuildFailed` naming the failed builds (with the others' artifacts).
        """
        only = list(only)
        bad = [b for b in only if not _BUILD.fullmatch(b)]
        if bad:
            raise ConfigError(
                f"packer build: not build names: {', '.join(map(repr, bad))}", **self._ids("build")
            )
        build = _Build("build")
        args = ["build", "-machine-readable", "-color=false"]
        if force:
            args.append("-force")
        if only:
            args.append(f"-only={','.join(only)}")
        with self._var_file(variables) as var_file:
            args += [f"-var-file={var_file}", str(self.template)]
            output = await self._run(args, build, timeout=self.timeout)
        artifacts = list(build.artifacts.values())  # in the order Packer reported them
        ids = self._ids("build")
        if output.returncode != 0 or build.build_errors:
            text = "\n".join(
                [*build.ui_errors, *(e for es in build.build_errors.values() for e in es), output.stderr]
            )
            if _AUTH.search(text):
                first = next((line for line in text.splitlines() if _AUTH.search(line)), "")
                raise PackerAuthError(
                    f"packer build: a builder could not authenticate: {first.strip()}", **ids
                )
            if build.build_errors:
                shown = "; ".join(f"{b}: {' / '.join(e)}" for b, e in sorted(build.build_errors.items()))
                raise PackerBuildFailed(
                    f"packer build: {len(build.build_errors)} build(s) errored: {shown}",
                    errors=build.build_errors,
                    artifacts=artifacts,
                    **ids,
                )
            errors = build.ui_errors or _error_lines(output.stderr) or [output.summary]
            raise PackerTemplateInvalid(
                f"packer build exited {output.returncode} before building: {'; '.join(errors[:5])}",
                errors=errors,
                **ids,
            )
        return PackerBuildResult(
            template=self.template.name,
            artifacts=artifacts,
            builds=list(build.finished),
            seconds=round(time.monotonic() - build.started, 3),
        )

    async def _run(self, args: list[str], build: _Build, *, timeout: float) -> _Output:
        env, secrets = self._environment()
        argv = [self._binary_path(), *args]
        command = args[0]
        build.secrets = secrets

        def on_line(line: str) -> None:
            if build.on_line(line):
                report_progress(build.details())

        def on_idle(seconds: float) -> None:
            report_progress(build.details())

        def on_timeout(message: str) -> HybridOpsError:
            return PackerTimeout(
                f"packer {command} timed out after {timeout:g}s; interrupted", **self._ids(command)
            )

        streamed = await stream_tool(
            argv,
            on_line=on_line,
            env=env,
            cwd=self._workdir(),
            secrets=secrets,
            timeout=timeout,
            interrupt_grace=self.interrupt_grace,
            on_idle=on_idle,
            on_timeout=on_timeout,
            ids=self._ids(command),
        )
        summary = (
            tail(streamed.stderr, 5) or tail("\n".join(build.ui_errors or build.other), 5) or "(no output)"
        )
        return _Output(streamed.returncode, streamed.stderr, redact(summary, secrets))

    def _environment(self) -> tuple[dict[str, str], list[str]]:
        """Packer's whole environment, and the secret values in it (resolved now)."""
        env, secrets = tool_environment(INHERITED_ENV, self.env, self.secret_env)
        env["PACKER_NO_COLOR"] = "1"
        env["CHECKPOINT_DISABLE"] = "1"  # no version check call home from a worker
        return env, secrets

    def _binary_path(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise ConfigError(f"packer binary {self.binary!r} not found (not executable, or not on PATH)")
        return found

    def _workdir(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.workdir

    def _var_file(self, variables: Mapping[str, Any] | None) -> _VarFile:
        return _VarFile(self._workdir() / f"vars-{uuid.uuid4().hex[:12]}.pkrvars.json", dict(variables or {}))

    def _ids(self, command: str) -> dict[str, object]:
        return {"template": self.template.name, "command": command}


@dataclass(frozen=True)
class _Output:
    returncode: int
    stderr: str
    summary: str
    """The end of stderr (else of the errors Packer printed), redacted: for messages."""


class _VarFile:
    """A JSON var file (Packer reads ``*.json`` var files as JSON), mode 0600, removed on exit."""

    def __init__(self, path: Path, variables: dict[str, Any]) -> None:
        self.path = path
        self.variables = variables

    def __enter__(self) -> Path:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.variables, f, indent=2, sort_keys=True, default=str)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _error_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "Error" in line]


__all__ = ["MachineLine", "PackerRunner", "parse_line", "unescape"]
