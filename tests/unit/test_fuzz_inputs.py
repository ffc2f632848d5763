"""Fuzz (hypothesis) every runbook's input model with JSON objects: valid fields with wild values,
unknown fields, wrong types. Validation passes, or raises a ValidationError naming the field;
a valid input never carries a number a run cannot wait for or a time it cannot subtract.

The starts of invalid ones as real workflows are in tests/lab/test_fuzz_inputs.py.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, ValidationError

from tests.fuzz import INPUT_MODELS, encoded, input_objects, named_fields

EXAMPLES = 250
tried: Counter[str] = Counter()
valid: Counter[str] = Counter()


def check(model: type[BaseModel], obj: dict[str, Any], raw: bytes) -> None:
    try:
        inp = model.model_validate_json(raw)
    except ValidationError as err:
        if [e["type"] for e in err.errors()] == ["json_invalid"]:
            # Not JSON to pydantic (an escaped lone surrogate, "\ud800", is the one way
            # json.dumps writes such a thing): no field to name, the position instead.
            assert "Invalid JSON" in str(err) and "column" in str(err), err
            return
        fields = named_fields(err, obj)
        assert fields, f"{model.__name__}: an error that names no field: {err}"
        for field in fields:
            # A field given, or a required one that is missing.
            assert field in obj or model.model_fields[field].is_required(), (model, field, obj)
            assert field in str(err)
        return
    valid[model.__name__] += 1
    # What a run does with its input must not overflow: a wait as a timedelta, a time against
    # an aware clock.
    for name, value in inp:
        if isinstance(value, float | int) and not isinstance(value, bool):
            assert value == value, name  # no nan
            datetime(2199, 1, 1, tzinfo=UTC) + timedelta(seconds=value)
        if isinstance(value, datetime):
            assert value.tzinfo is not None, name
            (datetime.now(UTC) - value).total_seconds()
        if isinstance(value, str):
            # At most 1000 characters, or the field's own bound where it declares a larger one
            # (an armored RSA signature is about 1.7 KB); never unbounded.
            declared = (getattr(m, "max_length", None) or 0 for m in model.model_fields[name].metadata)
            limit = max([1000, *declared])
            assert len(value) <= limit <= 4000, name


@pytest.mark.parametrize("model", INPUT_MODELS, ids=lambda m: m.__name__)
def test_any_object_validates_or_names_the_field(model: type[BaseModel], record_property: Any) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(obj=input_objects(model))
    def one(obj: dict[str, Any]) -> None:
        tried[model.__name__] += 1
        # Both ways a start can arrive: the SDK's converter, and JSON as typed into the UI
        # (which may say NaN or Infinity).
        for raw in {encoded(obj), json.dumps(obj).encode(errors="surrogatepass")} - {None}:
            assert raw is not None
            check(model, obj, raw)

    one()
    n, ok = tried[model.__name__], valid[model.__name__]
    record_property("inputs_tried", n)
    print(f"{model.__name__}: {n} inputs tried ({ok} validations passed, over both encodings)")
    assert 0 < ok < 2 * n  # both kinds were generated
