"""Signed approvals (DESIGN.md rule 15): an approval is proved by the approver's SSH key, the
way git signs commits, not by the identity header its client stamps (a claim, for display).

The approver signs a canonical message (:func:`approval_message`) naming the run (workflow id
and run id), the decision, the verdict, the safety rule overridden (break glass) and the
signing time, with ``ssh-keygen -Y sign -n hybridops-approval`` (:func:`hybridops.sshkeygen.sign`,
the CLI's side: the private key never leaves the approver's machine). The worker rebuilds the message from
the run's own ids and verifies the signature (:func:`verify_approval`) against the policy's
allowed signers (``approvers.signers``), in the workflow (pure and deterministic: the same
answer on replay), as ``hybridops audit verify`` does again offline from the history.

A signature for another run or decision does not verify (the message differs); an old one is
refused by its age, one already used in the run as replayed (the workflow keeps them).
Keys: Ed25519 or RSA (what the ``sshsig`` package verifies); Ed25519 is what we make.

Pure (no I/O, no clock): workflows may import it (tests/unit/test_layers.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import sshsig
from sshsig.ssh_public_key import ssh_key_fingerprint_sha256_str

NAMESPACE = "hybridops-approval"
"""The ``ssh-keygen -n`` namespace: a signature made for git (or anything else) is not one."""
MESSAGE_VERSION = "hybridops-approval v1"
MAX_SIGNATURE_CHARS = 4000
"""An armored SSHSIG: about 300 characters for Ed25519, under 1500 for RSA 4096."""
CLOCK_SKEW = timedelta(seconds=60)
"""How far in the worker's future a signing time may be (the approver's clock runs ahead)."""


def approval_message(
    workflow_id: str,
    run_id: str,
    decision_id: str | None,
    approve: bool,
    override: str | None,
    signed_at: datetime,
) -> bytes:
    """The exact bytes an approver signs: one ``name: value`` line each, in this order."""
    lines = [
        MESSAGE_VERSION,
        f"workflow_id: {workflow_id}",
        f"run_id: {run_id}",
        f"decision_id: {decision_id or '-'}",
        f"verdict: {'approve' if approve else 'reject'}",
        f"override: {override or '-'}",
        f"signed_at: {utc_text(signed_at)}",
    ]
    return ("\n".join(lines) + "\n").encode()


OPERATOR_VERSION = "hybridops-operator v1"
"""The first line of an operator action's message: an approval's signature is never one (and
the other way round), whatever else the two messages share."""


def operator_message(
    workflow_id: str,
    run_id: str,
    action: str,
    step: str | None,
    comment: str,
    signed_at: datetime,
) -> bytes:
    """The exact bytes an operator signs to pause, resume, retry or skip a run (issue 20
    item 4): the run, the action, the step it acts on (``-`` for pause and resume), a digest
    of the comment (a skip's why is bound too, without putting free text on a line of its
    own), and the signing time. One line each, in this order."""
    lines = [
        OPERATOR_VERSION,
        f"workflow_id: {workflow_id}",
        f"run_id: {run_id}",
        f"action: {action}",
        f"step: {step or '-'}",
        f"comment_sha256: {hashlib.sha256(comment.encode()).hexdigest()}",
        f"signed_at: {utc_text(signed_at)}",
    ]
    return ("\n".join(lines) + "\n").encode()


def utc_text(at: datetime) -> str:
    """``at`` as UTC ISO-8601 to the second, ``Z``-suffixed (a naive time is taken as UTC)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(public_key: str) -> str:
    """``SHA256:...`` of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    return ssh_key_fingerprint_sha256_str(sshsig.PublicKey.from_openssh_str(public_key))


def signer_of(message: bytes, signature: str, signers: Mapping[str, str]) -> tuple[str | None, str]:
    """The principal of ``signers`` (principal to public key line) whose key made
    ``signature`` over ``message`` in our namespace, and a reason when none did."""
    try:
        key = sshsig.check_signature(message, signature, NAMESPACE)
    except (sshsig.InvalidSignature, ValueError, NotImplementedError) as err:
        return None, (
            f"signature: does not verify for this run and what it says (decision and verdict, or"
            f" action and step) ({err or 'invalid'})"
        )
    for principal, line in signers.items():
        try:
            if sshsig.PublicKey.from_openssh_str(line) == key:
                return principal, ""
        except (ValueError, NotImplementedError):
            continue
    return None, f"signature: made by a key not in approvers.signers ({fingerprint(key.openssh_str())})"


def verify_approval(
    message: bytes,
    signature: str,
    signed_at: datetime,
    now: datetime,
    max_age: timedelta,
    signers: Mapping[str, str],
) -> tuple[str | None, str]:
    """``(principal, "")`` when ``signature`` is an allowed signer's over ``message``, signed at
    most ``max_age`` before ``now`` and not in its future (:data:`CLOCK_SKEW`); else
    ``(None, why)``. Pure: the workflow calls it with ``workflow.now()``."""
    if len(signature) > MAX_SIGNATURE_CHARS:
        return None, f"signature: longer than {MAX_SIGNATURE_CHARS} characters"
    signed = signed_at.replace(tzinfo=UTC) if signed_at.tzinfo is None else signed_at
    if signed > now + CLOCK_SKEW:
        return None, f"signature: signed at {utc_text(signed)}, in the future of the run ({utc_text(now)})"
    if now - signed > max_age:
        return None, (
            f"signature: expired (signed at {utc_text(signed)}, more than"
            f" {max_age.total_seconds():.0f} s ago: approvers.signature_max_age_s)"
        )
    return signer_of(message, signature, signers)
