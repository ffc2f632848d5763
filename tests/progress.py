"""Recording what a driver reports as progress (drivers/progress.py), as an activity would
heartbeat it, without Temporal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from drivers.progress import reporting

T = TypeVar("T")


class ProgressRecorder:
    """Runs a driver call with a listener that appends each report's first detail to
    ``reports``."""

    def __init__(self, reports: list[Any]) -> None:
        self.reports = reports

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        with reporting(lambda *details: self.reports.append(details[0])):
            return await fn(*args, **kwargs)
