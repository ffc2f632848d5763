"""What the receiver refuses before it acts: a weak bearer token at start, and more new runs a
minute than its budget allows.

Pure code (the clock is injected), so the unit tests cover it without a server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hybridops.errors import ConfigError

MIN_TOKEN_LEN = 32
"""A bearer token shorter than this is refused at start (``secrets.token_urlsafe(24)`` is 32)."""
MIN_TOKEN_DISTINCT = 10
"""...and one with fewer distinct characters than this (``aaaa...``, ``abab...``): a random
token of 32 characters from 16 or more symbols has this many with near certainty."""
TOKEN_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_token(token: str, key: str = "alerts.token_ref") -> None:
    """Refuse a token that could be guessed: a ConfigError naming ``key`` and what is wrong.

    The token is the only thing between the network and a failover; the message never shows it.
    """
    if not token:
        raise ConfigError(f"{key}: the token it names is empty")
    if len(token) < MIN_TOKEN_LEN:
        raise ConfigError(
            f"{key}: the token is {len(token)} characters; at least {MIN_TOKEN_LEN} are needed"
            f" (make one with: {TOKEN_HINT})"
        )
    distinct = len(set(token))
    if distinct < MIN_TOKEN_DISTINCT:
        raise ConfigError(
            f"{key}: the token has only {distinct} distinct characters; at least"
            f" {MIN_TOKEN_DISTINCT} are needed (make one with: {TOKEN_HINT})"
        )


class StartBudget:
    """A token bucket of run starts: ``per_minute`` starts a minute on average, and at most
    ``per_minute`` at once after a quiet spell.

    A start takes one (:meth:`take`); a start that turned out to be a duplicate gives it back
    (:meth:`give_back`), so resends and restarts of known incidents never use the budget. Not
    thread-safe: one asyncio loop owns it.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_minute > 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute!r}")
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def take(self) -> bool:
        """Take one start if the budget has one; False (taking nothing) otherwise."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def give_back(self) -> None:
        """Return a start taken for what turned out not to be a new run."""
        self._tokens = min(self.capacity, self._tokens + 1)

    def retry_after(self) -> int:
        """Whole seconds until the next start is in the budget (at least 1)."""
        self._refill()
        return max(1, math.ceil((1 - self._tokens) / self._rate))
