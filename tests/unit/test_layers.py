"""No layer reaches up (DESIGN.md, Layout), with no exemptions: the kernel (``hybridops/``
below the CLI and the lab) imports nothing above it; ``drivers/`` only the kernel, and nothing
of Temporal; ``activities/`` only drivers and the kernel; ``workflows/`` only the kernel's pure
parts (contracts, constants, the decision engine, the topology rules, the policy model, the
errors); the CLI and the lab nothing from ``activities/`` or ``workers/``. Function-local
imports count: they are the way a layer usually reaches up unseen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("hybridops", "drivers", "activities", "workflows", "workers")
TOP = ("hybridops.cli", "hybridops.lab")
RUNBOOK_CONTRACTS = tuple(
    f"hybridops.contracts.{name}"
    for name in ("failover", "failback", "drill", "burst", "bootstrap", "lease", "evidence", "readiness")
)
"""A runbook's own types: drivers know nothing of runbooks, so they import none of these."""
PURE_KERNEL = (
    "hybridops.capabilities",
    "hybridops.constants",
    "hybridops.contracts",
    "hybridops.decision",
    "hybridops.errors",
    "hybridops.health",
    "hybridops.identity",
    "hybridops.policy",
    "hybridops.readiness",
    "hybridops.signing",
    "hybridops.topology",
)
"""What deterministic workflow code may use of the kernel: no I/O, no clock, no secrets."""


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # ``from hybridops import cli`` reaches hybridops.cli
            out |= {f"{node.module}.{a.name}" for a in node.names if node.module in FIRST_PARTY}
    return out


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def files(folder: str, skip: tuple[str, ...] = ()) -> list[Path]:
    return [
        p
        for p in sorted((ROOT / folder).rglob("*.py"))
        if not p.relative_to(ROOT).as_posix().startswith(skip)
    ]


def offences(paths: list[Path], allowed: tuple[str, ...], forbidden: tuple[str, ...] = ()) -> list[str]:
    """Each first-party import not under ``allowed``, and each import under ``forbidden``."""
    found = []
    for path in paths:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        for mod in sorted(imports(path)):
            first_party = mod.split(".")[0] in FIRST_PARTY
            if (first_party and not under(mod, allowed)) or under(mod, forbidden):
                found.append(f"{rel}: {mod}")
    return found


def kernel_files() -> list[Path]:
    return files("hybridops", skip=("hybridops/cli/", "hybridops/lab/"))


@pytest.mark.parametrize(
    ("layer", "paths", "allowed", "forbidden"),
    [
        ("kernel", kernel_files, ("hybridops",), TOP),
        (
            "drivers",
            lambda: files("drivers"),
            ("hybridops", "drivers"),
            (*TOP, *RUNBOOK_CONTRACTS, "temporalio"),
        ),
        ("activities", lambda: files("activities"), ("hybridops", "drivers", "activities"), TOP),
        ("workflows", lambda: files("workflows"), (*PURE_KERNEL, "workflows"), ()),
        (
            "workers",
            lambda: files("workers"),
            ("hybridops", "drivers", "activities", "workflows", "workers"),
            TOP,
        ),
        (
            "cli and lab",
            lambda: files("hybridops/cli") + files("hybridops/lab"),
            FIRST_PARTY,
            ("activities", "workers"),
        ),
    ],
)
def test_no_layer_reaches_up(
    layer: str, paths: object, allowed: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    assert callable(paths)
    assert offences(paths(), allowed, forbidden) == [], layer


def test_the_check_sees_an_offence(tmp_path: Path) -> None:
    """The check is not vacuous: a function-local import reaching up is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from activities.sites import SiteActivities\n")
    assert offences([bad], ("hybridops",)) == ["bad.py: activities.sites"]
    assert offences([bad], ("hybridops", "activities"), ("activities.sites",)) == ["bad.py: activities.sites"]


def test_drivers_answer_in_their_own_types() -> None:
    """No public method of a driver interface returns a step's result (an ActivityResult):
    drivers return their own value types, and the activity makes its result of them."""
    import importlib
    import inspect
    import typing

    from hybridops.contracts.base import ActivityResult

    found, seen = [], set()
    for base in sorted((ROOT / "drivers").rglob("base.py")):
        module = importlib.import_module(base.relative_to(ROOT).with_suffix("").as_posix().replace("/", "."))
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not inspect.isabstract(cls):
                continue
            for name, fn in inspect.getmembers(cls, inspect.isfunction):
                if name.startswith("_"):
                    continue
                seen.add(f"{cls_name}.{name}")
                returned = typing.get_type_hints(fn).get("return")
                if inspect.isclass(returned) and issubclass(returned, ActivityResult):
                    found.append(f"{module.__name__}.{cls_name}.{name} -> {returned.__name__}")
    assert {"PostgresDriver.fence", "PostgresDriver.promote", "DnsDriver.ensure_record"} <= seen
    assert found == []


def test_cli_command_modules_do_not_import_the_app() -> None:
    found = [
        f"{p.name}: {m}"
        for p in sorted((ROOT / "hybridops" / "cli").glob("*.py"))
        if p.name not in ("__init__.py", "__main__.py")
        for m in imports(p)
        if m == "hybridops.cli"
    ]
    assert found == []
