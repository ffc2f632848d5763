"""The lab's fake cloud exporter: the file it serves from, the text format, the HTTP answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from hybridops.lab.cloud_exporter import (
    DEFAULTS,
    METRICS,
    SignalsFileError,
    make_handler,
    read_values,
    render,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "signals.json"
    path.write_text(json.dumps(DEFAULTS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", path
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_every_metric_per_cloud() -> None:
    text = render(DEFAULTS)
    for metric in METRICS:
        assert f'{metric.name}{{cloud="azure"}}' in text
        assert f'{metric.name}{{cloud="gcp"}}' in text
    assert 'hybridops_app_latency_seconds{cloud="azure"} 0.035' in text


def test_promtool_accepts_the_format() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (CI installs it)")
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=render(DEFAULTS), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reads_the_file_on_every_scrape(served: tuple[str, Path]) -> None:
    url, path = served
    status, body = get(f"{url}/metrics?cloud=azure")
    assert status == 200
    assert 'hybridops_cloud_credits_available{cloud="azure"} 5000.0' in body
    assert 'cloud="gcp"' not in body
    path.write_text(json.dumps({"azure": {**DEFAULTS["azure"], "credits": 0}}))
    assert 'hybridops_cloud_credits_available{cloud="azure"} 0.0' in get(f"{url}/metrics")[1]


def test_a_bad_file_fails_the_scrape(served: tuple[str, Path]) -> None:
    url, path = served
    path.write_text(json.dumps({"azure": {"credit": 1}}))
    status, body = get(f"{url}/metrics")
    assert status == 500
    assert "azure.credit: unknown" in body
    assert get(f"{url}/nothing")[0] == 404


@pytest.mark.parametrize("value", ["1", None, float("nan"), True])
def test_values_must_be_finite_numbers(tmp_path: Path, value: object) -> None:
    path = tmp_path / "signals.json"
    path.write_text(json.dumps({"gcp": {"credits": value}}))
    with pytest.raises(SignalsFileError, match=r"gcp\.credits"):
        read_values(path)
