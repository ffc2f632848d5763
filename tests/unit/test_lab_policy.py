"""The lab's policy (hybridops/lab/config.py:write_policy): runbooks/policy.yaml made to run
unattended, with waits short enough for a lab and long enough for someone at it to act."""

from __future__ import annotations

from pathlib import Path

from hybridops.lab.config import LAB_WAIT_AFTER_FAILURE_S, write_policy
from hybridops.lab.layout import LabLayout
from hybridops.policy import load_policy


def test_a_failed_step_past_the_point_of_no_return_waits_two_minutes_for_an_operator(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    write_policy(layout)
    lab, shipped = load_policy(layout.policy_file), load_policy()
    assert lab.operator.wait_after_failure_s == LAB_WAIT_AFTER_FAILURE_S == 120.0
    assert shipped.operator.wait_after_failure_s == 3600.0, "production's hour is the lab's only"
    # An operator's edit of the lab's policy is kept.
    layout.policy_file.write_text("operator:\n  wait_after_failure_s: 30\n")
    write_policy(layout)
    assert load_policy(layout.policy_file).operator.wait_after_failure_s == 30.0
