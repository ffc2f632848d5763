"""Validate evidence.json files against the repository's ``runbooks/evidence.schema.json``: the
unit tests (evidence built from every stored history) and the lab fixtures (every folder a lab
test's runs wrote) use the same check."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from hybridops.contracts.evidence import SCHEMA_FILE

SCHEMA = Path(__file__).parents[1] / SCHEMA_FILE


@functools.cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(data: Any) -> list[str]:
    """Each way ``data`` breaks the schema, as ``path: message`` (empty when it conforms)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


def assert_evidence_conforms(folder: Path) -> None:
    """Every ``evidence.json`` under ``folder`` conforms to the schema."""
    for path in sorted(folder.rglob("evidence.json")):
        errors = schema_errors(json.loads(path.read_text()))
        assert not errors, f"{path.relative_to(folder)} breaks {SCHEMA_FILE}:\n" + "\n".join(errors[:20])
