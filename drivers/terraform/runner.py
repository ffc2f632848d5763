"""The Terraform runner: the ``terraform`` (or ``tofu``) CLI driven through its machine-readable
interfaces, for the infra driver and any activity that changes cloud resources.

Commands, as Terraform documents them: ``init -input=false -no-color [-backend-config=FILE]``,
``workspace select -or-create=true NAME``, ``plan -out=FILE -json -input=false -var-file=FILE``
(its ``-json`` UI stream is read line by line: ``planned_change``, ``change_summary``,
``diagnostic``), ``show -json FILE`` (the plan representation: ``resource_changes[].change.actions``),
``apply -json -input=false FILE`` (exactly the saved plan; ``apply_start``, ``apply_progress``,
``apply_complete``, ``apply_errored``), ``destroy -auto-approve -json -input=false -var-file=FILE``
and ``output -json``. Every command runs with ``-chdir=<configuration>``.

Where things live: the configuration (a root module, e.g. ``infra/terraform/azure``) is only
read. Everything a run writes goes to its work directory, one per target and workspace
(``<work_root>/<target>/<workspace>``): ``TF_DATA_DIR`` (providers, modules, the backend's
settings and the selected workspace, so two workspaces never switch under each other), the
variable files and the saved plans (mode 0600: plans may hold sensitive values). State is
wherever the configuration's backend keeps it (production: azurerm/gcs with locking; the lab
root: a local backend next to the configuration, so run the lab from a copy).

Secrets: ``secret_env`` maps environment variable names (``ARM_CLIENT_SECRET``,
``GOOGLE_CREDENTIALS``, ``TF_VAR_...``) to secret references, resolved at each call and handed
to Terraform only in its environment, which is otherwise built from scratch (a few plain
variables such as ``PATH`` and ``HOME`` are inherited, never the worker's credentials). A secret
is never in argv (refused), a heartbeat, an error or a result (redacted from the tool's output).

Progress: when called in an activity, each command heartbeats ``{"phase", "done", "total",
"resource", "seconds"}``, so a long apply stays alive and the UI shows how far it got.
Cancellation: Terraform gets SIGINT and up to ``interrupt_grace`` seconds to stop cleanly and
release its state lock; then its process group is killed; the cancellation goes on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.process import StreamedOutput, redact, stream_tool, tail, tool_environment
from drivers.progress import report as report_progress
from drivers.terraform.errors import (
    TerraformAuthError,
    TerraformFailed,
    TerraformStateLocked,
    TerraformTimeout,
    UnexpectedDeletion,
)
from drivers.terraform.types import ApplyResult, PlanSummary
from hybridops.errors import ConfigError, HybridOpsError, PreconditionFailed

INHERITED_ENV = (
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
)
"""What Terraform sees of the worker's environment beyond :data:`hybridops.childenv.SAFE_ENV`."""
DIAGNOSTICS_SHOWN = 10
"""How many error diagnostics an error's message carries."""
_WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,89}")
_BACKEND_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_LOCK = re.compile(r"Error acquiring the state lock|Error locking state", re.IGNORECASE)
_LOCK_FIELD = re.compile(r"^[\s│]*(ID|Path|Operation|Who|Version|Created|Info):[ \t]*(.*?)\s*$", re.MULTILINE)
_AUTH = [
    (re.compile(p, re.IGNORECASE), provider)
    for p, provider in (
        (r"building AzureRM Client", "azurerm"),
        (r"obtain subscription", "azurerm"),
        (r"unable to build authorizer", "azurerm"),
        (r"AADSTS\d+", "azurerm"),
        (r"please run 'az login'", "azurerm"),
        (r"could not find default credentials", "google"),
        (r"oauth2: cannot fetch token", "google"),
        (r"invalid_grant", "google"),
        (r"No valid credential sources found", "aws"),
        (r"InvalidClientTokenId|ExpiredToken|UnrecognizedClientException", "aws"),
    )
]


def address_allowed(address: str, patterns: Iterable[str]) -> bool:
    """Whether ``address`` matches one of ``patterns``, where ``*`` matches anything (brackets
    are literal: ``terraform_data.node[*]`` matches every instance of ``terraform_data.node``)."""
    for pattern in patterns:
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        if re.fullmatch(regex, address):
            return True
    return False


def summarise_plan(plan: Mapping[str, Any], *, plan_file: str, workspace: str, destroy: bool) -> PlanSummary:
    """A :class:`PlanSummary` from ``terraform show -json PLANFILE`` (format version 1.x)."""
    version = str(plan.get("format_version", ""))
    if not version.startswith("1."):
        raise TerraformFailed(f"terraform show -json: unsupported plan format version {version!r}")
    buckets: dict[str, list[str]] = {"create": [], "update": [], "delete": [], "replace": []}
    for change in plan.get("resource_changes") or []:
        actions = list((change.get("change") or {}).get("actions") or [])
        address = str(change.get("address", ""))
        if set(actions) == {"delete", "create"}:
            buckets["replace"].append(address)
        elif actions in (["create"], ["update"], ["delete"]):
            buckets[actions[0]].append(address)
        # no-op, read (data sources) and forget change no real resource
    return PlanSummary(plan_file=plan_file, workspace=workspace, destroy=destroy, **buckets)


@dataclass
class _Run:
    """One command's output as the runner needs it."""

    argv: list[str]
    lines: list[str] = field(default_factory=list)
    """Standard output (redacted), when not streamed as JSON messages."""
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    """The ``diagnostic`` messages of severity error."""
    output: StreamedOutput | None = None


@dataclass
class _Progress:
    phase: str
    done: int = 0
    total: int | None = None
    resource: str | None = None
    completed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def details(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "resource": self.resource,
            "seconds": round(time.monotonic() - self.started, 1),
        }


class TerraformRunner:
    """Runs Terraform on one root configuration, in one workspace, from one work directory.

    Every method is safe to call again after a failure or a crash: ``init`` and ``workspace``
    converge, ``plan`` only writes a new saved plan, ``apply`` applies exactly the plan it is
    given (Terraform refuses a plan made stale by another apply), ``destroy`` of nothing is
    nothing. They raise :class:`TerraformStateLocked` (retryable), :class:`TerraformAuthError`
    (fatal), :class:`UnexpectedDeletion` (fatal, ``plan`` only), :class:`TerraformTimeout` and
    :class:`TerraformFailed` (retryable), :class:`hybridops.errors.ConfigError` (no binary, a bad
    secret reference).
    """

    def __init__(
        self,
        config_dir: Path,
        workdir: Path,
        *,
        binary: str = "terraform",
        workspace: str = "default",
        secret_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        backend_config: Mapping[str, str] | None = None,
        allow_delete: Iterable[str] = (),
        timeout: float = 3600.0,
        command_timeout: float = 600.0,
        interrupt_grace: float = 120.0,
        target: str | None = None,
    ) -> None:
        """``config_dir``: the root module. ``workdir``: this target's and workspace's work
        directory (see :meth:`for_target`). ``binary``: ``terraform``, ``tofu`` or a path.
        ``secret_env``: variable name -> secret reference (``env:NAME``, ``file:PATH``).
        ``env``: plain, non-secret variables (``ARM_SUBSCRIPTION_ID``, ``GOOGLE_PROJECT``).
        ``backend_config``: backend settings for ``init``, passed in a 0600 file, never in argv
        (secrets still belong in ``secret_env``, e.g. ``ARM_ACCESS_KEY``). ``allow_delete``:
        addresses (``*`` wildcards) a plan may delete or replace. ``timeout``: for plan, apply and destroy;
        ``command_timeout``: for the others. ``interrupt_grace``: how long Terraform has to stop
        after SIGINT (cancellation, timeout) before it is killed."""
        if not _WORKSPACE.fullmatch(workspace):
            raise ConfigError(f"terraform workspace {workspace!r}: letters, digits, '_', '.', '-' only")
        self.config_dir = Path(config_dir).resolve()
        self.workdir = Path(workdir).resolve()
        self.binary = binary
        self.workspace_name = workspace
        self.secret_env = dict(secret_env or {})
        self.env = dict(env or {})
        self.backend_config = dict(backend_config or {})
        self.allow_delete = list(allow_delete)
        self.timeout = timeout
        self.command_timeout = command_timeout
        self.interrupt_grace = interrupt_grace
        self.target = target or self.config_dir.name

    @classmethod
    def for_target(
        cls, config_root: Path, target: str, work_root: Path, *, workspace: str = "default", **kwargs: Any
    ) -> TerraformRunner:
        """The runner of root configuration ``config_root/target`` (``azure``, ``gcp``, ``lab``)
        in ``workspace``, working in ``work_root/target/workspace``."""
        if not _WORKSPACE.fullmatch(target):
            raise ConfigError(f"terraform target {target!r}: letters, digits, '_', '.', '-' only")
        return cls(
            Path(config_root) / target,
            Path(work_root) / target / workspace,
            workspace=workspace,
            target=target,
            **kwargs,
        )

    # -- the commands ---------------------------------------------------------------------

    async def init(self) -> None:
        """``terraform init``: backend and providers ready. Idempotent.

        The backend settings go to Terraform in a generated file (``-backend-config=FILE``,
        mode 0600, removed afterwards), never as ``-backend-config=KEY=VALUE``: argv is
        readable by every user of the host (``ps``), and a storage account name or access key
        there is one more place for it to leak."""
        args = ["init", "-input=false", "-no-color"]
        backend = self._write_backend() if self.backend_config else None
        if backend is not None:
            args.append(f"-backend-config={backend}")
        try:
            await self._checked(args, timeout=self.command_timeout)
        finally:
            if backend is not None:
                backend.unlink(missing_ok=True)

    async def workspace(self, name: str | None = None) -> str:
        """Select workspace ``name`` (default: the runner's), creating it when new. Idempotent."""
        name = name or self.workspace_name
        if not _WORKSPACE.fullmatch(name):
            raise ConfigError(f"terraform workspace {name!r}: letters, digits, '_', '.', '-' only")
        await self._checked(["workspace", "select", "-or-create=true", name], timeout=self.command_timeout)
        self.workspace_name = name
        return name

    async def prepare(self) -> None:
        """:meth:`init`, then :meth:`workspace`: what every other command needs first."""
        await self.init()
        await self.workspace()

    async def plan(
        self,
        variables: Mapping[str, Any],
        *,
        destroy: bool = False,
        allow_delete: Iterable[str] | None = None,
    ) -> PlanSummary:
        """Plan with ``variables`` (``-var-file``, never ``-var``), save the plan, summarise it.

        Refuses (:class:`UnexpectedDeletion`, the plan discarded) a plan that deletes or replaces
        a resource matching none of ``allow_delete`` (default: the runner's); a ``destroy``
        plan deletes by definition and is not checked.
        """
        token = uuid.uuid4().hex[:12]
        var_file = self._write_vars(token, variables)
        plan_file = self._workdir() / f"plan-{token}.tfplan"
        progress = _Progress("plan")

        def on_message(msg: dict[str, Any]) -> None:
            kind = msg.get("type")
            if kind == "planned_change":
                progress.done += 1
                progress.resource = _address(msg.get("change"))
            elif kind == "change_summary":
                changes = msg.get("changes") or {}
                progress.total = sum(int(changes.get(k, 0)) for k in ("add", "change", "remove"))
                progress.done = progress.total
            else:
                return
            report_progress(progress.details())

        args = ["plan", f"-out={plan_file}", "-json", "-input=false", f"-var-file={var_file}"]
        if destroy:
            args.append("-destroy")
        try:
            await self._checked(args, on_message=on_message, progress=progress, timeout=self.timeout)
        finally:
            var_file.unlink(missing_ok=True)
        os.chmod(plan_file, 0o600)
        summary = await self.show(plan_file, destroy=destroy)
        if not destroy:
            allowed = self.allow_delete if allow_delete is None else list(allow_delete)
            refused = [a for a in summary.delete + summary.replace if not address_allowed(a, allowed)]
            if refused:
                plan_file.unlink(missing_ok=True)
                raise UnexpectedDeletion(
                    f"the plan would delete or replace {len(refused)} resource(s) not allowed: "
                    + ", ".join(refused),
                    addresses=refused,
                    target=self.target,
                    workspace=self.workspace_name,
                )
        return summary

    async def show(self, plan_file: Path, *, destroy: bool = False) -> PlanSummary:
        """Summarise saved plan ``plan_file`` (``terraform show -json``)."""
        run = await self._checked(["show", "-json", str(plan_file)], timeout=self.command_timeout)
        try:
            plan = json.loads("".join(run.lines))
        except ValueError:
            raise self._garbled("show") from None
        return summarise_plan(plan, plan_file=str(plan_file), workspace=self.workspace_name, destroy=destroy)

    async def apply(self, plan: PlanSummary) -> ApplyResult:
        """Apply exactly the saved plan ``plan`` (made by :meth:`plan` in this runner's work
        directory and workspace), then remove it: a saved plan is applied once."""
        plan_file = Path(plan.plan_file)
        if plan_file.parent != self.workdir or not plan_file.is_file():
            raise PreconditionFailed(
                f"saved plan {plan_file.name} is not in this runner's work directory (applied already?)",
                **self._ids("apply"),
            )
        if plan.workspace != self.workspace_name:
            raise PreconditionFailed(
                f"saved plan of workspace {plan.workspace!r} given to a runner of {self.workspace_name!r}",
                **self._ids("apply"),
            )
        try:
            return await self._apply_stream(
                ["apply", "-json", "-input=false", str(plan_file)], total=plan.changes, phase="apply"
            )
        finally:
            plan_file.unlink(missing_ok=True)

    async def destroy(self, variables: Mapping[str, Any]) -> ApplyResult:
        """Destroy everything the workspace manages (``terraform destroy``). Idempotent."""
        var_file = self._write_vars(uuid.uuid4().hex[:12], variables)
        try:
            return await self._apply_stream(
                ["destroy", "-auto-approve", "-json", "-input=false", f"-var-file={var_file}"],
                total=None,
                phase="destroy",
            )
        finally:
            var_file.unlink(missing_ok=True)

    async def output(self) -> dict[str, Any]:
        """The root module's outputs (``terraform output -json``), name -> value. Sensitive
        outputs are left out: a result may be recorded in a history."""
        run = await self._checked(["output", "-json"], timeout=self.command_timeout)
        text = "".join(run.lines).strip() or "{}"
        try:
            outputs = json.loads(text)
        except ValueError:
            raise self._garbled("output") from None
        return {
            name: item.get("value")
            for name, item in outputs.items()
            if isinstance(item, dict) and not item.get("sensitive")
        }

    # -- internals ------------------------------------------------------------------------

    async def _apply_stream(self, args: list[str], *, total: int | None, phase: str) -> ApplyResult:
        progress = _Progress(phase, total=total)
        planned = 0

        def on_message(msg: dict[str, Any]) -> None:
            nonlocal planned
            kind = msg.get("type")
            hook = msg.get("hook") or {}
            if kind == "planned_change":  # destroy plans before it applies: that is the total
                planned += 1
                if total is None:
                    progress.total = planned
                return
            if kind in ("apply_start", "apply_progress"):
                progress.resource = _address(hook)
            elif kind == "apply_complete":
                address = _address(hook)
                if address and address not in progress.completed:
                    progress.completed.append(address)
                progress.done = len(progress.completed)
                if progress.total is not None:
                    progress.done = min(progress.done, progress.total)
                progress.resource = address
            elif kind == "apply_errored":
                progress.errored.append(_address(hook) or "?")
                progress.resource = _address(hook)
            elif kind == "change_summary":
                changes = msg.get("changes") or {}
                progress.summary = {k: int(changes.get(k, 0)) for k in ("add", "change", "remove")}
                return
            else:
                return
            report_progress(progress.details())

        await self._checked(args, on_message=on_message, progress=progress, timeout=self.timeout)
        return ApplyResult(
            workspace=self.workspace_name,
            added=progress.summary.get("add", 0),
            changed=progress.summary.get("change", 0),
            removed=progress.summary.get("remove", 0),
            completed=progress.completed,
            seconds=round(time.monotonic() - progress.started, 3),
        )

    async def _checked(
        self,
        args: list[str],
        *,
        timeout: float,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        progress: _Progress | None = None,
    ) -> _Run:
        """Run ``terraform -chdir=<config> ARGS``; raise the matching error on a non-zero exit."""
        env, secrets = self._environment()
        argv = [self._binary_path(), f"-chdir={self.config_dir}", *args]
        run = _Run(argv=argv)
        command = args[0]
        ids = self._ids(command)

        def on_line(line: str) -> None:
            if on_message is None:
                run.lines.append(line)
                return
            try:
                msg = json.loads(line)
            except ValueError:
                run.lines.append(line)  # not a UI message (a provider's stray print): keep it
                return
            if not isinstance(msg, dict):
                return
            if msg.get("type") == "diagnostic" and (msg.get("diagnostic") or {}).get("severity") == "error":
                run.diagnostics.append(msg["diagnostic"])
            on_message(msg)

        def on_idle(seconds: float) -> None:
            details = progress.details() if progress else {"phase": command, "seconds": round(seconds, 1)}
            report_progress(details)

        def on_timeout(message: str) -> HybridOpsError:
            return TerraformTimeout(f"terraform {command} timed out after {timeout:g}s; interrupted", **ids)

        run.output = await stream_tool(
            argv,
            on_line=on_line,
            env=env,
            cwd=self._workdir(),
            secrets=secrets,
            timeout=timeout,
            interrupt_grace=self.interrupt_grace,
            on_idle=on_idle,
            on_timeout=on_timeout,
            ids=ids,
        )
        if run.output.returncode != 0:
            raise self._failure(run, command, secrets)
        return run

    def _failure(self, run: _Run, command: str, secrets: list[str]) -> HybridOpsError:
        """The domain error a failed command's diagnostics and stderr describe."""
        assert run.output is not None
        lines = [_diagnostic_line(d) for d in run.diagnostics]
        if not lines:
            lines = [ln.strip("│ ").strip() for ln in run.output.stderr.splitlines() if "Error:" in ln]
        details = "\n".join(
            [f"{d.get('summary', '')}\n{d.get('detail', '')}" for d in run.diagnostics]
            + [run.output.stderr, *run.lines]
        )
        details = redact(details, secrets)
        lines = [redact(line, secrets) for line in lines]
        ids = self._ids(command)
        if _LOCK.search(details):
            lock = {k.lower(): v for k, v in _LOCK_FIELD.findall(details) if v}
            who = lock.get("who")
            return TerraformStateLocked(
                f"terraform {command}: the state is locked"
                + (f" by {who}" if who else "")
                + (f" since {lock['created']}" if lock.get("created") else "")
                + (f" ({lock['operation']})" if lock.get("operation") else ""),
                lock_id=lock.get("id"),
                who=who,
                created=lock.get("created"),
                operation=lock.get("operation"),
                **ids,
            )
        for pattern, provider in _AUTH:
            if pattern.search(details):
                first = next((line for line in lines if pattern.search(line)), lines[0] if lines else "")
                return TerraformAuthError(
                    f"terraform {command}: {provider} could not authenticate: "
                    + (first or "credentials refused"),
                    provider=provider,
                    **ids,
                )
        shown = lines[:DIAGNOSTICS_SHOWN] or [tail(redact(run.output.stderr, secrets)) or "(no diagnostics)"]
        more = f" (+{len(lines) - DIAGNOSTICS_SHOWN} more)" if len(lines) > DIAGNOSTICS_SHOWN else ""
        return TerraformFailed(
            f"terraform {command} exited {run.output.returncode}: " + "; ".join(shown) + more,
            diagnostics=lines,
            **ids,
        )

    def _environment(self) -> tuple[dict[str, str], list[str]]:
        """Terraform's whole environment, and the secret values in it (resolved now)."""
        env, secrets = tool_environment(INHERITED_ENV, self.env, self.secret_env)
        env.update(
            {
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "TF_DATA_DIR": str(self._workdir() / ".terraform"),
            }
        )
        env.pop("TF_WORKSPACE", None)  # the runner selects the workspace itself
        return env, secrets

    def _binary_path(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise ConfigError(f"terraform binary {self.binary!r} not found (not executable, or not on PATH)")
        return found

    def _workdir(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.workdir

    def _write_vars(self, token: str, variables: Mapping[str, Any]) -> Path:
        path = self._workdir() / f"vars-{token}.tfvars.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(variables), f, indent=2, sort_keys=True, default=str)
        return path

    def _write_backend(self) -> Path:
        """The backend settings as a backend configuration file (HCL attributes), 0600."""
        lines = []
        for key, value in sorted(self.backend_config.items()):
            if not _BACKEND_KEY.fullmatch(key):
                raise ConfigError(f"terraform backend_config key {key!r}: not an HCL attribute name")
            lines.append(f"{key} = {hcl_string(value)}\n")
        path = self._workdir() / f"backend-{uuid.uuid4().hex[:12]}.tfbackend"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(lines))
        return path

    def _garbled(self, command: str) -> TerraformFailed:
        return TerraformFailed(
            f"terraform {command} -json printed no JSON",
            target=self.target,
            workspace=self.workspace_name,
            command=command,
        )

    def _ids(self, command: str) -> dict[str, object]:
        return {"target": self.target, "workspace": self.workspace_name, "command": command}


def hcl_string(value: str) -> str:
    """``value`` as an HCL quoted string: JSON's escapes (which HCL shares), and template
    sequences (``${``, ``%{``) doubled so they stay literal text."""
    return json.dumps(str(value)).replace("${", "$${").replace("%{", "%%{")


def _address(obj: Any) -> str | None:
    """The resource address of a ``planned_change``'s ``change`` or an apply message's ``hook``."""
    if not isinstance(obj, dict):
        return None
    resource = obj.get("resource") or {}
    addr = resource.get("addr") if isinstance(resource, dict) else None
    return str(addr) if addr else None


def _diagnostic_line(diag: Mapping[str, Any]) -> str:
    """``summary: first line of detail (at address or file:line)``."""
    text = str(diag.get("summary", "")).strip()
    detail = str(diag.get("detail", "")).strip().splitlines()
    if detail:
        text += f": {detail[0]}"
    where = diag.get("address")
    rng = diag.get("range")
    if not where and isinstance(rng, dict):
        start = rng.get("start") or {}
        where = f"{rng.get('filename', '?')}:{start.get('line', '?')}"
    return f"{text} (at {where})" if where else text


__all__ = ["TerraformRunner", "address_allowed", "summarise_plan"]
