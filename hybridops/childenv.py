"""The environment of every child process HybridOps starts: built from one allow-list.

The worker's environment holds its credentials (the DNS provider's keys, Temporal's API key,
the webhook token). A child that inherited it would hand them on: a PostgreSQL superuser can
read the server's ``/proc/<pid>/environ`` (``pg_read_file``, ``COPY ... FROM PROGRAM``), and a
tool's plugin or crash dump shows its whole environment. So no child inherits the worker's
environment: each gets :data:`SAFE_ENV`, the few names its tool needs from the worker's
(``inherited``), and what the caller sets for it (``plain``, and the secrets it resolved for
that call alone). Only the lab's own HybridOps processes (server, worker, writer) are started
with the whole environment: they are the worker's peers, and they need its settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

SAFE_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
"""Variables of the worker's environment every child may see: none is a credential."""
PG_CLIENT_ENV = (
    "PGPASSFILE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
)
"""libpq's settings a PostgreSQL client tool (``pg_basebackup``, ``pg_rewind``) may take from
the worker: paths and modes, never a password (``PGPASSWORD`` is set per call from the site's
``password_ref``). Never given to a server."""


def child_environment(
    plain: Mapping[str, str] | None = None, inherited: Iterable[str] = ()
) -> dict[str, str]:
    """A child's whole environment: :data:`SAFE_ENV` and ``inherited`` from the worker's, then
    ``plain`` (the caller's settings and the secrets it resolved for this child)."""
    env = {k: os.environ[k] for k in (*SAFE_ENV, *inherited) if k in os.environ}
    env.update(plain or {})
    return env
