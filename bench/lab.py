"""A lab of a bench's own: its temp directory, its addresses and ports, its queues."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hybridops.inventory import HOME_ENV
from hybridops.lab import Lab, LabPorts


@contextmanager
def bench_lab(name: str, ports: LabPorts) -> Iterator[Lab]:
    """A lab (not up yet) under a temp directory PostgreSQL's user can traverse (it runs
    unprivileged when we are root), HybridOps' home in it and the lab's environment set, with
    queues of its own. At the end, whatever happened: the lab down, the environment as it
    was, the directory gone."""
    tmp = Path(tempfile.mkdtemp(prefix=f"hybridops-bench-{name}-", dir="/tmp"))
    tmp.chmod(0o755)
    (tmp / "home").mkdir()
    saved = dict(os.environ)
    os.environ[HOME_ENV] = str(tmp / "home")
    lab = Lab(tmp / "lab", ports, queue_suffix=f"-bench-{name}-{uuid.uuid4().hex[:8]}")
    os.environ.update(lab.env())
    try:
        yield lab
    finally:
        try:
            lab.down()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            shutil.rmtree(tmp, ignore_errors=True)
