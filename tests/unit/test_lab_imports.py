"""The lab's modules import each other one way only, and reach the activities only through a
package's public face (its registry and interface), never a driver module or a private name."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "hybridops" / "lab"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in ``path`` (``names`` empty for ``import x``)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _module(path: Path) -> str:
    return "hybridops.lab" if path.stem == "__init__" else f"hybridops.lab.{path.stem}"


def test_no_import_circle_among_the_lab_modules() -> None:
    submodules = {p.stem for p in LAB.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in LAB.glob("*.py"):
        deps = graph.setdefault(_module(path), set())
        for module, names in _imports(path):
            if module == "hybridops.lab":  # `from hybridops.lab import dns_state`: a submodule
                deps.update(f"hybridops.lab.{n}" for n in names if n in submodules)
            elif module.startswith("hybridops.lab."):
                deps.add(module)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import circle among the lab's modules: {err.args[1]}") from None
    assert "hybridops.lab.lab" in order and len(graph) >= 8


def test_the_lab_reaches_activities_through_their_public_face() -> None:
    offences = []
    for path in LAB.glob("*.py"):
        for module, names in _imports(path):
            if not module.startswith("activities"):
                continue
            parts = module.split(".")
            package = ROOT.joinpath(*parts[:2])
            if package.is_dir() and len(parts) > 2:
                offences.append(f"{path.name}: {module} (use {'.'.join(parts[:2])})")
            offences.extend(f"{path.name}: {module}.{n} is private" for n in names if n.startswith("_"))
    assert offences == []
