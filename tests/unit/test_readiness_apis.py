"""Readiness' API checks (issue 20 item 1, patch ``readiness-api-checks``): the DNS API probed,
each cloud's API from the monitoring reads already made, each Terraform state's lock; the
checks on recorded readings (pure), and the two activities on fake drivers (no lab)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.readiness import ReadinessActivities
from drivers.dns.base import DnsDriver, Record, ZoneProbe
from drivers.infra.lab import LabInfraDriver
from drivers.infra.terraform import TerraformInfraDriver
from drivers.lazy import Drivers
from drivers.terraform.state import lock_info_path, state_path
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import (
    CandidateSignals,
    Signal,
    SignalName,
    SignalSnapshot,
    SignalsResult,
)
from hybridops.contracts.readiness import (
    BackupAgeResult,
    CheckStatus,
    DnsProbeInput,
    DnsProbeResult,
    DrillRecordResult,
    QueuesResult,
    ReadinessCheck,
    ReadinessInput,
    SchedulesResult,
    SecretsResult,
    StateLockReading,
    StateLockStatus,
    TerraformStateInput,
    TerraformStateResult,
    WalContinuityResult,
)
from hybridops.contracts.sites import PlanResult, SiteRef
from hybridops.decision import topology_of
from hybridops.errors import DnsAuthError, DnsError
from hybridops.inventory import (
    DnsSettings,
    InfraKind,
    InfraSettings,
    Inventory,
    SiteConfig,
    TerraformSettings,
)
from hybridops.policy import Policy
from hybridops.readiness import ApiReadings, MoreReadings, evaluate
from workflows.readiness import READ_ONLY, READ_ONLY_STEPS
from workflows.steps import READY_DNS_API, READY_TF_STATE

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def plan() -> PlanResult:
    return PlanResult(
        sites=[
            SiteRef(name="onprem"),
            SiteRef(name="azure", cloud=Cloud.AZURE),
            SiteRef(name="gcp", cloud=Cloud.GCP),
        ],
        dns_record="db.example",
        dns_site="onprem",
        placement="colocated",
        policy=Policy(),
    )


def signals(values: dict[str, str], *errors: str) -> SignalsResult:
    """Signals whose ``values`` (site to source) each hold one reading."""
    candidates = [
        CandidateSignals(site=site, values={SignalName.CAPACITY: Signal(value=2, source=source)})
        for site, source in values.items()
    ]
    snapshot = SignalSnapshot(taken_at=NOW, candidates=candidates, errors=list(errors))
    return SignalsResult(snapshot=snapshot, policy=Policy())


def checks(api: ApiReadings | None, sig: SignalsResult | None = None) -> dict[str, ReadinessCheck]:
    p = plan()
    more = MoreReadings(
        wal=WalContinuityResult(),
        drills=DrillRecordResult(),
        schedules=SchedulesResult(),
        signals=sig,
    )
    result = evaluate(
        p,
        topology_of(p, []),
        SecretsResult(),
        QueuesResult(),
        BackupAgeResult(),
        ReadinessInput(),
        NOW,
        "w",
        more=more,
        api=api,
    )
    return {c.id: c for c in result.checks}


ANSWERED = DnsProbeResult(
    driver="rfc2136", zone="example", answered=True, zone_id="127.0.0.1:53", serial=7, seconds=0.004
)
FREE = TerraformStateResult(
    driver="terraform",
    locks=[
        StateLockReading(
            root="lab", backend="local", status=StateLockStatus.FREE, state_file="terraform.tfstate"
        )
    ],
)


def test_the_checks_pass_on_answers_and_say_what_was_measured() -> None:
    found = checks(ApiReadings(dns=ANSWERED, terraform=FREE), signals({"azure": "azure_monitor"}))
    dns = found["credentials.dns_api"]
    assert dns.status == CheckStatus.PASS and "serial 7" in dns.measured and "4 ms" in dns.measured, dns
    assert "drill" not in dns.runbooks and "failover to azure" in dns.runbooks
    assert found["credentials.terraform_state.lab"].status == CheckStatus.PASS
    assert found["credentials.cloud_api.azure"].status == CheckStatus.PASS
    for check in (dns, found["credentials.terraform_state.lab"], found["credentials.cloud_api.azure"]):
        assert check.measured and check.threshold and check.runbooks and check.protects, check
    # gcp has no monitoring source among the signals: nothing read its API.
    gcp = found["credentials.cloud_api.gcp"]
    assert gcp.status == CheckStatus.UNKNOWN and "no gcp_monitoring source" in gcp.measured, gcp
    assert gcp.runbooks == ["failover to gcp", "failback from gcp"], gcp.runbooks


def test_a_history_before_the_patch_has_none_of_the_checks() -> None:
    assert not any(
        i.startswith(("credentials.dns_api", "credentials.cloud_api", "credentials.terraform"))
        for i in checks(None)
    )


@pytest.mark.parametrize(
    ("error_type", "error"),
    [("DnsAuthError", "rfc2136 query example: the server rejected the TSIG key"), ("DnsError", "timed out")],
)
def test_a_refused_or_unanswered_probe_fails_naming_why(error_type: str, error: str) -> None:
    probe = DnsProbeResult(driver="rfc2136", zone="example", error=error, error_type=error_type, seconds=0.5)
    dns = checks(ApiReadings(dns=probe, terraform=FREE))["credentials.dns_api"]
    assert dns.status == CheckStatus.FAIL and error_type in dns.measured and dns.detail == error, dns
    unread = checks(ApiReadings(dns=None, terraform=FREE, dns_error="no poller"))["credentials.dns_api"]
    assert unread.status == CheckStatus.UNKNOWN and unread.detail == "no poller"


def test_a_held_lock_fails_a_stale_one_warns_a_remote_one_is_unknown() -> None:
    locks = TerraformStateResult(
        locks=[
            StateLockReading(
                root="azure",
                backend="azurerm",
                status=StateLockStatus.UNKNOWN,
                note="not checked without the backend's credentials",
            ),
            StateLockReading(
                root="lab",
                backend="local",
                status=StateLockStatus.LOCKED,
                who="alice@ops-1",
                created="2026-01-01T02:00:00Z",
                operation="OperationTypeApply",
                lock_id="1f1f",
            ),
            StateLockReading(root="old", backend="local", status=StateLockStatus.STALE, who="bob@ops-2"),
        ]
    )
    found = checks(ApiReadings(dns=ANSWERED, terraform=locks))
    held = found["credentials.terraform_state.lab"]
    assert held.status == CheckStatus.FAIL and "alice@ops-1" in held.measured and "1f1f" in held.measured
    assert "since 2026-01-01T02:00:00Z" in held.measured and "burst: scale_pool" in held.protects[0]
    assert found["credentials.terraform_state.old"].status == CheckStatus.WARN
    remote = found["credentials.terraform_state.azure"]
    assert remote.status == CheckStatus.UNKNOWN and "credentials" in remote.detail, remote
    none = checks(ApiReadings(dns=ANSWERED, terraform=TerraformStateResult()))
    assert not [i for i in none if i.startswith("credentials.terraform_state")], "the lab driver: no roots"
    failed = checks(ApiReadings(dns=ANSWERED, terraform=None, terraform_error="timed out"))
    assert failed["credentials.terraform_state"].status == CheckStatus.UNKNOWN


def test_a_cloud_api_refusing_fails_and_no_data_is_an_answer() -> None:
    refused = signals({}, "azure_monitor: token request failed: 401 AADSTS7000215 invalid client secret")
    azure = checks(ApiReadings(dns=ANSWERED, terraform=FREE), refused)["credentials.cloud_api.azure"]
    assert azure.status == CheckStatus.FAIL and "AADSTS7000215" in azure.detail, azure
    empty = signals(
        {}, "gcp_monitoring: metric 'x' (site gcp, project p, capacity): no point in the last 5 min"
    )
    gcp = checks(ApiReadings(dns=ANSWERED, terraform=FREE), empty)["credentials.cloud_api.gcp"]
    assert gcp.status == CheckStatus.PASS and "without a data point" in gcp.measured, gcp
    unread = checks(ApiReadings(dns=ANSWERED, terraform=FREE), None)["credentials.cloud_api.azure"]
    assert unread.status == CheckStatus.UNKNOWN and unread.measured == "signals not read"


def test_both_steps_are_read_only_steps_on_their_queues() -> None:
    assert READY_DNS_API in READ_ONLY_STEPS and READY_TF_STATE in READ_ONLY_STEPS
    assert {"probe_dns", "terraform_state"} <= READ_ONLY
    assert (READY_DNS_API.queue.value, READY_TF_STATE.queue.value) == ("hybridops-dns", "hybridops-infra")


class FakeDns(DnsDriver):
    """A zone that answers, or raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__("example.com")
        self.error = error

    async def _probe(self) -> ZoneProbe:
        if self.error is not None:
            raise self.error
        return ZoneProbe(self.zone, "Z1", detail="GetHostedZone")

    async def _get_record(self, name: str, type: str) -> Record | None:
        raise AssertionError("a probe reads no record")

    def _get_record_sync(self, name: str, type: str) -> Record | None:
        raise AssertionError("a probe reads no record")

    async def _ensure_zone(self) -> bool:
        raise AssertionError("a probe creates nothing")

    async def _upsert(self, record: Record) -> None:
        raise AssertionError("a probe changes nothing")


def inventory(tmp_path: Path, infra: InfraSettings | None = None) -> Inventory:
    return Inventory(
        sites={
            "onprem": SiteConfig(host="127.0.0.1", data_dir=tmp_path / "onprem"),
            "azure": SiteConfig(cloud="azure", host="127.0.0.2", data_dir=tmp_path / "azure"),
        },
        dns=DnsSettings(zone="example.com", record="db.example.com"),
        infra=infra or InfraSettings(apps_dir=tmp_path / "apps"),
    )


@pytest.mark.parametrize(
    "error",
    [None, DnsAuthError("route53 get_hosted_zone: AccessDenied", zone="example.com"), DnsError("down")],
)
async def test_probe_dns_reports_the_answer_or_the_error_never_raising(
    tmp_path: Path, error: Exception | None
) -> None:
    inv = inventory(tmp_path)
    acts = ReadinessActivities(inv, Drivers(inv, dns=FakeDns(error)))
    result: DnsProbeResult = await ActivityEnvironment().run(acts.probe_dns, DnsProbeInput())
    assert result.answered == (error is None) and result.driver == "route53" and result.seconds is not None
    if error is None:
        assert result.zone_id == "Z1" and not result.error
    else:
        assert result.error_type == type(error).__name__ and str(error) == result.error


async def test_terraform_state_reads_each_root_and_the_lab_none(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "lab").mkdir(parents=True)
    (config / "lab" / "main.tf").write_text('resource "terraform_data" "pool" {}\n')
    settings = InfraSettings(
        driver=InfraKind.TERRAFORM,
        terraform=TerraformSettings(
            config_root=config, work_root=tmp_path / "work", targets={"azure": "lab"}
        ),
    )
    inv = inventory(tmp_path, settings)
    acts = ReadinessActivities(inv, Drivers(inv, infra=TerraformInfraDriver(settings)))
    state = state_path(config / "lab", "burst")
    state.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            " fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(state),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock_info_path(state).write_text('{"ID": "9", "Who": "ci@runner", "Operation": "OperationTypePlan"}')
        result: TerraformStateResult = await ActivityEnvironment().run(
            acts.terraform_state, TerraformStateInput()
        )
    finally:
        holder.kill()
        holder.wait()
    [lock] = result.locks
    assert (lock.root, lock.status, lock.who, lock.lock_id) == (
        "lab",
        StateLockStatus.LOCKED,
        "ci@runner",
        "9",
    )
    assert str(tmp_path) not in result.model_dump_json(), "no path of the worker's disk in a history"
    lab_inv = inventory(tmp_path)
    lab = ReadinessActivities(lab_inv, Drivers(lab_inv, infra=LabInfraDriver(lab_inv.infra)))
    empty: TerraformStateResult = await ActivityEnvironment().run(lab.terraform_state, TerraformStateInput())
    assert empty.locks == [] and empty.driver == "lab"
