"""Auditing past runs: replay their histories against today's code, report a run's timeline
from its history with its evidence checked, and verify a run's evidence folder against the
digests its history on the server records.

``hybridops audit replay``, ``report`` and ``verify`` (:mod:`hybridops.audit.cli`).
"""

from hybridops.audit.evidence_check import EvidenceCheck, check_evidence
from hybridops.audit.histories import HistorySource, fetch_history, find_history_files, load_history_file
from hybridops.audit.replay import ReplayOutcome, ReplayReport, current_workflows, replay, replay_files
from hybridops.audit.report import AuditReport, write_report
from hybridops.audit.timeline import Timeline, build_timeline
from hybridops.audit.verify import RecordedEvidence, Verification, recorded_evidence, verify_folder

__all__ = [
    "AuditReport",
    "EvidenceCheck",
    "HistorySource",
    "RecordedEvidence",
    "ReplayOutcome",
    "ReplayReport",
    "Timeline",
    "Verification",
    "build_timeline",
    "check_evidence",
    "current_workflows",
    "fetch_history",
    "find_history_files",
    "load_history_file",
    "recorded_evidence",
    "replay",
    "replay_files",
    "verify_folder",
    "write_report",
]
