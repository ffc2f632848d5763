"""Auditing past runs: replay their histories against today's code, report a run's timeline
from its history with its evidence checked, and verify a run's evidence folder against the
digests its history on the server records.

``hybridops audit replay``, ``report`` and ``verify`` are :mod:`hybridops.cli.audit`. Nothing
here imports the workflows: a replay is handed its replayer (``hybridops/cli/replayer.py``).
"""

from hybridops.audit.evidence_check import EvidenceCheck, check_evidence
from hybridops.audit.histories import HistorySource, fetch_history, find_history_files, load_history_file
from hybridops.audit.replay import MakeReplayer, ReplayOutcome, ReplayReport, replay, replay_files
from hybridops.audit.report import AuditReport, write_report
from hybridops.audit.timeline import Timeline, build_timeline
from hybridops.audit.verify import RecordedEvidence, Verification, recorded_evidence, verify_folder

__all__ = [
    "AuditReport",
    "EvidenceCheck",
    "HistorySource",
    "MakeReplayer",
    "RecordedEvidence",
    "ReplayOutcome",
    "ReplayReport",
    "Timeline",
    "Verification",
    "build_timeline",
    "check_evidence",
    "fetch_history",
    "find_history_files",
    "load_history_file",
    "recorded_evidence",
    "replay",
    "replay_files",
    "verify_folder",
    "write_report",
]
