"""No layer reaches up (DESIGN.md, Layout): the kernel (hybridops/ below the CLI and the lab)
imports neither workflows, activities nor workers; workflows and activities do not import each
other or the workers; the CLI's command modules do not import the app that gathers them.
Function-local imports count: they are the way a layer usually reaches up unseen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def reaching(folder: str, forbidden: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(skip):
            continue
        for mod in sorted(imports(path)):
            if mod.split(".")[0] in forbidden or mod in forbidden:
                found.append(f"{rel}: {mod}")
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden", "skip"),
    [
        ("hybridops", ("workflows", "activities", "workers"), ("hybridops/cli/", "hybridops/lab/")),
        ("workflows", ("activities", "workers"), ()),
        ("activities", ("workflows", "workers"), ()),
    ],
)
def test_no_layer_reaches_up(folder: str, forbidden: tuple[str, ...], skip: tuple[str, ...]) -> None:
    assert reaching(folder, forbidden, skip) == []


def test_cli_command_modules_do_not_import_the_app() -> None:
    found = [
        f"{p.name}: {m}"
        for p in sorted((ROOT / "hybridops" / "cli").glob("*.py"))
        if p.name not in ("__init__.py", "__main__.py")
        for m in imports(p)
        if m == "hybridops.cli"
    ]
    assert found == []
