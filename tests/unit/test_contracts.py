"""Inventory and input validation name the field; evidence and manifests; secrets."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowHistory

from hybridops.contracts.base import RunStatus, StepOutcome, StepRecord
from hybridops.contracts.evidence import evidence_of
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.errors import ConfigError
from hybridops.evidence import verify_manifest
from hybridops.inventory import load_inventory, parse_inventory
from hybridops.report import report_markdown
from hybridops.secrets import resolve_secret
from tests.unit.evidence_step import write_failover_evidence

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


async def test_evidence_files_and_manifest(tmp_path: Path) -> None:
    written = await write_failover_evidence(tmp_path, _result(), WorkflowHistory("wf-1", []))
    folder = Path(written.path)
    assert folder == tmp_path / "failover" / "wf-1"
    digests = written.files
    assert set(digests) == {"evidence.json", "report.md", "report.html", "history.json"}
    assert written.manifest_sha256 == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    assert json.loads((folder / "manifest.json").read_text())["files"] == digests
    assert verify_manifest(folder) == []
    (folder / "report.md").write_text("tampered")
    assert verify_manifest(folder) == ["report.md"]


def test_report_says_what_happened() -> None:
    text = report_markdown(evidence_of(_result()))
    assert "compensated" in text and "promote (irreversible)" in text and "InjectedFault: boom" in text


def test_driver_tables_name_the_key() -> None:
    from enum import StrEnum

    from drivers.dns.base import DnsDriver
    from drivers.loader import load_driver

    class Kind(StrEnum):
        ROUTE54 = "route54"

    with pytest.raises(ConfigError, match=r"dns\.driver: no driver"):
        load_driver({}, Kind.ROUTE54, "dns.driver", DnsDriver)


async def test_a_dns_driver_without_weighted_records_says_so_before_any_change() -> None:
    """Capabilities are declared (DESIGN.md rule 14): asking a driver that declares no
    weighted records for them is a fatal error naming the driver and the capability, raised
    before any hook runs; Route53 declares it."""
    from drivers.dns.base import DnsDriver, Record, ZoneProbe
    from drivers.dns.route53 import Route53Driver
    from hybridops.capabilities import Capability
    from hybridops.errors import CapabilityMissing

    calls: list[str] = []

    class Plain(DnsDriver):
        async def _get_record(self, name: str, type: str) -> Record | None:
            return None

        def _get_record_sync(self, name: str, type: str) -> Record | None:
            return None

        async def _ensure_zone(self) -> bool:
            return False

        async def _probe(self) -> ZoneProbe:
            return ZoneProbe(self.zone, "plain")

        async def _upsert(self, record: Record) -> None:
            calls.append(record.name)

        async def _get_weights(self, name: str, type: str) -> dict[str, tuple[str, int]]:
            calls.append(name)
            return {}

    driver = Plain("lab.test")
    with pytest.raises(CapabilityMissing) as err:
        await driver.ensure_weights("app.lab.test", "A", {"onprem": ("127.0.0.1", 1)}, 60)
    assert err.value.ids == {"driver": "Plain", "capability": "weighted"}
    assert not err.value.retryable
    with pytest.raises(CapabilityMissing):
        await driver.get_weights("app.lab.test")
    assert calls == []
    assert Capability.WEIGHTED in Route53Driver.capabilities


def test_plan_result_keeps_its_recorded_json_key() -> None:
    """``PlanResult.dns_site`` was ``current_primary``: new payloads carry the old key, as the
    data converter writes them (``pydantic_core.to_json``), and recorded ones still load."""
    from pydantic_core import to_json

    from hybridops.client import DATA_CONVERTER
    from hybridops.contracts.sites import PlanResult

    plan = PlanResult(sites=[], dns_record="db.example.com", dns_site="onprem", placement="colocated")
    data = json.loads(to_json(plan))
    assert data["current_primary"] == "onprem" and "dns_site" not in data
    [payload] = DATA_CONVERTER.payload_converter.to_payloads([plan])
    assert json.loads(payload.data) == data
    [loaded] = DATA_CONVERTER.payload_converter.from_payloads([payload], [PlanResult])
    assert loaded == plan and loaded.dns_site == "onprem"


def test_an_rto_split_adds_up_to_the_whole_and_keeps_its_order() -> None:
    from datetime import UTC, datetime, timedelta

    from hybridops.contracts.base import RtoSplit

    t0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    split = RtoSplit.between(at(0), at(1.5), at(1.8), at(2.3), at(2.4))
    assert (split.detection_s, split.decision_s, split.execution_s, split.reconnect_s) == (1.5, 0.3, 0.5, 0.1)
    # The clients came back before the run's own write: the split ends with them, no part is negative.
    early = RtoSplit.between(at(0), at(1.5), at(1.8), at(2.3), at(2.0))
    assert (early.detection_s, early.decision_s, early.execution_s, early.reconnect_s) == (1.5, 0.3, 0.2, 0.0)
    # An incident time after the run's start (a late alert) gives no negative detection.
    late = RtoSplit.between(at(2), at(1.5), at(1.8), at(2.3), at(2.3))
    parts = (late.detection_s, late.decision_s, late.execution_s, late.reconnect_s)
    assert parts == (0.0, 0.0, 0.3, 0.0) and sum(p or 0 for p in parts) == 0.3
