"""The approver's side of signed approvals (:mod:`hybridops.signing`): ``ssh-keygen`` signs
with a private key (a file, or through the agent) and makes the lab's key pairs. Subprocesses:
never imported by workflows."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from hybridops.signing import NAMESPACE

SSH_KEYGEN = "ssh-keygen"


class SigningError(Exception):
    """``ssh-keygen`` could not sign or make a key (the message says why, never the key)."""


def sign(message: bytes, key_file: Path) -> str:
    """The armored SSH signature of ``message`` by the private key at ``key_file`` (through
    ``ssh-keygen -Y sign``: an agent or a passphrase prompt work as for git). Raises
    :class:`SigningError`."""
    with tempfile.TemporaryDirectory(prefix="hybridops-sign-") as tmp:
        msg = Path(tmp) / "approval"
        msg.write_bytes(message)
        proc = subprocess.run(
            [SSH_KEYGEN, "-Y", "sign", "-q", "-f", str(key_file), "-n", NAMESPACE, str(msg)],
            capture_output=True,
            text=True,
            check=False,
        )
        sig = Path(tmp) / "approval.sig"
        if proc.returncode != 0 or not sig.is_file():
            raise SigningError(f"ssh-keygen -Y sign failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        return sig.read_text()


def make_key(key_file: Path, principal: str) -> str:
    """Make an Ed25519 key pair at ``key_file`` (and ``.pub``, unprotected: the lab's) unless
    it exists; returns the public key line (``ssh-ed25519 AAAA... principal``)."""
    pub = key_file.with_name(key_file.name + ".pub")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SigningError(f"ssh-keygen could not make a key: {proc.stderr.strip()[:300]}")
    return pub.read_text().strip()
