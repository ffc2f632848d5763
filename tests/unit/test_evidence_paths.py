"""Workflow ids name evidence folders: made path-safe and contained under ``output_dir``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.common import write_run_evidence
from hybridops.contracts.base import RunStatus
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.errors import InputError
from hybridops.evidence import evidence_folder, path_safe


def result(workflow_id: str) -> FailoverResult:
    t = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    return FailoverResult(
        workflow_id=workflow_id,
        run_id="r-1",
        status=RunStatus.SUCCEEDED,
        input=FailoverInput(),
        started_at=t,
        incident_started_at=t,
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "workflow_id", ["../../escaped", "/etc/cron.d/absolute", "a/b/../../../c", "..", ".", ".hidden"]
)
async def test_evidence_of_a_hostile_id_stays_under_output(tmp_path: Path, workflow_id: str) -> None:
    out = tmp_path / "deep" / "output"
    done = await write_run_evidence(None, out, result(workflow_id))
    folder = Path(done.path)
    assert folder.parent == (out / "failover").resolve()
    assert folder.name not in ("", ".", "..") and not folder.name.startswith(".")
    assert "/" not in folder.name
    written = files_under(tmp_path)
    assert written == files_under(folder) and {p.name for p in written} >= {
        "evidence.json",
        "report.md",
        "report.html",
    }


async def test_ordinary_ids_keep_their_folder_name(tmp_path: Path) -> None:
    for workflow_id in (
        "hybridops-drill-nightly-2026-11-26T03:00:00Z",
        "alert-db-1a2b3c4d5e6f-20261126T030000",
    ):
        done = await write_run_evidence(None, tmp_path, result(workflow_id))
        assert Path(done.path) == (tmp_path / "failover" / workflow_id).resolve()
    assert path_safe("a b/c").startswith("a_b_c-")


def test_distinct_ids_never_share_a_folder() -> None:
    assert path_safe("a/b") != path_safe("a_b") and path_safe("a/b") != path_safe("a:b")
    assert path_safe("x" * 400) != path_safe("x" * 401) and len(path_safe("x" * 400)) < 255


def test_a_symlink_out_of_output_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "output", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "failover").symlink_to(elsewhere)
    with pytest.raises(InputError, match=r"^workflow_id: "):
        evidence_folder(out, "failover", "wf-1")
