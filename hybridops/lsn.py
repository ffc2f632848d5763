"""PostgreSQL WAL positions."""

from __future__ import annotations


def parse_lsn(lsn: str | None) -> int | None:
    """``'16/B374D848'`` as a byte position; None for None or empty."""
    if not lsn:
        return None
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def format_lsn(pos: int) -> str:
    """A byte position as PostgreSQL writes an LSN: ``'16/B374D848'``."""
    return f"{pos >> 32:X}/{pos & 0xFFFFFFFF:X}"
