"""Hypothesis strategies for the fuzz tests: wild JSON values, runbook inputs with wild fields,
and near-valid Alertmanager notifications. Shared by tests/unit and tests/lab."""

from __future__ import annotations

import enum
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel
from temporalio.contrib.pydantic import pydantic_data_converter

from hybridops.contracts.base import ApprovalInput, OperatorInput
from hybridops.contracts.bootstrap import BootstrapInput
from hybridops.contracts.burst import BurstInput
from hybridops.contracts.drill import DrillInput
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput

WORKFLOW_INPUTS: dict[str, type[BaseModel]] = {
    "FailoverWorkflow": FailoverInput,
    "FailbackWorkflow": FailbackInput,
    "BurstWorkflow": BurstInput,
    "DrillWorkflow": DrillInput,
    "BootstrapWorkflow": BootstrapInput,
}
"""Every workflow's input model, by workflow type."""
INPUT_MODELS: list[type[BaseModel]] = [*WORKFLOW_INPUTS.values(), ApprovalInput, OperatorInput]

NASTY_STRINGS = [
    "",
    " ",
    "auto",
    "azure",
    "onprem",
    "LATEST",
    "../../etc/passwd",
    "/var/lib/postgresql",
    "-rf",
    "--config=/dev/null",
    "a b",
    "a/b",
    "x\x00y",
    "\n",
    "\ud800",
    "a\udfffb",
    "😀",
    "${HOME}",
    "$(id)",
    "'; DROP TABLE app; --",
    "http://169.254.169.254/latest/meta-data/",
    "1e309",
    "NaN",
    "2026-11-26T16:42:29Z",
    "2026-11-26T16:42:29",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:00",
    "1900-01-01T00:00:00Z",
    "x" * 1001,
    "y" * 64,
]
NASTY_NUMBERS: list[float | int] = [
    0,
    -1,
    1,
    0.5,
    1e-300,
    59,
    3600,
    86400,
    86401,
    604800,
    604801,
    1e15,
    1e308,
    2**63,
    -(2**63),
    10**40,
    float("inf"),
    float("-inf"),
    float("nan"),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # nan and infinities included
    st.sampled_from(NASTY_NUMBERS),
    st.text(max_size=20),
    st.sampled_from(NASTY_STRINGS),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (with NaN and Infinity, which Python's json writes and the UI could send)."""


def _plausible(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of roughly the right type for a field: its enum's values, numbers near bounds."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _plausible(args[0])
    if args and type(None) in args:
        return st.one_of(st.none(), *(_plausible(a) for a in args if a is not type(None)))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from([m.value for m in annotation])
    if annotation is bool:
        return st.booleans()
    if annotation in (int, float):
        return st.one_of(st.integers(-10, 10**7), st.floats(-10, 1e7), st.sampled_from(NASTY_NUMBERS))
    if annotation is str:
        return st.one_of(st.text(max_size=80), st.sampled_from(NASTY_STRINGS))
    if annotation is datetime:
        return st.one_of(
            st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-23, minutes=-59))])).map(
                datetime.isoformat
            ),
            st.sampled_from(NASTY_STRINGS[-6:]),
        )
    if typing.get_origin(annotation) is list:
        return st.lists(_plausible(args[0]), max_size=12)
    return json_values


def input_objects(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects for ``model``: some of its fields with plausible or wild values, sometimes
    an unknown field."""
    fields = model.model_fields
    known = st.fixed_dictionaries(
        {},
        optional={name: st.one_of(_plausible(f.annotation), json_values) for name, f in fields.items()},
    )
    unknown = st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in fields), json_values, max_size=2
    )
    return st.builds(lambda a, b: {**a, **b}, known, st.one_of(st.just({}), st.just({}), unknown))


def encoded(value: Any) -> bytes | None:
    """``value`` as a client's pydantic data converter puts it in a workflow's start (None when
    the converter cannot encode it, e.g. a lone surrogate)."""
    try:
        return pydantic_data_converter.payload_converter.to_payloads([value])[0].data
    except Exception:
        return None


def named_fields(err: Exception, obj: dict[str, Any]) -> list[str]:
    """The top-level fields a ValidationError's locations name (they must be keys of ``obj``)."""
    from pydantic import ValidationError

    assert isinstance(err, ValidationError)
    return [str(e["loc"][0]) for e in err.errors() if e["loc"]]


# --------------------------------------------------------------------------- Alertmanager payloads

ALERTNAMES = ["HybridOpsNoWritablePrimary", "AutoFailover", "DiskAlmostFull"]
GOOD_TIMES = st.one_of(
    st.sampled_from(["2025-03-01T04:05:06.25Z", "2025-03-01T04:05:06", "2025-03-01T05:05:06+01:00"]),
    st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2199, 12, 30), timezones=st.just(UTC)
    ).map(datetime.isoformat),
)
TIMES = st.one_of(
    *[GOOD_TIMES] * 8,
    st.just("0001-01-01T00:00:00Z"),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-23))]),
    ).map(datetime.isoformat),
    st.sampled_from(NASTY_STRINGS[-6:]),
    json_values,
)


@st.composite
def alert(draw: st.DrawFn, valid: bool = False) -> dict[str, Any]:
    labels = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3))
    labels["alertname"] = draw(st.one_of(st.sampled_from(ALERTNAMES), st.text(max_size=12)))
    if valid:
        labels["alertname"] = draw(st.sampled_from(ALERTNAMES[:2]))
    if draw(st.integers(0, 9)) == 0:
        labels["drill"] = draw(st.sampled_from(["true", "TRUE", "false", ""]))
    out: dict[str, Any] = {
        "status": "firing" if valid else draw(st.sampled_from(["firing"] * 6 + ["resolved", "exploded"])),
        "labels": labels,
        "annotations": {"summary": draw(st.one_of(st.text(max_size=40), st.sampled_from(NASTY_STRINGS)))},
        "startsAt": draw(GOOD_TIMES if valid else TIMES),
        "endsAt": draw(st.one_of(st.just("0001-01-01T00:00:00Z"), TIMES)),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": draw(st.text(max_size=16)),
    }
    return out if valid else _mutate(draw, out)


def _mutate(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    """Now and then drop a key, replace a value with a wild one, or add an unknown key."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        key = draw(st.sampled_from(sorted(obj)))
        action = draw(st.sampled_from(["keep", "keep", "drop", "wild", "extra"]))
        if action == "drop":
            obj.pop(key, None)
        elif action == "wild":
            obj[key] = draw(json_values)
        elif action == "extra":
            obj[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        if not obj:
            break
    return obj


@st.composite
def notification(draw: st.DrawFn, valid: bool = False) -> dict[str, Any]:
    """An Alertmanager version-4 notification, nearly valid; with ``valid`` one that a route
    matches (firing, routed, with a drill label now and then)."""
    status = (
        "firing" if valid else draw(st.sampled_from(["firing"] * 6 + ["resolved", "resolved", "exploded"]))
    )
    least = 1 if valid or draw(st.integers(0, 9)) else 0
    alerts = draw(st.lists(alert(valid=valid), min_size=least, max_size=3))
    obj: dict[str, Any] = {
        "version": "4" if valid else draw(st.sampled_from(["4"] * 8 + ["3", 4])),
        "groupKey": f"{draw(st.text(max_size=30))}:{draw(st.uuids())}"
        if valid
        else draw(st.text(min_size=1 if draw(st.integers(0, 9)) else 0, max_size=40)),
        "truncatedAlerts": draw(st.one_of(st.just(0), st.just(0), st.integers(-5, 2**70))),
        "status": status,
        "receiver": "hybridops",
        "groupLabels": {"alertname": ALERTNAMES[0]},
        "commonLabels": {},
        "commonAnnotations": {"summary": draw(st.one_of(st.just(""), st.text(min_size=900, max_size=1200)))},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    return obj if valid else _mutate(draw, obj)


def body(value: Any) -> bytes:
    """A request body for ``value``: JSON as Python writes it (NaN, lone surrogates escaped)."""
    return json.dumps(value).encode()
