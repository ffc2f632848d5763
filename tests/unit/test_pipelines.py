"""The pipelines: the Jenkinsfile's stages (Check, Image, Drill) and GitHub Actions' jobs run
the same things, in the same order, and every command they run exists: .ci/run, the
Dockerfile, make targets, and each ``hybridops`` command line parses against the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from tests.unit.test_stack import parsed

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = (ROOT / "Jenkinsfile").read_text()
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
STAGES = ["Check", "Image", "Drill"]


def jenkins_stages() -> dict[str, list[str]]:
    """Each stage's ``sh`` commands, in order."""
    parts = re.split(r"stage\('([^']+)'\)", JENKINSFILE)
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    return {name: re.findall(r"sh '([^']+)'", body) for name, body in pairs}


def github_jobs() -> dict[str, list[str]]:
    """Each job's ``run`` lines, in order."""
    return {
        name: [ln for step in job["steps"] if "run" in step for ln in step["run"].splitlines() if ln.strip()]
        for name, job in WORKFLOW["jobs"].items()
    }


def test_the_jenkinsfile_stages() -> None:
    stages = jenkins_stages()
    assert list(stages) == STAGES
    assert stages["Check"] == ["bash .ci/run"]
    assert any(c.startswith("docker build") and c.endswith(" .") for c in stages["Image"])
    assert any("drill run" in c for c in stages["Drill"])
    assert "make down" in stages["Drill"]  # the post step: the lab stops whatever happened


def test_github_actions_runs_the_same_stages() -> None:
    jobs = github_jobs()
    assert [j.capitalize() for j in jobs] == STAGES
    assert [WORKFLOW["jobs"][j].get("needs") for j in jobs] == [None, "check", "image"]
    assert any(".ci/run" in ln for ln in jobs["check"])
    assert any(ln.startswith("docker build") for ln in jobs["image"])
    assert any("drill run" in ln for ln in jobs["drill"])


def commands() -> list[list[str]]:
    lines = [c for cmds in jenkins_stages().values() for c in cmds]
    lines += [ln for run in github_jobs().values() for ln in run]
    return [shlex.split(ln.strip()) for ln in lines]


def test_every_command_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for argv in commands():
        if argv[-1] == ".ci/run":
            assert (ROOT / ".ci" / "run").exists()
        elif argv[0] == "make":
            for target in argv[1:]:
                assert re.search(rf"^{target}:", makefile, re.M), f"make has no target {target}"
        elif argv[0] == ".venv/bin/hybridops":
            parsed(argv[1:])  # an unknown command or flag raises
        elif argv[:2] == ["docker", "build"]:
            assert argv[-1] == "." and (ROOT / "Dockerfile").exists()
    hybridops = [a for a in commands() if a[0] == ".venv/bin/hybridops"]
    assert ["lab", "up"] in [a[1:] for a in hybridops]
