"""Where the lab's parts are: the sites, their addresses and ports, the lab's files, and the
environment its processes get. Every other lab module reads these from here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hybridops.constants import FAULTS_DIR_ENV
from hybridops.contracts.base import Cloud

SITES: dict[str, Cloud | None] = {"onprem": None, "azure": Cloud.AZURE, "gcp": Cloud.GCP}
ZONE = "corp.example.com"
RECORD = "db.corp.example.com"
DBNAME = "app"
PG_USER = "hybridops-pg"
"""The unprivileged system user the servers run as when the lab runs as root."""
ALERT_TOKEN_ENV = "HYBRIDOPS_LAB_ALERT_TOKEN"
"""The environment variable holding the alert receiver's bearer token (:meth:`LabLayout.env`)."""
DNS_KEYS_ENV = "HYBRIDOPS_LAB_AWS_KEYS"
"""The environment variable holding the lab's DNS API keys (moto accepts any)."""
LAB_DNS_ENV = "HYBRIDOPS_LAB_DNS"
"""The lab's DNS backend when ``lab up`` names none and the lab never ran: ``route53`` (moto's
Route53 API, the default) or ``rfc2136`` (a real BIND taking TSIG-signed dynamic updates).
Set it to run the lab tests on BIND."""
TSIG_KEY = "hybridops-lab"
"""The name of the TSIG key the lab's BIND takes updates signed with."""


@dataclass(frozen=True)
class LabPorts:
    """Where the lab's parts listen. Tests use their own, so they never meet the demo lab."""

    net: str = "127.77.0"
    """Loopback /24 prefix; the sites take .1, .2, .3, DNS .53, monitoring .60 to .69, a
    drill's scratch server .70, the worker's metrics .71, the site agents' .72 to .74 (see
    :mod:`hybridops.lab.monitoring`), and the relays between an agent and another site's
    server .80 to .88 (:meth:`LabLayout.link_address`, :mod:`hybridops.lab.link`)."""
    pg: int = 15432
    dns: int = 15353
    temporal: int = 7233
    ui: int = 8233
    prometheus: int = 9090
    """Every Prometheus (global on .60, the sites' on .61-.63)."""
    pg_exporter: int = 9187
    cloud_exporter: int = 9188
    alertmanager: int = 9093
    alerts: int = 9095
    """The alert receiver (``hybridops serve alerts``)."""
    metrics: int = 9464
    """Each HybridOps process's metrics (``--metrics-listen``): the worker on .71, the site
    agents on .72 to .74, the receiver on its own address."""

    @property
    def worker_metrics(self) -> str:
        """``host:port`` of the worker's metrics endpoint."""
        return f"{self.net}.71:{self.metrics}"

    def agent_metrics(self, site: str) -> str:
        """``host:port`` of ``site``'s agent's metrics endpoint (a fence or promotion it runs
        is counted there, as on a production database host)."""
        return f"{self.net}.{72 + list(SITES).index(site)}:{self.metrics}"


DEFAULT_PORTS = LabPorts()
"""The demo lab's."""


def alert_token(root: Path) -> str:
    """The lab's alert token: made once, kept in ``<root>/monitoring/alert-token`` (mode 0600),
    which Alertmanager reads as its bearer credentials and :meth:`LabLayout.env` exports."""
    path = root / "monitoring" / "alert-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the lab made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


class LabLayout:
    """One lab's addresses and files, rooted at ``root`` (``.hybridops/lab`` for the demo)."""

    def __init__(self, root: Path, ports: LabPorts = DEFAULT_PORTS) -> None:
        self.root = root.absolute()
        self.ports = ports
        self.run_as = PG_USER if os.geteuid() == 0 else None
        """The servers' system user; None: they run as whoever runs the lab."""

    def ip(self, site: str) -> str:
        return f"{self.ports.net}.{list(SITES).index(site) + 1}"

    def link_address(self, observer: str, site: str) -> tuple[str, int]:
        """Where ``observer``'s agent reaches ``site``'s server: its own relay (the link between
        the two hosts), on ``net.80`` + 3 * the observer's index + the site's, the PostgreSQL
        port. An agent reaches its own host's server directly: no link to cut there."""
        sites = list(SITES)
        return f"{self.ports.net}.{80 + 3 * sites.index(observer) + sites.index(site)}", self.ports.pg

    @property
    def links_dir(self) -> Path:
        """The relays' links and which of them are cut (:mod:`hybridops.lab.link`)."""
        return self.root / "links"

    def data_dir(self, site: str) -> Path:
        return self.root / "pg" / site

    @property
    def archive(self) -> Path:
        return self.root / "wal-archive"

    @property
    def ledger(self) -> Path:
        return self.root / "writer" / "acks.log"

    @property
    def faults_dir(self) -> Path:
        """Where ``crash`` faults leave the mark that makes each fire once."""
        return self.root / "faults"

    @property
    def inventory_file(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def dns_url(self) -> str:
        """moto's Route53 server, on ``net.53``."""
        return f"http://{self.dns_ip}:{self.ports.dns}"

    @property
    def dns_ip(self) -> str:
        """Where moto's Route53 server listens: ``net.53``."""
        return f"{self.ports.net}.53"

    @property
    def bind_ip(self) -> str:
        """Where the lab's BIND listens, on the lab's DNS port: ``127.0.0.1``, because named
        listens only on the addresses of the machine's interfaces (it scans them), and the
        lab's ``net.*`` addresses are routed to loopback without being configured on it."""
        return "127.0.0.1"

    @property
    def bind_dir(self) -> Path:
        """BIND's configuration, zone file and journal (:mod:`hybridops.lab.bind`)."""
        return self.root / "bind"

    @property
    def tsig_file(self) -> Path:
        """The TSIG key's secret (base64, mode 0600), made once by the lab; the inventory
        refers to it with a ``file:`` secret reference."""
        return self.bind_dir / "tsig.secret"

    @property
    def policy_file(self) -> Path:
        """The lab's policy: ``runbooks/policy.yaml`` with its approvals off (the lab and its
        tests run unattended; production's policy asks a human before a failover)."""
        return self.root / "policy.yaml"

    def approver_key(self, name: str) -> Path:
        """A lab approver's SSH private key (``.pub`` beside it), made by ``lab up``: the lab's
        policy lists its public key among the allowed signers (``hybridops approve --sign-key``)."""
        return self.root / "approvers" / name

    @property
    def load_file(self) -> Path:
        """The on-prem load a burst reads (``hybridops lab load``)."""
        return self.root / "burst-load.json"

    @property
    def gitops_repo(self) -> Path:
        """The lab's GitOps repository (bare): the burst's desired state is committed there."""
        return self.root / "gitops.git"

    @property
    def dns_file(self) -> Path:
        """The last snapshot of the lab's DNS records (:mod:`hybridops.lab.dns_state`)."""
        return self.root / "dns.json"

    @property
    def incident_file(self) -> Path:
        """The site and time of the last ``lab break``."""
        return self.root / "incident.json"

    def env(self) -> dict[str, str]:
        """Environment for the lab's processes: where the inventory is, the lab's DNS keys,
        the alert receiver's token (made on first use, kept in a 0600 file), where crash
        faults mark that they fired."""
        return {
            "HYBRIDOPS_INVENTORY": str(self.inventory_file),
            FAULTS_DIR_ENV: str(self.faults_dir),
            DNS_KEYS_ENV: "lab:lab-secret",
            ALERT_TOKEN_ENV: alert_token(self.root),
        }
