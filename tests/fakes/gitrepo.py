"""A real GitOps repository for the tests: a bare repository with one commit on ``main``, as
the ``git`` GitOps driver finds a platform team's (no server: git's local transport)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def run_git(cwd: Path, *args: str) -> str:
    """``git args`` in ``cwd``; its stdout (a failure raises)."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def seeded_bare(parent: Path, name: str = "gitops.git") -> Path:
    """A bare repository ``parent/name`` whose ``main`` holds one commit (a README), made anew."""
    repo, seed = parent / name, parent / f"{name}-seed"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(seed, ignore_errors=True)
    run_git(parent, "init", "-q", "--bare", "-b", "main", str(repo))
    run_git(parent, "clone", "-q", str(repo), str(seed))
    (seed / "README.md").write_text("platform\n")
    run_git(seed, "add", "README.md")
    run_git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    run_git(seed, "push", "-q", "origin", "HEAD:refs/heads/main")
    shutil.rmtree(seed)
    return repo


def head(repo: Path, branch: str = "main") -> str:
    """The commit ``branch`` is at."""
    return run_git(repo, "rev-parse", branch).strip()
