"""Whether a root configuration's Terraform state is locked, read without Terraform and without
taking the lock (readiness: a held lock stops the next plan or apply at once, a stale lock
file misleads the human who looks).

Terraform's local backend (``internal/states/statemgr/filesystem*.go``) locks the state file
itself with a POSIX record lock (``fcntl(F_SETLK)``, a write lock over the whole file) and,
once it holds it, writes ``.<state file name>.lock.info`` beside it (JSON: ID, Operation, Who,
Version, Created, Path, Info), which it removes when it unlocks. So: a process holding the
fcntl lock is a lock, whatever the info file says; an info file with no lock held is left from
a Terraform that was killed (stale, harmless to Terraform, confusing to people). The lock is
tested with ``F_GETLK``, which reports a conflicting lock without taking one (a lock held by
this very process would not conflict, so a worker never sees its own Terraform's: it runs
Terraform in child processes).

Remote backends (azurerm, gcs, s3, ...) keep their lock with the state, behind the backend's
credentials: not read here (unknown, with a note).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

LOCAL = "local"
STATE_FILE = "terraform.tfstate"
WORKSPACES_DIR = "terraform.tfstate.d"
"""Where the local backend keeps the states of workspaces other than ``default``."""
_BACKEND = re.compile(r'^\s*backend\s+"([A-Za-z0-9_-]+)"', re.MULTILINE)
_INFO_FIELDS = ("ID", "Operation", "Who", "Version", "Created", "Info")


class LockState(StrEnum):
    """What :func:`read_lock` found."""

    FREE = "free"
    """No lock held, no lock file: a plan or an apply can take the lock."""
    LOCKED = "locked"
    """A process holds the state's lock: the next plan or apply fails to lock."""
    STALE = "stale"
    """A lock info file, but no process holds the lock (a Terraform killed while it held it)."""
    UNKNOWN = "unknown"
    """A remote backend: its lock cannot be read from here."""


@dataclass(frozen=True)
class StateLock:
    """The lock of one root configuration's state, in one workspace. No path of the worker's
    disk in it (it is recorded in histories): the root's name and the state file relative to
    the root."""

    root: str
    workspace: str
    backend: str
    state: LockState
    state_file: str = ""
    """The state file, relative to the root (local backend)."""
    lock_id: str = ""
    who: str = ""
    operation: str = ""
    created: str = ""
    """As Terraform wrote them in the lock info file (when there is one)."""
    holder_pid: int | None = None
    """The process holding the fcntl lock, as the kernel reports it (this host only)."""
    note: str = ""


def backend_of(root: Path) -> str:
    """The backend the root's ``terraform { backend "X" {} }`` block names (``local`` when
    none does, as Terraform defaults)."""
    for tf in sorted(root.glob("*.tf")):
        found = _BACKEND.search(tf.read_text(errors="replace"))
        if found:
            return found.group(1)
    return LOCAL


def state_path(
    root: Path, workspace: str = "default", backend_config: Mapping[str, str] | None = None
) -> Path:
    """The local backend's state file of ``workspace``: ``path`` of the backend settings (for
    ``default``), else ``terraform.tfstate``; ``<workspace_dir or terraform.tfstate.d>/<ws>/
    terraform.tfstate`` for the others, relative to the root (Terraform runs with ``-chdir``)."""
    config = dict(backend_config or {})
    if workspace == "default":
        return root / config.get("path", STATE_FILE)
    return root / config.get("workspace_dir", WORKSPACES_DIR) / workspace / STATE_FILE


def lock_info_path(state: Path) -> Path:
    """Where Terraform writes the lock info of ``state``: ``.<name>.lock.info`` beside it."""
    return state.with_name(f".{state.name}.lock.info")


def _flock_struct(lock_type: int) -> tuple[str, bytes]:
    """``struct flock`` asking about a write lock over the whole file, for this platform."""
    if sys.platform.startswith("linux"):
        fmt = "hhqqi4x"  # l_type, l_whence, l_start, l_len, l_pid (+ padding)
        return fmt, struct.pack(fmt, lock_type, os.SEEK_SET, 0, 0, 0)
    fmt = "qqihh"  # the BSDs and macOS: l_start, l_len, l_pid, l_type, l_whence
    return fmt, struct.pack(fmt, 0, 0, 0, lock_type, os.SEEK_SET)


def lock_holder(path: Path) -> int | None:
    """The pid of a process holding a conflicting fcntl lock on ``path`` (0 when the kernel
    does not say), None when none does. ``F_GETLK``: takes no lock. Raises ``OSError`` when
    the file cannot be opened."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fmt, arg = _flock_struct(fcntl.F_WRLCK)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, arg)
    finally:
        os.close(fd)
    fields = struct.unpack(fmt, answer)
    if sys.platform.startswith("linux"):
        lock_type, pid = fields[0], fields[4]
    else:
        lock_type, pid = fields[3], fields[2]
    return None if lock_type == fcntl.F_UNLCK else int(pid)


def _lock_info(path: Path) -> dict[str, str] | None:
    """The lock info file's fields (None when there is none; a file Terraform was still
    writing, or not JSON, gives what could be read: nothing)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data.get(k) or "") for k in _INFO_FIELDS}


def read_lock(
    root: Path,
    workspace: str = "default",
    backend_config: Mapping[str, str] | None = None,
    name: str | None = None,
) -> StateLock:
    """Read-only: whether the state of root configuration ``root`` in ``workspace`` is locked.
    Local backend: :attr:`LockState.LOCKED` when a process holds the fcntl lock (who and when
    from the lock info file, when there is one), :attr:`LockState.STALE` when only the lock
    info file is there, :attr:`LockState.FREE` otherwise (no state yet included). Any other
    backend: :attr:`LockState.UNKNOWN`. Quick (a few system calls), never raises for a
    missing file; ``OSError`` only for a state file it may not open."""
    label = name or root.name
    backend = backend_of(root)
    if backend != LOCAL:
        return StateLock(
            root=label,
            workspace=workspace,
            backend=backend,
            state=LockState.UNKNOWN,
            note=f"the {backend} backend keeps its lock with the state: not checked without the"
            " backend's credentials (terraform plan -lock-timeout=0 on the infra worker tells)",
        )
    state = state_path(root, workspace, backend_config)
    relative = os.path.relpath(state, root)
    info = _lock_info(lock_info_path(state))
    holder = lock_holder(state) if state.exists() else None
    if holder is not None:
        status = LockState.LOCKED
        note = "held" + ("" if info is not None else "; no lock info file")
    elif info is not None:
        status = LockState.STALE
        note = "lock info file left, no process holds the lock (terraform force-unlock, or remove it)"
    else:
        status = LockState.FREE
        note = "" if state.exists() else "no state yet"
    info = info or {}
    return StateLock(
        root=label,
        workspace=workspace,
        backend=backend,
        state=status,
        state_file=relative,
        lock_id=info.get("ID", ""),
        who=info.get("Who", ""),
        operation=info.get("Operation", ""),
        created=info.get("Created", ""),
        holder_pid=holder or None,
        note=note,
    )
