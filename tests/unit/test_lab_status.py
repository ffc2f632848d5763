"""``hybridops lab status``'s addresses: every UI and endpoint the lab runs, and how to load the
dashboards into a Grafana (the lab runs none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridops.lab import Lab, LabPorts
from hybridops.lab import status as lab_status
from hybridops.lab.status import DASHBOARDS, addresses, grafana_hint


class Running:
    """Processes of which ``names`` run."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def pid(self, name: str) -> int | None:
        return 4242 if name in self.names else None


def test_every_running_ui_and_endpoint(tmp_path: Path) -> None:
    lab = Lab(tmp_path, LabPorts(net="127.90.251", ui=18233))
    running = Running("temporal", "prometheus-global", "alertmanager", "worker", "alert-receiver")
    assert addresses(lab, running, lab.monitoring) == {  # type: ignore[arg-type]
        "Temporal UI": "http://127.0.0.1:18233",
        "Prometheus": "http://127.90.251.60:9090",
        "Alertmanager": "http://127.90.251.68:9093",
        "worker metrics": "http://127.90.251.71:9464/metrics",
        "receiver metrics": "http://127.90.251.69:9464/metrics",
    }
    assert addresses(lab, Running("temporal"), lab.monitoring) == {  # type: ignore[arg-type]
        "Temporal UI": "http://127.0.0.1:18233"
    }


def test_how_to_load_the_dashboards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_status.shutil, "which", lambda name: None)
    hint = grafana_hint("http://127.90.251.60:9090")
    assert hint.startswith("No Grafana here")
    assert "http://127.90.251.60:9090" in hint and f"{DASHBOARDS}/*.json" in hint
    assert len(list(DASHBOARDS.glob("*.json"))) == 4
    monkeypatch.setattr(lab_status.shutil, "which", lambda name: f"/usr/sbin/{name}")
    assert grafana_hint("http://x").startswith("Grafana is installed here, but the lab does not run it")
