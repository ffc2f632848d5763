"""Payload encryption: an AES-256-GCM :class:`~temporalio.converter.PayloadCodec` with key ids.

Every payload the data converter produces (workflow and activity inputs and results, update
arguments such as an approval's comment, signals, queries, failure details) is encrypted
before it leaves the process, so the Temporal server, its database and anyone who reads a
history see only ciphertext (DESIGN.md rule 5).

An encrypted payload is the original payload, serialised, sealed with AES-256-GCM:

* ``metadata``: ``encoding: binary/encrypted``, ``encryption-cipher: AES-256-GCM`` and
  ``encryption-key-id: <id>`` (the inventory's id of the key, never the key),
* ``data``: a fresh 12-byte nonce followed by the ciphertext and its 16-byte tag. The key id
  and cipher are authenticated too (associated data), so a payload relabelled with another
  key's id fails like a tampered one.

Rotation: new payloads use the active key; any configured key decrypts, chosen by the id in
the payload. Keep a key while any history (or any run still running) holds payloads it
encrypted.

A payload without ``encoding: binary/encrypted`` is passed through untouched: histories
written before encryption was turned on (and the stored histories in ``tests/histories/``)
must still decode and replay, and the Temporal UI starts runs with plain JSON when it has
no codec endpoint. Refusing them would break every existing run at the moment a key is
added. Encryption here is for confidentiality; who may write payloads at all is the
Temporal server's authorization, not the codec's.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec

from hybridops.errors import ConfigError, FatalError
from hybridops.inventory import CodecSettings
from hybridops.secrets import resolve_secret

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
ENCODING_KEY = "encoding"
CIPHER_KEY = "encryption-cipher"
KEY_ID_KEY = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12


class PayloadDecryptError(FatalError):
    """An encrypted payload could not be decrypted: unknown key id, or changed after sealing."""


def is_encrypted(payload: Payload) -> bool:
    """Whether ``payload`` is one this codec sealed."""
    return payload.metadata.get(ENCODING_KEY) == ENCODING


def key_id_of(payload: Payload) -> str | None:
    """The id of the key that sealed ``payload``; None for a plain payload."""
    if not is_encrypted(payload):
        return None
    return payload.metadata.get(KEY_ID_KEY, b"").decode(errors="replace")


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM with named keys: encrypts with ``active_key_id``, decrypts with any key.

    ``keys`` maps key id to 32 bytes of key material. The material stays in this object; its
    ``repr`` names only the ids.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ConfigError(f"temporal.codec.active_key_id: {active_key_id!r} is not one of the keys")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigError(f"temporal.codec.keys: key {key_id!r} is not {KEY_BYTES} bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    def __repr__(self) -> str:
        return f"EncryptionCodec(active_key_id={self.active_key_id!r}, key_ids={sorted(self._ciphers)})"

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key that can decrypt."""
        return sorted(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """``payload`` sealed with the active key."""
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), _aad(key_id))
        return Payload(
            metadata={ENCODING_KEY: ENCODING, CIPHER_KEY: CIPHER, KEY_ID_KEY: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original of a sealed payload; a plain payload as it is."""
        if not is_encrypted(payload):
            return payload
        key_id = key_id_of(payload) or ""
        cipher = payload.metadata.get(CIPHER_KEY, b"")
        if cipher != CIPHER:
            raise PayloadDecryptError(
                f"encrypted payload: cipher {cipher.decode(errors='replace')!r} is not {CIPHER.decode()}",
                key_id=key_id,
            )
        aes = self._ciphers.get(key_id)
        if aes is None:
            raise PayloadDecryptError(
                f"encrypted payload: key {key_id!r} is not configured (temporal.codec.keys has "
                f"{self.key_ids}); keep a key until no history needs it",
                key_id=key_id,
            )
        data = payload.data
        try:
            plain = aes.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(key_id))
        except InvalidTag:
            raise PayloadDecryptError(
                "encrypted payload: authentication failed (changed after encryption, or sealed "
                "by another key with the same id)",
                key_id=key_id,
            ) from None
        original = Payload()
        original.ParseFromString(plain)
        return original


def _aad(key_id: str) -> bytes:
    # The cipher and key id are bound to the ciphertext, so relabelling a payload fails.
    return CIPHER + b"|" + key_id.encode()


def load_key(ref: str, key_id: str) -> bytes:
    """The 32 key bytes a secret reference names (base64 text); errors name the key id only."""
    try:
        text = resolve_secret(ref) or ""
    except ConfigError as err:
        raise ConfigError(f"temporal.codec.keys: key {key_id!r}: {err}", key_id=key_id) from None
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"temporal.codec.keys: key {key_id!r} ({ref}) is not base64 text", key_id=key_id
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"temporal.codec.keys: key {key_id!r} ({ref}) must be {KEY_BYTES} bytes, base64-encoded "
            f"(`openssl rand -base64 32`); it is {len(key)} bytes",
            key_id=key_id,
        )
    return key


def codec_for(settings: CodecSettings) -> EncryptionCodec | None:
    """The inventory's codec: None when no key is configured (payloads stay plain JSON)."""
    if not settings.enabled:
        return None
    assert settings.active_key_id is not None  # the settings' validator guarantees it
    keys = {k.id: load_key(k.key_ref, k.id) for k in settings.keys}
    return EncryptionCodec(keys, settings.active_key_id)


def new_key() -> str:
    """32 random bytes as base64 text: material for a new key."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


# ---------------------------------------------------------------------- histories


async def decode_history(history: WorkflowHistory, codec: PayloadCodec) -> WorkflowHistory:
    """A copy of ``history`` with every payload decoded and every encoded failure message
    restored, so the audit (replay, timeline) reads it as if it had never been encrypted."""
    return await map_history_payloads(history, codec.decode, restore_failures=True)


async def map_history_payloads(
    history: WorkflowHistory,
    convert: Callable[[Sequence[Payload]], Awaitable[list[Payload]]],
    restore_failures: bool = False,
) -> WorkflowHistory:
    """A copy of ``history`` with every payload replaced by ``convert``'s answer for it."""
    events = []
    for event in history.events:
        copy = type(event)()
        copy.CopyFrom(event)
        await _convert_in(copy, convert, restore_failures)
        events.append(copy)
    return WorkflowHistory(history.workflow_id, events)


async def _convert_in(
    message: Message, convert: Callable[[Sequence[Payload]], Awaitable[list[Payload]]], restore_failures: bool
) -> None:
    # Every Payload field, wherever it sits (inputs, results, headers, memo, failure
    # details), repeated or in a map: the history's schema grows, a walk keeps up.
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            items: list[Any] = [value]
        elif hasattr(value, "keys"):  # a map field
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                (converted,) = await convert([item])
                item.CopyFrom(converted)
            elif isinstance(item, Message):
                await _convert_in(item, convert, restore_failures)
    if restore_failures and isinstance(message, Failure) and message.HasField("encoded_attributes"):
        _restore_failure_text(message)


def _restore_failure_text(failure: Failure) -> None:
    # What DefaultFailureConverterWithEncodedAttributes moved out of the message.
    payload = failure.encoded_attributes
    if payload.metadata.get(ENCODING_KEY) != b"json/plain":
        return
    try:
        attrs = json.loads(payload.data)
    except ValueError:
        return
    if isinstance(attrs, dict):
        failure.message = str(attrs.get("message", failure.message))
        failure.stack_trace = str(attrs.get("stack_trace", failure.stack_trace))
        failure.ClearField("encoded_attributes")
