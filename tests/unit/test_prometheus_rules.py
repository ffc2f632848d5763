"""The Prometheus side of infra/prometheus/: the alert rules against their promtool unit tests,
and the rendered lab configurations against promtool and amtool's own checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hybridops.lab import Lab, LabPorts
from hybridops.lab.monitoring import INFRA

RULES = sorted((INFRA / "rules").glob("*.yml"))
RULE_TESTS = sorted((INFRA / "tests").glob("*.yml"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install prometheus prometheus-alertmanager"
            " (CI installs them; the rule and config checks need them)"
        )
    return path


def run(*argv: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{out}"
    return out


def test_rules_are_valid() -> None:
    assert RULES, f"no rule files under {INFRA / 'rules'}"
    run(tool("promtool"), "check", "rules", *map(str, RULES))


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, f"no rule tests under {INFRA / 'tests'}"
    out = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in out


def test_the_failover_alert_is_what_the_receiver_routes() -> None:
    rules = {
        r["alert"]: r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    }
    assert {"HybridOpsPrimaryNotTakingWrites", "HybridOpsNoWritablePrimary", "PostgresDown"} <= set(rules)
    assert rules["HybridOpsPrimaryNotTakingWrites"]["labels"] == {
        "severity": "critical",
        "runbook": "failover",
    }
    # One trigger per incident: the slower "no writable primary" is for people.
    assert rules["HybridOpsNoWritablePrimary"]["labels"] == {"severity": "critical"}
    # One agent cut off from the primary is a finding for people, never a runbook's start.
    assert rules["HybridOpsAgentCutOff"]["labels"] == {"severity": "warning"}


def test_the_operations_alerts_go_to_people() -> None:
    """Drill overdue, a run waiting for approval, a queue nobody polls: none starts a runbook."""
    rules = {
        r["alert"]: r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    }
    for name in ("HybridOpsDrillOverdue", "HybridOpsApprovalWaiting", "HybridOpsNoWorkerPolls"):
        assert "runbook" not in rules[name]["labels"], name


@pytest.fixture
def rendered(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path, LabPorts(net="127.90.250"))
    lab.monitoring.render()
    return lab


def test_rendered_prometheus_configs_are_valid(rendered: Lab) -> None:
    configs = sorted(rendered.monitoring.dir.glob("prometheus-*.yml"))
    assert [c.name for c in configs] == [
        "prometheus-azure.yml",
        "prometheus-gcp.yml",
        "prometheus-global.yml",
        "prometheus-onprem.yml",
    ]
    run(tool("promtool"), "check", "config", *map(str, configs))
    azure = yaml.safe_load((rendered.monitoring.dir / "prometheus-azure.yml").read_text())
    assert azure["global"]["external_labels"] == {"site": "azure", "cloud": "azure"}
    onprem = yaml.safe_load((rendered.monitoring.dir / "prometheus-onprem.yml").read_text())
    assert onprem["global"]["external_labels"] == {"site": "onprem"}
    glob = yaml.safe_load((rendered.monitoring.dir / "prometheus-global.yml").read_text())
    federate, hybridops, liveness = glob["scrape_configs"]
    assert federate["honor_labels"] is True
    assert len(federate["static_configs"]) == 3
    # Every HybridOps process's endpoint: the worker's, each site agent's, the receiver's.
    assert [t for c in hybridops["static_configs"] for t in c["targets"]] == [
        "127.90.250.71:9464",
        "127.90.250.72:9464",
        "127.90.250.73:9464",
        "127.90.250.74:9464",
        "127.90.250.69:9464",
    ]
    # The agents' liveness views alone, ten times a second: the failover alert's input.
    assert liveness["metrics_path"] == "/metrics/liveness" and liveness["scrape_interval"] == "100ms"
    assert [t for c in liveness["static_configs"] for t in c["targets"]] == [
        "127.90.250.72:9464",
        "127.90.250.73:9464",
        "127.90.250.74:9464",
    ]


def test_rendered_alertmanager_config_is_valid(rendered: Lab) -> None:
    config = rendered.monitoring.dir / "alertmanager.yml"
    run(tool("amtool"), "check-config", str(config))
    (hook,) = yaml.safe_load(config.read_text())["receivers"][1]["webhook_configs"]
    assert hook["url"] == "http://127.90.250.69:9095/alerts"
    assert hook["send_resolved"] is True
    token = Path(hook["http_config"]["authorization"]["credentials_file"])
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text().strip() == rendered.env()["HYBRIDOPS_LAB_ALERT_TOKEN"]


def test_exporter_queries_are_namespaced() -> None:
    queries = yaml.safe_load((INFRA / "postgres-exporter-queries.yaml").read_text())
    names = [f"{ns}_{col}" for ns, q in queries.items() for m in q["metrics"] for col in m]
    assert "hybridops_pg_in_recovery" in names and "hybridops_pg_wal_unreplayed_bytes" in names
    assert all(n.startswith("hybridops_") for n in names)
