"""Signed approvals' kernel (hybridops/signing.py): the message, signing with ssh-keygen and
verifying with sshsig against allowed signers, for this run and decision only, not too old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hybridops.errors import ConfigError
from hybridops.policy import parse_policy
from hybridops.signing import NAMESPACE, approval_message, operator_message, verify_approval
from hybridops.sshkeygen import SigningError, make_key, sign

AT = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=15)


def _message(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "workflow_id": "failover-1",
        "run_id": "run-1",
        "decision_id": "dec-0123456789abcdef",
        "approve": True,
        "override": None,
        "signed_at": AT,
    }
    fields.update(changes)
    return approval_message(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("keys")
    return {name: (root / name, make_key(root / name, name)) for name in ("bob", "mallory")}


def _verify(keys: dict[str, tuple[Path, str]], message: bytes, signature: str, **kw: object):  # type: ignore[no-untyped-def]
    signers = {"bob": keys["bob"][1]}
    return verify_approval(
        message,
        signature,
        kw.get("signed_at", AT),  # type: ignore[arg-type]
        kw.get("now", AT + timedelta(seconds=30)),  # type: ignore[arg-type]
        MAX_AGE,
        signers,
    )


def test_message_is_canonical() -> None:
    text = _message(override="single_writer", approve=False, decision_id=None).decode()
    assert text.splitlines() == [
        "hybridops-approval v1",
        "workflow_id: failover-1",
        "run_id: run-1",
        "decision_id: -",
        "verdict: reject",
        "override: single_writer",
        "signed_at: 2025-03-01T12:00:00Z",
    ]
    # The same instant in another zone, or with microseconds, is the same message.
    other = AT.astimezone(timezone(timedelta(hours=2))) + timedelta(microseconds=999)
    assert _message(signed_at=other) == _message()


def test_valid_signature_names_its_signer(keys: dict[str, tuple[Path, str]]) -> None:
    sig = sign(_message(), keys["bob"][0])
    assert sig.startswith("-----BEGIN SSH SIGNATURE-----") and "PRIVATE" not in sig
    assert _verify(keys, _message(), sig) == ("bob", "")


@pytest.mark.parametrize(
    "changes",
    [
        {"workflow_id": "failover-2"},
        {"run_id": "run-2"},
        {"decision_id": "dec-ffffffffffffffff"},
        {"approve": False},
        {"override": "single_writer"},
        {"signed_at": AT + timedelta(seconds=1)},
    ],
    ids=["other-workflow", "other-run", "other-decision", "other-verdict", "override", "other-time"],
)
def test_a_signature_for_anything_else_does_not_verify(
    keys: dict[str, tuple[Path, str]], changes: dict[str, object]
) -> None:
    sig = sign(_message(), keys["bob"][0])
    signer, why = _verify(keys, _message(**changes), sig)
    assert signer is None and "does not verify" in why


def test_expired_and_future_signatures_are_refused(keys: dict[str, tuple[Path, str]]) -> None:
    sig = sign(_message(), keys["bob"][0])
    signer, why = _verify(keys, _message(), sig, now=AT + MAX_AGE + timedelta(seconds=1))
    assert signer is None and "expired" in why
    signer, why = _verify(keys, _message(), sig, now=AT - timedelta(minutes=5))
    assert signer is None and "future" in why


def test_a_key_not_among_the_signers_is_refused(keys: dict[str, tuple[Path, str]]) -> None:
    sig = sign(_message(), keys["mallory"][0])
    signer, why = _verify(keys, _message(), sig)
    assert signer is None and "not in approvers.signers" in why and "SHA256:" in why


def test_tampered_or_foreign_signatures_are_refused(
    keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    sig = sign(_message(), keys["bob"][0])
    lines = sig.splitlines()
    body = lines[1]
    lines[1] = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    assert _verify(keys, _message(), "\n".join(lines))[0] is None
    assert _verify(keys, _message(), "not a signature")[0] is None
    # Signed by bob for git, not for approvals: another namespace.
    msg = tmp_path / "m"
    msg.write_bytes(_message())
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-q", "-f", str(keys["bob"][0]), "-n", "git", str(msg)], check=True
    )
    signer, why = _verify(keys, _message(), (tmp_path / "m.sig").read_text())
    assert signer is None and "does not verify" in why
    assert NAMESPACE != "git"


def test_signing_with_no_key_fails_without_leaking(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="ssh-keygen"):
        sign(_message(), tmp_path / "absent")


def test_policy_signers_are_validated(keys: dict[str, tuple[Path, str]]) -> None:
    policy = parse_policy(
        {"approvers": {"require_signature": True, "signers": {"bob": {"key": keys["bob"][1]}}}}
    )
    assert policy.approvers.signers["bob"].key == keys["bob"][1]
    with pytest.raises(ConfigError, match="signers"):
        parse_policy({"approvers": {"signers": {"bob": {"key": "ssh-ed25519 garbage"}}}})
    with pytest.raises(ConfigError, match="signers"):
        parse_policy({"approvers": {"signers": {"bob smith": {"key": keys["bob"][1]}}}})
    # A policy without signatures digests as it did before they existed.
    assert parse_policy({}).later_defaults()["approvers"] == {
        "signers",
        "require_signature",
        "signature_max_age_s",
    }


def _operator(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "workflow_id": "failover-1",
        "run_id": "run-1",
        "action": "retry",
        "step": "repoint_apps",
        "comment": "",
        "signed_at": AT,
    }
    fields.update(changes)
    return operator_message(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"workflow_id": "failover-2"},
        {"run_id": "run-2"},
        {"action": "skip"},
        {"step": "dns_cutover"},
        {"comment": "a different why"},
        {"signed_at": AT + timedelta(seconds=1)},
    ],
    ids=["other-workflow", "other-run", "other-action", "other-step", "other-comment", "other-time"],
)
def test_an_operator_signature_binds_run_action_step_comment_and_time(
    keys: dict[str, tuple[Path, str]], changes: dict[str, object]
) -> None:
    sig = sign(_operator(), keys["bob"][0])
    assert _verify(keys, _operator(), sig) == ("bob", "")
    signer, why = _verify(keys, _operator(**changes), sig)
    assert signer is None and "does not verify" in why


def test_an_approval_signature_is_never_an_operator_action(keys: dict[str, tuple[Path, str]]) -> None:
    assert _operator().splitlines()[0] == b"hybridops-operator v1"
    assert _operator(step=None).decode().splitlines()[4] == "step: -"
    sig = sign(_message(), keys["bob"][0])
    assert _verify(keys, _operator(), sig)[0] is None
