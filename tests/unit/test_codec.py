"""The AES-256-GCM payload codec: round trip, key ids, rotation, tampering, plain payloads."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from hybridops.audit.histories import HistorySource, decrypted
from hybridops.client import DATA_CONVERTER, data_converter
from hybridops.codec import (
    CIPHER_KEY,
    ENCODING,
    KEY_ID_KEY,
    EncryptionCodec,
    PayloadDecryptError,
    codec_for,
    decode_history,
    key_id_of,
    map_history_payloads,
    new_key,
)
from hybridops.contracts.base import ApprovalInput
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import ConfigError
from hybridops.inventory import CodecSettings, TemporalSettings

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
SECRET_REASON = "codec-unit-reason-7f3a"


def _plain(text: str = SECRET_REASON) -> Payload:
    (payload,) = DATA_CONVERTER.payload_converter.to_payloads([FailoverInput(reason=text)])
    return payload


async def test_round_trip_restores_the_payload_and_hides_the_text() -> None:
    codec = EncryptionCodec({"a": KEY_A}, "a")
    plain = _plain()
    (sealed,) = await codec.encode([plain])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[CIPHER_KEY] == b"AES-256-GCM"
    assert SECRET_REASON.encode() not in sealed.SerializeToString()
    (opened,) = await codec.decode([sealed])
    assert opened == plain


async def test_the_key_id_is_in_the_metadata_and_nonces_differ() -> None:
    codec = EncryptionCodec({"a": KEY_A}, "a")
    first, second = await codec.encode([_plain(), _plain()])
    assert first.metadata[KEY_ID_KEY] == b"a" and key_id_of(first) == "a"
    assert first.data[:12] != second.data[:12]  # a fresh nonce per payload
    assert KEY_A not in first.SerializeToString()


async def test_rotation_old_payloads_decrypt_new_ones_use_the_new_key() -> None:
    before = EncryptionCodec({"a": KEY_A}, "a")
    (old,) = await before.encode([_plain("sealed with a")])
    after = EncryptionCodec({"a": KEY_A, "b": KEY_B}, "b")
    (new,) = await after.encode([_plain("sealed with b")])
    assert key_id_of(old) == "a" and key_id_of(new) == "b"
    assert await after.decode([old, new]) == [_plain("sealed with a"), _plain("sealed with b")]
    # Dropping key a too early is a clear error naming it, not garbage.
    only_b = EncryptionCodec({"b": KEY_B}, "b")
    with pytest.raises(PayloadDecryptError, match=r"key 'a' is not configured"):
        await only_b.decode([old])


async def test_a_tampered_payload_fails() -> None:
    codec = EncryptionCodec({"a": KEY_A, "b": KEY_B}, "a")
    (sealed,) = await codec.encode([_plain()])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptError, match="authentication failed"):
        await codec.decode([flipped])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_KEY] = b"b"
    with pytest.raises(PayloadDecryptError, match=r"authentication failed.*key_id=b"):
        await codec.decode([relabelled])
    other_cipher = Payload()
    other_cipher.CopyFrom(sealed)
    other_cipher.metadata[CIPHER_KEY] = b"AES-128-CBC"
    with pytest.raises(PayloadDecryptError, match="cipher"):
        await codec.decode([other_cipher])


async def test_a_plain_payload_passes_through_untouched() -> None:
    """Histories from before encryption was turned on must still decode (and replay)."""
    codec = EncryptionCodec({"a": KEY_A}, "a")
    plain = _plain()
    assert await codec.decode([plain]) == [plain]


async def test_the_data_converter_encrypts_a_model_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDOPS_TEST_KEY_A", base64.b64encode(KEY_A).decode())
    settings = TemporalSettings(
        codec=CodecSettings.model_validate(
            {"keys": [{"id": "a", "key_ref": "env:HYBRIDOPS_TEST_KEY_A"}], "active_key_id": "a"}
        )
    )
    conv = data_converter(settings)
    (sealed,) = await conv.encode([ApprovalInput(by="alice", comment=SECRET_REASON)])
    assert SECRET_REASON.encode() not in sealed.SerializeToString()
    (back,) = await conv.decode([sealed], [ApprovalInput])
    assert back == ApprovalInput(by="alice", comment=SECRET_REASON)
    assert data_converter(TemporalSettings()) is DATA_CONVERTER  # no key: no codec, as before


def test_key_material_errors_name_the_key_never_the_material(monkeypatch: pytest.MonkeyPatch) -> None:
    short = base64.b64encode(b"x" * 16).decode()
    monkeypatch.setenv("HYBRIDOPS_TEST_SHORT", short)
    settings = CodecSettings.model_validate(
        {"keys": [{"id": "short", "key_ref": "env:HYBRIDOPS_TEST_SHORT"}], "active_key_id": "short"}
    )
    with pytest.raises(ConfigError, match=r"key 'short'.*must be 32 bytes.*16 bytes") as err:
        codec_for(settings)
    assert short not in str(err.value)
    monkeypatch.setenv("HYBRIDOPS_TEST_SHORT", "not base64 at all!")
    with pytest.raises(ConfigError, match=r"key 'short'.*not base64"):
        codec_for(settings)
    monkeypatch.delenv("HYBRIDOPS_TEST_SHORT")
    with pytest.raises(
        ConfigError, match=r"temporal.codec.keys: key 'short'.*HYBRIDOPS_TEST_SHORT is not set"
    ):
        codec_for(settings)
    monkeypatch.setenv("HYBRIDOPS_TEST_SHORT", new_key())
    codec = codec_for(settings)
    assert codec is not None and "short" in repr(codec)


def test_settings_refuse_an_active_key_that_is_not_listed() -> None:
    key = {"id": "a", "key_ref": "env:X"}
    with pytest.raises(ValueError, match=r"active_key_id: 'b' is not one of the keys"):
        CodecSettings.model_validate({"keys": [key], "active_key_id": "b"})
    with pytest.raises(ValueError, match=r"active_key_id: required"):
        CodecSettings.model_validate({"keys": [key]})
    with pytest.raises(ValueError, match=r"duplicate id 'a'"):
        CodecSettings.model_validate({"keys": [key, key], "active_key_id": "a"})
    with pytest.raises(ValueError, match=r"ui_origins"):
        CodecSettings.model_validate({"ui_origins": ["127.0.0.1:8233"]})
    assert codec_for(CodecSettings()) is None


def _stored_history() -> WorkflowHistory:
    path = Path(__file__).parents[1] / "histories" / "failover-approved.history.json"
    return WorkflowHistory.from_json("failover-approved", path.read_text())


async def test_a_sealed_history_decodes_back_to_the_original() -> None:
    original = _stored_history()
    codec = EncryptionCodec({"a": KEY_A}, "a")
    sealed = await map_history_payloads(original, codec.encode)
    wire = b"".join(e.SerializeToString() for e in sealed.events)
    assert b"json/plain" not in wire and b"alice" in b"".join(e.SerializeToString() for e in original.events)
    assert b"alice" not in wire
    assert (await decode_history(sealed, codec)).events == original.events


async def test_the_audit_names_a_history_whose_key_is_gone() -> None:
    """How an operator finds out a retired key is still needed (runbooks/security.md)."""
    sealed = await map_history_payloads(_stored_history(), EncryptionCodec({"a": KEY_A}, "a").encode)
    src = HistorySource("file", "failover-approved", sealed)
    opened = await decrypted(src, EncryptionCodec({"a": KEY_A, "b": KEY_B}, "b"))
    assert opened.history is not None and opened.sealed is sealed and not opened.error
    lost = await decrypted(src, EncryptionCodec({"b": KEY_B}, "b"))
    assert lost.history is None and "key 'a' is not configured" in lost.error
    assert await decrypted(src, None) is src
