"""Auditing past runs: replay their histories against today's code, and report a run's
timeline from its history with its evidence checked.

``hybridops audit replay`` and ``hybridops audit report`` (:mod:`hybridops.audit.cli`).
"""

from hybridops.audit.evidence_check import EvidenceCheck, check_evidence
from hybridops.audit.histories import HistorySource, fetch_history, find_history_files, load_history_file
from hybridops.audit.replay import ReplayOutcome, ReplayReport, current_workflows, replay
from hybridops.audit.report import AuditReport, write_report
from hybridops.audit.timeline import Timeline, build_timeline

__all__ = [
    "AuditReport",
    "EvidenceCheck",
    "HistorySource",
    "ReplayOutcome",
    "ReplayReport",
    "Timeline",
    "build_timeline",
    "check_evidence",
    "current_workflows",
    "fetch_history",
    "find_history_files",
    "load_history_file",
    "replay",
    "write_report",
]
