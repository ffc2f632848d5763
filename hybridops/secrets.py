"""Secret references: workflows carry ``env:NAME`` or ``file:PATH``; activities resolve them.

A resolved secret is only ever held in memory by the activity that needs it; it never goes
into a model that Temporal records.
"""

from __future__ import annotations

import os
from pathlib import Path

from hybridops.errors import ConfigError


def resolve_secret(ref: str | None) -> str | None:
    """The secret a reference names, or None for no reference."""
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
    raise ConfigError(f"secret reference {ref!r}: scheme must be 'env:' or 'file:'")
