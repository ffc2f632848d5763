"""The Grafana dashboards as code: the JSON files are what infra/grafana/build.py writes, every
panel reads the dashboard's Prometheus variable and has PromQL that parses (promtool checks
each as a recording rule), and the compose stack provisions them."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"


def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every target of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, board in dashboards().items()
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def test_the_files_are_what_the_builder_writes() -> None:
    files = build_module().files()
    assert {p.name for p in files} == set(dashboards()), "run `make dashboards`"
    for path, text in files.items():
        assert path.read_text() == text, f"{path.name} is stale: run `make dashboards`"


def test_four_boards_every_panel_on_the_variable() -> None:
    boards = dashboards()
    assert {b["uid"] for b in boards.values()} == {
        "hybridops-dr",
        "hybridops-replication",
        "hybridops-burst",
        "hybridops-workers",
    }
    for board in boards.values():
        (variable,) = board["templating"]["list"]
        wanted = ("datasource", "datasource", "prometheus")
        assert (variable["name"], variable["type"], variable["query"]) == wanted
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            assert [t["refId"] for t in panel["targets"]] == list("ABCDEFGH"[: len(panel["targets"])])


def test_every_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (CI installs it)")
    rules = [{"record": f"panel:{i}", "expr": expr} for i, (_, _, expr) in enumerate(panel_queries())]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_stack_provisions_them() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/hybridops.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./infra/grafana/dashboards:{path}:ro" in mounts
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
