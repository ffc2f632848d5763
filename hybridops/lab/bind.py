"""The lab's BIND: a real ``named`` (Debian's bind9) on loopback at the lab's DNS port
(:attr:`LabLayout.bind_ip`), authoritative for the lab's
zone, taking dynamic updates (RFC 2136) signed with a TSIG key the lab makes.

Unlike moto's server, BIND keeps its zone itself: every update is written to the zone's
journal before it is answered, so a ``lab down`` and ``up`` (or a killed ``named``) brings the
records back as they were, without the lab's snapshot. The zone file is written once, at the
first start; the configuration at every start (the port is the lab's).

``named`` does run as root, but like PostgreSQL it runs here as the lab's unprivileged
system user when the lab runs as root (``-u``): it binds its port as root, then drops to it.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from pathlib import Path

from drivers.postgres import binaries as pgbin
from hybridops.errors import ConfigError
from hybridops.lab.layout import RECORD, TSIG_KEY, ZONE, LabLayout
from hybridops.lab.processes import Processes

NAMED = "named"
"""BIND's server binary (``/usr/sbin/named`` from Debian's ``bind9``)."""
ZONE_TTL = 60
"""The TTL of the zone's own records (SOA, NS); the database's record has the inventory's."""


def named_binary() -> str:
    """The path of ``named``; :class:`ConfigError` saying what to install when it is missing."""
    found = shutil.which(NAMED) or shutil.which(NAMED, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise ConfigError("lab dns rfc2136: no named; install Debian's bind9 (scripts/debian-deps)")
    return found


def tsig_secret(layout: LabLayout) -> str:
    """The lab's TSIG secret (base64 of 32 random bytes): made once, kept in
    :attr:`LabLayout.tsig_file` (mode 0600)."""
    path = layout.tsig_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the lab made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return path.read_text().strip()


class LabBind:
    """The lab's ``named``: its files under :attr:`LabLayout.bind_dir`, its process ``dns``."""

    def __init__(self, layout: LabLayout, processes: Processes) -> None:
        self.layout = layout
        self.processes = processes

    @property
    def conf_file(self) -> Path:
        return self.layout.bind_dir / "named.conf"

    @property
    def zone_file(self) -> Path:
        return self.layout.bind_dir / f"{ZONE}.zone"

    def spawn(self, name: str) -> None:
        """Write the configuration (the zone file only the first time) and start ``named`` in
        the foreground as the process ``name``."""
        d = self.layout.bind_dir
        d.mkdir(parents=True, exist_ok=True)
        secret = tsig_secret(self.layout)
        if not self.zone_file.exists():
            self.zone_file.write_text(self._zone())
        fd = os.open(self.conf_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._conf(secret))
        argv = [named_binary(), "-g", "-4", "-n", "1", "-c", str(self.conf_file)]
        if self.layout.run_as is not None:
            # named drops to the user before it reads its configuration, and writes the
            # journal as the user (the lab's root is traversable: PostgreSQL's user needs it).
            for path in (d, self.conf_file, *d.glob(f"{ZONE}.zone*")):
                pgbin.chown_to(path, self.layout.run_as)
            argv += ["-u", self.layout.run_as]
        self.processes.spawn(name, argv)

    def _zone(self) -> str:
        ns = f"ns.{ZONE}."
        return "\n".join(
            [
                f"$TTL {ZONE_TTL}",
                f"@ IN SOA {ns} hostmaster.{ZONE}. 1 60 60 3600 1",
                f"@ IN NS {ns}",
                f"ns IN A {self.layout.bind_ip}",
                "",
            ]
        )

    def _conf(self, secret: str) -> str:
        d = self.layout.bind_dir
        return f"""// Written by the HybridOps lab at every start of its DNS; holds the TSIG secret (0600).
options {{
    directory "{d}";
    pid-file none;
    session-keyfile none;
    listen-on port {self.layout.ports.dns} {{ {self.layout.bind_ip}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    max-journal-size 1m;
}};
controls {{ }};
key "{TSIG_KEY}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
zone "{ZONE}" {{
    type primary;
    file "{self.zone_file}";
    // Only the lab's key may change records.
    update-policy {{ grant {TSIG_KEY} zonesub ANY; }};
}};
// {RECORD} is made by the lab through the rfc2136 driver, like any change.
"""
