"""Secret references: workflows carry ``env:NAME`` or ``file:PATH``; activities resolve them.

A resolved secret is only ever held in memory by the activity that needs it; it never goes
into a model that Temporal records. A secret is at least :data:`MIN_SECRET_LEN` characters:
a shorter one is refused (it could not be told apart from ordinary text to redact it, and it
would be guessed). Values that may be plain settings (``WALG_COMPRESSION_METHOD=lz4`` among
wal-g's variables) are read with :func:`resolve_reference`, which has no such floor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hybridops.errors import ConfigError

SCHEMES = ("env", "file")
"""The kinds of secret reference (``SCHEME:...``) :func:`resolve_reference` knows."""

MIN_SECRET_LEN = 8
"""The shortest secret accepted, and the shortest text redacted: shorter values are settings
(``lz4``, ``1``), and redacting them would mangle every message."""


def resolve_reference(ref: str | None) -> str | None:
    """The value a reference names (``env:NAME``, ``file:PATH``), or None for no reference."""
    if ref is None:
        return None
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise ConfigError(f"secret reference {ref!r}: environment variable {rest} is not set")
        return value
    if scheme == "file":
        try:
            return Path(rest).read_text().strip()
        except OSError as err:
            raise ConfigError(f"secret reference {ref!r}: {err.strerror}") from None
    raise ConfigError(
        f"secret reference {ref!r}: scheme must be one of {', '.join(s + ':' for s in SCHEMES)}"
    )


def resolve_secret(ref: str | None) -> str | None:
    """The secret a reference names, or None for no reference. :class:`ConfigError` naming the
    reference (never the value) when the value is shorter than :data:`MIN_SECRET_LEN`."""
    value = resolve_reference(ref)
    if value is not None and len(value.strip()) < MIN_SECRET_LEN:
        raise ConfigError(
            f"secret reference {ref!r}: the value has {len(value.strip())} characters;"
            f" a secret has at least {MIN_SECRET_LEN}"
        )
    return value


def secret_forms(secret: str) -> Iterator[str]:
    """Every form in which ``secret`` may show up in a tool's output, to redact them all: the
    value, its JSON-escaped form (a tool printing it inside JSON), and, for a multi-line
    secret (a PEM block, JSON credentials), each line of it; for JSON credentials, every
    string value in them and each line of those (a service account's ``private_key``). Forms
    shorter than :data:`MIN_SECRET_LEN` are left out."""
    forms = [secret, secret.strip()]
    parsed = _json(secret)
    if parsed is not None:
        forms += list(_strings(parsed))
    for form in list(forms):
        forms.append(json.dumps(form)[1:-1])
        forms += [line.strip() for line in form.splitlines()]
    seen: set[str] = set()
    for form in forms:
        if len(form) >= MIN_SECRET_LEN and form not in seen:
            seen.add(form)
            yield form


def redaction_list(secrets: Iterable[str]) -> list[str]:
    """All forms of all ``secrets`` (:func:`secret_forms`), longest first, so that a longer
    form is replaced before a line inside it and nothing is left half-shown."""
    forms = {form for secret in secrets if secret for form in secret_forms(secret)}
    return sorted(forms, key=len, reverse=True)


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def references(model: BaseModel, at: str = "") -> list[tuple[str, str]]:
    """Every secret reference in ``model``: (its key, the reference)."""
    found: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{at}{name}"
        if isinstance(value, BaseModel):
            found += references(value, key + ".")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    found += references(v, f"{key}.{k}.")
                elif isinstance(v, str) and (name.startswith("secret") or name.endswith("_refs")):
                    found.append((f"{key}.{k}", v))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    found += references(v, f"{key}[{i}].")
        elif isinstance(value, str) and name.endswith("_ref"):
            found.append((key, value))
    return found
