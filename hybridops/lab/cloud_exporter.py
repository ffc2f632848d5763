"""The lab's fake cloud exporter: cloud billing and application metrics for Prometheus.

It stands in for the cloud providers' billing and monitoring APIs (Azure Cost Management and
Azure Monitor, Google Cloud Billing and Cloud Monitoring) and for the applications' own
metrics, which in production reach Prometheus through their exporters. In the lab the numbers
come from a JSON file the lab writes (``hybridops lab signals set azure credits=0`` changes
it); the file is read again on every scrape, so a change shows at the next scrape::

    {"azure": {"credits": 5000, "hourly_cost": 4.2, "capacity": 12,
               "latency_ms": 35, "error_rate": 0.002, "slo_score": 0.995},
     "gcp":   {...}}

Served in the Prometheus text format (written by ``prometheus-client``) on ``/metrics``;
``/metrics?cloud=azure`` serves only that cloud (what each cloud site's Prometheus scrapes). A
file that cannot be read or parsed is a 500, so Prometheus records the scrape as failed and the
signals go missing rather than wrong.

Run as its own process: ``python -m hybridops.lab.cloud_exporter --listen ADDR:PORT --file PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class CloudMetric:
    """One metric the exporter serves, and the key of the lab's file it comes from."""

    key: str
    """The key in the JSON file and in ``hybridops lab signals set``."""
    name: str
    help: str
    divisor: float = 1.0
    """What the file's value is divided by (the file keeps latency in ms, the metric in s)."""


METRICS: tuple[CloudMetric, ...] = (
    CloudMetric("credits", "hybridops_cloud_credits_available", "Cloud credits (budget) left."),
    CloudMetric(
        "hourly_cost", "hybridops_cloud_hourly_cost", "What running the DR footprint costs per hour."
    ),
    CloudMetric("capacity", "hybridops_cloud_capacity_free_nodes", "Free nodes in the cloud's cluster."),
    CloudMetric("latency_ms", "hybridops_app_latency_seconds", "Client latency to the site.", 1000.0),
    CloudMetric("error_rate", "hybridops_app_error_ratio", "Share of failed requests, 0..1."),
    CloudMetric("slo_score", "hybridops_slo_score", "How well the site met its SLOs lately, 0..1."),
)
KEYS = tuple(m.key for m in METRICS)

DEFAULTS: dict[str, dict[str, float]] = {
    "azure": {
        "credits": 5000.0,
        "hourly_cost": 4.2,
        "capacity": 12.0,
        "latency_ms": 35.0,
        "error_rate": 0.002,
        "slo_score": 0.995,
    },
    "gcp": {
        "credits": 3000.0,
        "hourly_cost": 3.8,
        "capacity": 8.0,
        "latency_ms": 42.0,
        "error_rate": 0.004,
        "slo_score": 0.99,
    },
}
"""What the lab starts with: both clouds healthy, azure a little faster and dearer."""


class SignalsFileError(ValueError):
    """The lab's signals file is missing or malformed; the message names the key."""


def read_values(path: Path) -> dict[str, dict[str, float]]:
    """The file's values per cloud, checked: known keys, finite numbers."""
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SignalsFileError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise SignalsFileError(f"{path}: not a JSON object of clouds")
    out: dict[str, dict[str, float]] = {}
    for cloud, values in data.items():
        if not isinstance(values, dict):
            raise SignalsFileError(f"{path}: {cloud}: not an object of values")
        out[cloud] = {}
        for key, value in values.items():
            if key not in KEYS:
                raise SignalsFileError(f"{path}: {cloud}.{key}: unknown (one of {', '.join(KEYS)})")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SignalsFileError(f"{path}: {cloud}.{key}: {value!r} is not a finite number")
            out[cloud][key] = float(value)
    return out


class CloudCollector(Collector):
    """The values of one scrape, per cloud (one cloud, or all of them), as gauge families."""

    def __init__(self, values: dict[str, dict[str, float]], cloud: str | None = None) -> None:
        self.values = values
        self.clouds = sorted(c for c in values if cloud is None or c == cloud)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for metric in METRICS:
            family = GaugeMetricFamily(metric.name, metric.help, labels=["cloud"])
            for c in self.clouds:
                if metric.key in self.values[c]:
                    family.add_metric([c], self.values[c][metric.key] / metric.divisor)
            yield family


def render(values: dict[str, dict[str, float]], cloud: str | None = None) -> str:
    """The Prometheus text format for ``values``, for one cloud or all of them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudCollector(values, cloud))
    return generate_latest(registry).decode()


def make_handler(path: Path) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``path``'s values."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/metrics":
                self._answer(404, "not found: try /metrics\n")
                return
            cloud = parse_qs(url.query).get("cloud", [None])[0]
            try:
                body = render(read_values(path), cloud)
            except SignalsFileError as err:
                self._answer(500, f"{err}\n")
                return
            self._answer(200, body)

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # one line a scrape is noise
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", required=True, help="host:port to listen on")
    parser.add_argument("--file", required=True, type=Path, help="the JSON file of values per cloud")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(args.file))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
