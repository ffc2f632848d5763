"""Inventory and input validation name the field; evidence and manifests; secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from hybridops.contracts.base import RunStatus, StepOutcome, StepRecord
from hybridops.contracts.evidence import evidence_of
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.errors import ConfigError
from hybridops.evidence import verify_manifest, write_evidence
from hybridops.inventory import load_inventory, parse_inventory
from hybridops.report import report_markdown
from hybridops.secrets import resolve_secret

GOOD = {
    "sites": {
        "onprem": {"host": "10.0.0.1", "data_dir": "/srv/pg"},
        "azure": {"cloud": "azure", "host": "10.1.0.1", "data_dir": "/srv/pg"},
    },
    "dns": {"zone": "corp.example.com", "record": "db.corp.example.com"},
}


def test_inventory_example_in_runbooks_is_valid() -> None:
    inv = load_inventory(Path(__file__).parents[2] / "runbooks" / "inventory.example.yaml")
    assert inv.dns.driver == "route53" and any(s.cloud is None for s in inv.sites.values())


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"dns": {"zone": "corp.example.com"}}, "dns.record"),
        ({"dns": {**GOOD["dns"], "driver": "route54"}}, "dns.driver"),
        ({"sites": {"onprem": {"host": "x", "data_dir": "/d", "port": 0}}}, "sites.onprem.port"),
        ({"sites": {"azure": {"cloud": "azure", "host": "x", "data_dir": "/d"}}}, "no on-prem site"),
        (
            {"sites": {"onprem": {"host": "x"}, "azure": {"cloud": "azure", "host": "y"}}},
            "sites.onprem.data_dir",
        ),
        ({"placment": "queues"}, "placment"),
    ],
)
def test_inventory_errors_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_inventory({**GOOD, **change})


def test_unknown_site_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown site 'aws'"):
        parse_inventory(GOOD).site("aws")


def test_failover_input_defaults_and_errors() -> None:
    assert FailoverInput.model_validate({}) == FailoverInput()
    with pytest.raises(ValidationError, match="target"):
        FailoverInput.model_validate({"target": "aws"})
    with pytest.raises(ValidationError, match="approval_timeout_s"):
        FailoverInput.model_validate({"approval_timeout_s": -1})
    with pytest.raises(ValidationError, match="surprise"):
        FailoverInput.model_validate({"surprise": 1})


def test_secrets_resolve_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDOPS_TEST_SECRET", "s3cret-v4lue")
    assert resolve_secret("env:HYBRIDOPS_TEST_SECRET") == "s3cret-v4lue"
    (tmp_path / "key").write_text("k3y-k3y-k3y\n")
    assert resolve_secret(f"file:{tmp_path / 'key'}") == "k3y-k3y-k3y"
    assert resolve_secret(None) is None
    with pytest.raises(ConfigError, match="HYBRIDOPS_NOT_SET"):
        resolve_secret("env:HYBRIDOPS_NOT_SET")
    with pytest.raises(ConfigError, match="scheme"):
        resolve_secret("vault:x")


def _result() -> FailoverResult:
    t = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    return FailoverResult(
        workflow_id="wf-1",
        run_id="r-1",
        status=RunStatus.COMPENSATED,
        input=FailoverInput(),
        started_at=t,
        incident_started_at=t,
        error="InjectedFault: boom",
        steps=[
            StepRecord(
                name="promote",
                started_at=t,
                ended_at=t,
                attempts=1,
                outcome=StepOutcome.FAILED,
                irreversible=True,
            )
        ],
    )


def test_evidence_files_and_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "failover" / "wf-1"
    digests = write_evidence(folder, _result(), '{"events": []}')
    assert set(digests) == {"evidence.json", "report.md", "report.html", "history.json"}
    assert json.loads((folder / "manifest.json").read_text())["files"] == digests
    assert verify_manifest(folder) == []
    (folder / "report.md").write_text("tampered")
    assert verify_manifest(folder) == ["report.md"]


def test_report_says_what_happened() -> None:
    text = report_markdown(evidence_of(_result()))
    assert "compensated" in text and "promote (irreversible)" in text and "InjectedFault: boom" in text


def test_driver_tables_name_the_key() -> None:
    from enum import StrEnum

    from activities.dns.base import DnsDriver
    from hybridops.drivers import load_driver

    class Kind(StrEnum):
        ROUTE54 = "route54"

    with pytest.raises(ConfigError, match=r"dns\.driver: no driver"):
        load_driver({}, Kind.ROUTE54, "dns.driver", DnsDriver)
