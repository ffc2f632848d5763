"""What the lab tells HybridOps about itself: the inventory that describes it, and its policy.

Both are written under the lab's root by ``lab up``; the lab's processes read them from there
(:meth:`hybridops.lab.layout.LabLayout.env`).
"""

from __future__ import annotations

from pathlib import Path

from hybridops.contracts.decision import SignalName
from hybridops.inventory import (
    AlertsSettings,
    BackupSettings,
    BurstSettings,
    DnsKind,
    DnsSettings,
    GitOpsSettings,
    GitSettings,
    InfraSettings,
    Inventory,
    Placement,
    PostgresSettings,
    ProbeAddress,
    SignalsSettings,
    SiteConfig,
    TemporalSettings,
    WorkloadSettings,
)
from hybridops.lab.layout import DBNAME, DNS_KEYS_ENV, RECORD, SITES, TSIG_KEY, ZONE, LabLayout
from hybridops.lab.monitoring import Monitoring

STATIC_SIGNALS = ("credits", "hourly_cost", "capacity")
"""The lab's cloud signals that are known without monitoring."""
LAB_APPROVERS = ("alice", "bob")
"""The lab's approvers: each has a key pair under the lab's root (LabLayout.approver_key)."""
LAB_WAIT_AFTER_FAILURE_S = 120.0
"""The lab policy's ``operator.wait_after_failure_s`` (production's: 3600 s)."""


def lab_inventory(
    layout: LabLayout, queue_suffix: str, monitoring: Monitoring | None, dns: DnsKind = DnsKind.ROUTE53
) -> Inventory:
    """The inventory that describes the lab. With ``monitoring`` (running), the signals come
    from the global Prometheus and alerts go to ``hybridops serve alerts``. ``dns``: the lab's
    DNS backend (:func:`lab_dns_settings`)."""
    ports = layout.ports
    return Inventory(
        temporal=TemporalSettings(
            address=f"127.0.0.1:{ports.temporal}",
            ui_url=f"http://127.0.0.1:{ports.ui}",
        ),
        output_dir=Path("output").absolute(),
        # Production's shape: the steps that touch a server run on its site's agent
        # (hybridops-db-<site>, one process per site), the rest on the control worker.
        placement=Placement.QUEUES,
        task_queue_suffix=queue_suffix,
        sites={
            name: SiteConfig(
                cloud=cloud,
                host=layout.ip(name),
                port=ports.pg,
                dbname=DBNAME,
                data_dir=layout.data_dir(name),
                # Each other site's agent probes this server through its own link's relay, so
                # `lab cut` can partition one observer alone (hybridops/lab/link.py).
                probe_addresses={
                    observer: ProbeAddress(host=host, port=port)
                    for observer in SITES
                    if observer != name
                    for host, port in [layout.link_address(observer, name)]
                },
            )
            for name, cloud in SITES.items()
        },
        # A hung server is told from a busy one by this: the detection probe's timeout.
        postgres=PostgresSettings(run_as=layout.run_as, connect_timeout_s=1.0),
        dns=lab_dns_settings(layout, dns),
        infra=InfraSettings(apps_dir=layout.root / "apps"),
        workload=WorkloadSettings(ledger=layout.ledger),
        signals=_signals(monitoring),
        alerts=monitoring.alerts_settings() if monitoring else AlertsSettings(),
        backup=BackupSettings(
            repository=layout.root / "backups",
            wal_archive=layout.archive,
            scratch_dir=layout.root / "scratch",
            scratch_host=f"{ports.net}.70",
            scratch_port=ports.pg,
        ),
        burst=BurstSettings(load_file=layout.load_file),
        policy=layout.policy_file,
        gitops=GitOpsSettings(git=GitSettings(repo=str(layout.gitops_repo))),
    )


def lab_dns_settings(layout: LabLayout, kind: DnsKind) -> DnsSettings:
    """The lab's DNS as the inventory describes it: moto's Route53 API with any keys, or its
    BIND with the lab's TSIG key (a ``file:`` reference to the secret the lab made)."""
    if kind == DnsKind.RFC2136:
        return DnsSettings(
            driver=kind,
            zone=ZONE,
            record=RECORD,
            ttl=1,
            server=layout.bind_ip,
            port=layout.ports.dns,
            tsig_key=TSIG_KEY,
            credentials_ref=f"file:{layout.tsig_file}",
        )
    return DnsSettings(
        zone=ZONE,
        record=RECORD,
        ttl=1,
        endpoint_url=layout.dns_url,
        credentials_ref=f"env:{DNS_KEYS_ENV}",
    )


def _signals(monitoring: Monitoring | None) -> SignalsSettings:
    """The global Prometheus when monitored; in every case the clouds' credit lines, prices
    and sizes as static values (what a contract or the inventory would say), so a lab
    without monitoring still passes the policy's budget gate, and one whose Prometheus is
    down falls back to them."""
    from hybridops.lab.cloud_exporter import DEFAULTS

    static = {
        site: {SignalName(k): v for k, v in DEFAULTS[cloud.value].items() if k in STATIC_SIGNALS}
        for site, cloud in SITES.items()
        if cloud is not None
    }
    settings = monitoring.signals_settings() if monitoring else SignalsSettings()
    return settings.model_copy(update={"static": static})


def write_policy(layout: LabLayout) -> None:
    """Write the lab's policy (:attr:`LabLayout.policy_file`) unless it exists: an operator's
    edits are kept."""
    import yaml

    from hybridops.policy import Signer, load_policy
    from hybridops.sshkeygen import make_key

    policy = load_policy()
    policy.approval.failover = policy.approval.failback = policy.approval.restore = False
    # The lab's database is small: a restore from the archive takes seconds, not the half hour
    # runbooks/policy.yaml estimates for production (bench/failover.py --restore measures it),
    # so with no standby fit to promote the lab's failover restores (restore mode).
    policy.estimates.restore_rto_s = 120.0
    # One person at one machine: no certificates, starter and approver are the same.
    policy.approvers.accept_unauthenticated = policy.approvers.allow_self_approval = True
    policy.approvers.require_decision_id = False
    # A killed site's agent is a dead host: the lab says so in two seconds, not ten.
    policy.safety.agent_start_timeout_s = 2.0
    # An agent killed mid-step is restarted by its supervisor (the tests' WorkerKeeper) within
    # seconds, more on a loaded machine: wait for it longer than for a dead host's.
    policy.safety.agent_restart_timeout_s = 20.0
    # The silent primary's confirm is its answer to an SSLRequest (drivers/postgres/connect.py:
    # answers): on loopback a healthy server's comes within 20 ms with both cores saturated, so
    # 0.1 s, not the 0.25 s runbooks/policy.yaml leaves for a control worker regions away.
    policy.detection.confirm_timeout_s = 0.1
    # A step that fails past the point of no return waits for `hybridops retry` or `skip`: long
    # enough for someone at the lab to read `hybridops status` and act, short enough that a run
    # nobody answers (a test's, a demo left alone) ends within minutes, not the hour production's
    # policy gives.
    policy.operator.wait_after_failure_s = LAB_WAIT_AFTER_FAILURE_S
    # A key pair per lab approver, its public key an allowed signer (signatures are not
    # required: the lab runs unattended; a policy with approvers.require_signature tries them).
    policy.approvers.signers = {
        name: Signer(key=make_key(layout.approver_key(name), name)) for name in LAB_APPROVERS
    }
    text = yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False)
    header = (
        "# The lab's policy, written by `hybridops lab up` from runbooks/policy.yaml with the\n"
        "# failover and failback approvals off: the lab runs unattended. Edit it to try others.\n"
    )
    if not layout.policy_file.exists():
        layout.policy_file.write_text(header + text)
