"""Resolving a secret reference: the kernel's ``env:`` and ``file:``, and the stores of an
explicit table, imported lazily (a store's client library loads only when a reference names
it). A value read from a store is kept :data:`CACHE_S` seconds, so the steps of one run do not
ask the store for the same secret each time, and a rotated secret is seen soon after.

Never logged, never in an error: an unresolved reference names the reference and why
(not found, denied, store unreachable), never a value.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable

from hybridops import secrets as kernel
from hybridops.errors import ConfigError, RetryableError

CACHE_S = 60.0
"""How long a value read from a store is reused."""

STORES: dict[str, str] = {
    "vault": "drivers.secrets.vault:read",
    "gcp-secret": "drivers.secrets.gcp:read",
    "azure-keyvault": "drivers.secrets.azure_keyvault:read",
}
"""Scheme to ``module:function`` reading one reference (the part after the scheme)."""

_cache: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


class SecretUnavailable(RetryableError):
    """The store did not answer (down, timed out): trying again may succeed. Names the
    reference, never a value."""


def _reader(scheme: str) -> Callable[[str, str], str]:
    module, _, name = STORES[scheme].partition(":")
    reader: Callable[[str, str], str] = getattr(importlib.import_module(module), name)
    return reader


def resolve_reference(ref: str | None) -> str | None:
    """The value a reference names, or None for no reference. :class:`ConfigError` naming the
    reference when it cannot be resolved for good (malformed, not found, denied),
    :class:`SecretUnavailable` when the store did not answer."""
    if ref is None:
        return None
    scheme, _, rest = ref.partition(":")
    if scheme in ("env", "file"):
        return kernel.resolve_reference(ref)
    if scheme not in STORES:
        raise ConfigError(
            f"secret reference {ref!r}: scheme must be one of {['env', 'file', *sorted(STORES)]}"
        )
    now = time.monotonic()
    with _lock:
        cached = _cache.get(ref)
        if cached is not None and now - cached[1] < CACHE_S:
            return cached[0]
    value = _reader(scheme)(ref, rest)
    with _lock:
        _cache[ref] = (value, time.monotonic())
    return value


def resolve_secret(ref: str | None) -> str | None:
    """The secret a reference names, or None for no reference; at least
    :data:`hybridops.secrets.MIN_SECRET_LEN` characters (:class:`ConfigError` naming the
    reference otherwise)."""
    value = resolve_reference(ref)
    if value is not None and len(value.strip()) < kernel.MIN_SECRET_LEN:
        raise ConfigError(
            f"secret reference {ref!r}: the value has {len(value.strip())} characters;"
            f" a secret has at least {kernel.MIN_SECRET_LEN}"
        )
    return value


def forget() -> None:
    """Drop every cached value (tests; a rotation that must be seen at once)."""
    with _lock:
        _cache.clear()
