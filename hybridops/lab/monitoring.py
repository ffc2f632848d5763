"""The lab's monitoring: a Prometheus per site, a global Prometheus federating them, Alertmanager.

What runs (each a process of its own, started through :mod:`hybridops.lab.processes`, so
``lab down`` stops it and ``lab status`` lists it), on the lab's loopback /24 ``net`` (fixed
ports, one address each, so two labs on two nets never collide):

=================  ==========================  =============================================
address            process                     what
=================  ==========================  =============================================
``net.60:9090``    ``prometheus-global``       federates the sites, evaluates the alert rules
``net.61-63:9090`` ``prometheus-<site>``       onprem, azure, gcp: scrape their exporters
``net.64-66:9187`` ``pg-exporter-<site>``      prometheus-postgres-exporter per database
``net.67:9188``    ``cloud-exporter``          :mod:`hybridops.lab.cloud_exporter`
``net.68:9093``    ``alertmanager``            routes every alert to the receiver
``net.69:9095``    ``alert-receiver``          ``hybridops serve alerts`` (metrics on ``:9464``)
``net.71:9464``    (the lab's ``worker``)      the worker's metrics, scraped by the global one
``net.72-74:9464`` (``agent-<site>``)          each site agent's metrics, scraped by the global one
=================  ==========================  =============================================

The configurations are rendered from ``infra/prometheus/`` into ``<lab>/monitoring/``; the rules
are used as they are. The Debian packages ``prometheus``, ``prometheus-alertmanager`` and
``prometheus-postgres-exporter`` provide the binaries; without them the lab runs without
monitoring (:meth:`Monitoring.missing` says what is absent).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path
from string import Template

from hybridops.contracts.decision import SignalName
from hybridops.errors import ConfigError
from hybridops.inventory import AlertsSettings, SignalsKind, SignalSource, SignalsSettings
from hybridops.lab.layout import ALERT_TOKEN_ENV, SITES, LabLayout, alert_token
from hybridops.lab.processes import LabError, Processes, answers, wait_until

INFRA = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
"""The templates, rules and exporter queries (``infra/prometheus/`` in the repository)."""

BINARIES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "postgres-exporter": ("prometheus-postgres-exporter", "postgres_exporter"),
}
"""Each tool, by the names it has in Debian's packages and upstream's tarballs."""

# The lab's intervals: one second, so an alert fires within seconds of a kill. The production
# values are in the templates' comments.
SCRAPE_INTERVAL = "1s"
SCRAPE_TIMEOUT = "900ms"
PG_SCRAPE_INTERVAL = "2s"
"""postgres-exporter 0.11 takes a full second to answer while its database is down."""
PG_SCRAPE_TIMEOUT = "1500ms"
LIVENESS_INTERVAL = "100ms"
"""The agents' liveness views: the failover alert's input (its rule group evaluates as often)."""
LIVENESS_TIMEOUT = "90ms"

PG_EXPORTER_FLAGS = (
    # pg_stat_bgwriter lost its checkpoint columns in PostgreSQL 17 (they moved to
    # pg_stat_checkpointer): the collector fails on every scrape against PostgreSQL 18.
    "--no-collector.bgwriter",
    # ~300 pg_settings_* series per server that nothing here reads.
    "--disable-settings-metrics",
)

QUERIES: dict[SignalName, str] = {
    # 1 when the database answers and is in recovery, 0 when it answers as a primary or is
    # down (pg_up 0); nothing (missing) when its exporter does not answer.
    SignalName.STANDBY_UP: (
        'pg_up{site="{site}"} * on(site) hybridops_pg_in_recovery{site="{site}"}'
        ' or on(site) pg_up{site="{site}"} * 0'
    ),
    # Against the furthest WAL position any answering server knows (the primary's insert
    # position while it answers, else the furthest a standby received).
    SignalName.LAG_BYTES: (
        "clamp_min(max(hybridops_pg_wal_position_bytes)"
        ' - on() hybridops_pg_wal_replayed_bytes{site="{site}"}, 0)'
    ),
    SignalName.LAG_SECONDS: 'hybridops_pg_replay_lag_seconds{site="{site}"}',
    SignalName.LATENCY_MS: 'hybridops_app_latency_seconds{cloud="{cloud}"} * 1000',
    SignalName.ERROR_RATE: 'hybridops_app_error_ratio{cloud="{cloud}"}',
    SignalName.CAPACITY: 'hybridops_cloud_capacity_free_nodes{cloud="{cloud}"}',
    SignalName.CREDITS: 'hybridops_cloud_credits_available{cloud="{cloud}"}',
    SignalName.HOURLY_COST: 'hybridops_cloud_hourly_cost{cloud="{cloud}"}',
    SignalName.SLO_SCORE: 'hybridops_slo_score{cloud="{cloud}"}',
    # The candidate's own agent's view of the primary (the liveness job scrapes the agents).
    SignalName.PRIMARY_SILENT_S: 'max(hybridops_liveness_primary_silent_seconds{observer="{site}"})',
}
"""PromQL per signal for the global Prometheus; ``{site}`` and ``{cloud}`` are replaced as text
by the signals driver. Each gives at most one sample per candidate."""

HOSTS = {"prometheus-global": 60, "cloud-exporter": 67, "alertmanager": 68, "alert-receiver": 69}
SITE_HOSTS = {"prometheus": 61, "pg-exporter": 64}
"""Last octet on the lab's net: fixed, the sites' own take base + their index (0, 1, 2)."""


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def _json(value: object) -> str:
    """A value for a YAML template: JSON is YAML."""
    return json.dumps(value)


class Monitoring:
    """The monitoring processes of one lab."""

    def __init__(self, layout: LabLayout, processes: Processes) -> None:
        self.layout = layout
        self.processes = processes
        self.dir = layout.root / "monitoring"

    # ------------------------------------------------------------------ layout

    @staticmethod
    def missing() -> list[str]:
        """The tools that are not installed (empty when monitoring can run)."""
        return [tool for tool, names in BINARIES.items() if _which(names) is None]

    @staticmethod
    def wanted(monitoring: bool | None) -> bool:
        """Whether to run monitoring: ``None`` means "if installed"; ``True`` when it is not
        installed is a :class:`ConfigError` naming what is missing."""
        missing = Monitoring.missing()
        if monitoring is None:
            return not missing
        if monitoring and missing:
            raise ConfigError(
                f"monitoring: not installed: {', '.join(missing)}"
                " (apt-get install prometheus prometheus-alertmanager prometheus-postgres-exporter)"
            )
        return monitoring

    @staticmethod
    def sites() -> dict[str, str | None]:
        return {site: (cloud.value if cloud else None) for site, cloud in SITES.items()}

    def host(self, name: str, site: str | None = None) -> str:
        """The address of a part: ``host("alertmanager")``, ``host("prometheus", "azure")``."""
        if site is None:
            return f"{self.layout.ports.net}.{HOSTS[name]}"
        return f"{self.layout.ports.net}.{SITE_HOSTS[name] + list(self.sites()).index(site)}"

    def address(self, name: str, site: str | None = None) -> str:
        """``host:port`` of a part."""
        ports = self.layout.ports
        port = {
            "prometheus-global": ports.prometheus,
            "prometheus": ports.prometheus,
            "pg-exporter": ports.pg_exporter,
            "cloud-exporter": ports.cloud_exporter,
            "alertmanager": ports.alertmanager,
            "alert-receiver": ports.alerts,
        }[name]
        return f"{self.host(name, site)}:{port}"

    def metrics_address(self, name: str) -> str:
        """``host:port`` of a HybridOps process's metrics endpoint (``alert-receiver``)."""
        return f"{self.host(name)}:{self.layout.ports.metrics}"

    @property
    def prometheus_url(self) -> str:
        """The global Prometheus, which the signals driver queries."""
        return f"http://{self.address('prometheus-global')}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.address('alertmanager')}"

    @property
    def signals_file(self) -> Path:
        """The cloud exporter's values (``hybridops lab signals set``)."""
        return self.dir / "cloud-signals.json"

    @property
    def token_file(self) -> Path:
        return self.dir / "alert-token"

    def process_names(self) -> list[str]:
        """Every process this class may start, in start order."""
        return [
            *(f"pg-exporter-{site}" for site in self.sites()),
            "cloud-exporter",
            "alert-receiver",
            "alertmanager",
            *(f"prometheus-{site}" for site in self.sites()),
            "prometheus-global",
        ]

    # ------------------------------------------------------------------ inventory

    def signals_settings(self) -> SignalsSettings:
        return SignalsSettings(
            sources=[SignalSource(driver=SignalsKind.PROMETHEUS, url=self.prometheus_url, queries=QUERIES)]
        )

    def alerts_settings(self) -> AlertsSettings:
        return AlertsSettings(listen=self.address("alert-receiver"), token_ref=f"env:{ALERT_TOKEN_ENV}")

    # ------------------------------------------------------------------ configuration

    def render(self) -> None:
        """Write every configuration under ``<lab>/monitoring/`` (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        alert_token(self.layout.root)
        if not self.signals_file.exists():
            from hybridops.lab.cloud_exporter import DEFAULTS

            self._write_signals(DEFAULTS)
        for site, cloud in self.sites().items():
            labels = {"site": site} | ({"cloud": cloud} if cloud else {})
            self._render(
                "site.yml.tmpl",
                f"prometheus-{site}.yml",
                scrape_interval=SCRAPE_INTERVAL,
                scrape_timeout=SCRAPE_TIMEOUT,
                evaluation_interval=SCRAPE_INTERVAL,
                external_labels=_json(labels),
                pg_scrape_interval=PG_SCRAPE_INTERVAL,
                pg_scrape_timeout=PG_SCRAPE_TIMEOUT,
                pg_exporter=self.address("pg-exporter", site),
                cloud=cloud or "",
                cloud_targets=_json([{"targets": [self.address("cloud-exporter")]}] if cloud else []),
            )
        self._render(
            "global.yml.tmpl",
            "prometheus-global.yml",
            scrape_interval=SCRAPE_INTERVAL,
            scrape_timeout=SCRAPE_TIMEOUT,
            evaluation_interval=SCRAPE_INTERVAL,
            rule_files=_json([str(INFRA / "rules" / "*.yml")]),
            alertmanager=self.address("alertmanager"),
            federate_targets=_json(
                [{"targets": [self.address("prometheus", s)], "labels": {"site": s}} for s in self.sites()]
            ),
            hybridops_targets=_json(
                [
                    {"targets": [self.layout.ports.worker_metrics], "labels": {"process": "worker"}},
                    *(
                        {"targets": [self.layout.ports.agent_metrics(s)], "labels": {"process": f"agent-{s}"}}
                        for s in self.sites()
                    ),
                    {
                        "targets": [self.metrics_address("alert-receiver")],
                        "labels": {"process": "alert-receiver"},
                    },
                ]
            ),
            liveness_interval=LIVENESS_INTERVAL,
            liveness_timeout=LIVENESS_TIMEOUT,
            liveness_targets=_json(
                [
                    {"targets": [self.layout.ports.agent_metrics(s)], "labels": {"process": f"agent-{s}"}}
                    for s in self.sites()
                ]
            ),
        )
        self._render(
            "alertmanager.yml.tmpl",
            "alertmanager.yml",
            group_wait="1s",
            group_interval="5s",
            failover_group_interval="100ms",
            repeat_interval="10s",  # frequent resends in the lab: the receiver must absorb them
            receiver_url=f"http://{self.address('alert-receiver')}/alerts",
            token_file=str(self.token_file),
        )

    def _render(self, template: str, target: str, **values: str) -> None:
        text = Template((INFRA / template).read_text()).substitute(values)
        (self.dir / target).write_text(text)

    # ------------------------------------------------------------------ cloud signals

    def read_signals(self) -> dict[str, dict[str, float]]:
        from hybridops.lab.cloud_exporter import read_values

        return read_values(self.signals_file)

    def set_signals(self, cloud: str, values: dict[str, float]) -> dict[str, float]:
        """Change some of ``cloud``'s values; the exporter serves them from its next scrape."""
        from hybridops.lab.cloud_exporter import DEFAULTS, KEYS

        if cloud not in DEFAULTS:
            raise ConfigError(f"cloud: unknown cloud {cloud!r} ({', '.join(DEFAULTS)})")
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise ConfigError(f"signals: unknown {', '.join(unknown)} (one of {', '.join(KEYS)})")
        current = self.read_signals() if self.signals_file.exists() else json.loads(json.dumps(DEFAULTS))
        current.setdefault(cloud, {}).update(values)
        self._write_signals(current)
        return current[cloud]

    def _write_signals(self, values: dict[str, dict[str, float]]) -> None:
        # Write and rename: a scrape never reads half a file.
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.signals_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(values, indent=2) + "\n")
        tmp.replace(self.signals_file)

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        """Render the configurations, start every process not running yet, and wait until
        each answers. Idempotent."""
        self.wanted(True)
        self.render()
        ready: list[tuple[str, str]] = []  # (process, URL answering 200 once it is ready)
        for site in self.sites():
            name = f"pg-exporter-{site}"
            self._start(
                name,
                [
                    str(_which(BINARIES["postgres-exporter"])),
                    f"--web.listen-address={self.address('pg-exporter', site)}",
                    f"--extend.query-path={INFRA / 'postgres-exporter-queries.yaml'}",
                    *PG_EXPORTER_FLAGS,
                ],
                {
                    "DATA_SOURCE_NAME": (
                        f"postgresql://postgres@{self.layout.ip(site)}:{self.layout.ports.pg}/postgres"
                        "?sslmode=disable&connect_timeout=1"
                    )
                },
            )
            ready.append((name, f"http://{self.address('pg-exporter', site)}/metrics"))
        self._start(
            "cloud-exporter",
            [
                sys.executable,
                "-m",
                "hybridops.lab.cloud_exporter",
                "--listen",
                self.address("cloud-exporter"),
                "--file",
                str(self.signals_file),
            ],
        )
        ready.append(("cloud-exporter", f"http://{self.address('cloud-exporter')}/metrics"))
        if importlib.util.find_spec("hybridops.alerts") is not None:
            self._start(
                "alert-receiver",
                [
                    sys.executable,
                    *("-m", "hybridops.cli", "serve", "alerts"),
                    *("--metrics-listen", self.metrics_address("alert-receiver")),
                ],
                self.layout.env(),
            )
            # 200 once it is connected to Temporal.
            ready.append(("alert-receiver", f"http://{self.address('alert-receiver')}/healthz"))
        self._start(
            "alertmanager",
            [
                str(_which(BINARIES["alertmanager"])),
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.dir / 'alertmanager-data'}",
                f"--web.listen-address={self.address('alertmanager')}",
                "--cluster.listen-address=",  # no gossip port: one Alertmanager, no HA peers
                "--log.level=warn",
            ],
        )
        ready.append(("alertmanager", f"{self.alertmanager_url}/-/ready"))
        prometheus = [(f"prometheus-{site}", self.address("prometheus", site)) for site in self.sites()]
        for name, address in [*prometheus, ("prometheus-global", self.address("prometheus-global"))]:
            self._start(
                name,
                [
                    str(_which(BINARIES["prometheus"])),
                    f"--config.file={self.dir / f'{name}.yml'}",
                    f"--storage.tsdb.path={self.dir / f'{name}-data'}",
                    "--storage.tsdb.retention.time=1d",
                    f"--web.listen-address={address}",
                    "--log.level=warn",
                ],
            )
            ready.append((name, f"http://{address}/-/ready"))
        for name, url in ready:
            try:
                wait_until(f"{name} at {url}", partial(answers, url), timeout=30)
            except LabError as err:
                raise LabError(f"{err} (log: {self.processes.log(name)})") from None
        # Ready is not yet useful: wait until the global Prometheus holds every site's
        # database and cloud series through federation, so a decision taken right after
        # `lab up` reads live signals, not gaps.
        complete = urllib.parse.urlencode(
            {"query": "count(pg_up) + count(hybridops_cloud_credits_available)"}
        )
        want = len(self.sites()) + sum(1 for c in self.sites().values() if c)
        try:
            wait_until(
                f"{want} federated series in the global Prometheus",
                lambda: _scalar(f"{self.prometheus_url}/api/v1/query?{complete}") == want,
                timeout=30,
            )
        except LabError as err:
            raise LabError(f"{err} (logs: {self.processes.log('prometheus-global')})") from None

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if not self.processes.pid(name):
            self.processes.spawn(name, argv, env)

    def query_scalar(self, expr: str) -> float | None:
        """The global Prometheus's answer to an instant query of one sample, or None."""
        return _scalar(f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")

    def stop(self) -> None:
        """Stop every monitoring process (the last started first)."""
        for name in reversed(self.process_names()):
            self.processes.stop(name)

    def status(self) -> dict[str, str]:
        return {name: "running" if self.processes.pid(name) else "stopped" for name in self.process_names()}


def _scalar(url: str) -> float | None:
    """The single value of an instant query's answer, or None."""
    with urllib.request.urlopen(url, timeout=1) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None
