"""Workers serve their queue: every activity a workflow schedules is registered by some worker,
once, and a worker registers (and builds the drivers of) its queue's steps only."""

from __future__ import annotations

import ast
import importlib
import typing
from pathlib import Path

import pytest
from temporalio import activity

from activities.common import activity_name
from drivers.lazy import Drivers, Part
from hybridops.constants import ActivityName, TaskQueue
from hybridops.contracts.base import CheckpointInput, CheckpointResult
from hybridops.errors import ConfigError
from hybridops.inventory import DnsSettings, Inventory, Placement, SiteConfig
from workers.main import every_activity, registrations, warm_parts
from workflows.steps import STEPS

WORKFLOWS = Path(__file__).parents[2] / "workflows"
SCHEDULE = {"execute_activity", "execute_local_activity"}


def inventory(tmp_path: Path, placement: Placement) -> Inventory:
    return Inventory(
        placement=placement,
        sites={
            "onprem": SiteConfig(host="127.0.0.1", data_dir=tmp_path / "onprem"),
            "azure": SiteConfig(cloud="azure", host="127.0.0.2", data_dir=tmp_path / "azure"),
        },
        dns=DnsSettings(zone="example.com", record="db.example.com", endpoint_url="http://127.0.0.1:1"),
    )


def scheduled_elsewhere() -> dict[str, str]:
    """Names the workflows schedule other than through a step (``step.activity``), with where:
    the first argument of every ``execute_activity``/``execute_local_activity`` in workflows/."""
    found: dict[str, str] = {}
    for path in sorted(WORKFLOWS.glob("*.py")):
        module = importlib.import_module(f"workflows.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in SCHEDULE or not node.args:
                continue
            arg, where = node.args[0], f"{path.name}:{node.lineno}"
            if isinstance(arg, ast.Attribute) and arg.attr == "activity":
                continue  # a Step's: every Step is checked through STEPS
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found[arg.value] = where
            elif isinstance(arg, ast.Name) and isinstance(getattr(module, arg.id, None), str):
                found[getattr(module, arg.id)] = where
            elif (
                isinstance(arg, ast.Attribute)
                and isinstance(arg.value, ast.Name)
                and arg.value.id == "ActivityName"
            ):
                found[ActivityName[arg.attr].value] = where
            else:
                pytest.fail(
                    f"{where}: schedules an activity by a name this test cannot read: {ast.unparse(arg)}"
                )
    return found


@pytest.mark.parametrize("placement", list(Placement))
def test_every_scheduled_activity_is_registered_once(tmp_path: Path, placement: Placement) -> None:
    inv = inventory(tmp_path, placement)
    by_queue = registrations(inv, list(TaskQueue), every_activity(inv, None))
    served: dict[str, set[TaskQueue]] = {}
    for queue, acts in by_queue.items():
        names = [activity_name(fn) for fn in acts]
        assert len(names) == len(set(names)), f"{queue} registers a name twice: {sorted(names)}"
        for name in names:
            served.setdefault(name, set()).add(queue)
    # Every activity a workflow schedules goes through the step table, the lease's too: the
    # table is where its queue comes from.
    assert scheduled_elsewhere() == {}
    for name in (ActivityName.ACQUIRE_LEASE, ActivityName.LEASE_HOLDER_OPEN):
        assert STEPS[name].queue == TaskQueue.CONTROL and TaskQueue.CONTROL in served[name.value], name
    for name, step in STEPS.items():
        assert step.queue in served.get(name, set()), f"{name} is not registered on its queue {step.queue}"
        if placement == Placement.COLOCATED or step.local_only:
            # Run as a local activity: on the worker of the workflow, the control queue's.
            assert TaskQueue.CONTROL in served[name], name
    assert set(served) == {n.value for n in ActivityName}, "every named activity is served"


def test_every_step_names_the_input_and_result_types_of_its_activity(tmp_path: Path) -> None:
    """The step table's types are the ones the activity is declared with, so a workflow that
    mypy lets pass the step's input gets what the activity returns."""
    inv = inventory(tmp_path, Placement.QUEUES)
    by_name = {activity_name(fn): fn for fn in every_activity(inv, None)}
    for name, step in STEPS.items():
        hints = typing.get_type_hints(by_name[name.value])
        [arg] = [t for k, t in hints.items() if k != "return"]
        assert (arg, hints["return"]) == (step.input, step.result), name


def test_a_dns_worker_registers_the_dns_steps_and_builds_no_other_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("a DNS worker built a database, infra, backup or signals driver")

    for factory in ("make_postgres_driver", "make_infra_driver", "make_backup_driver"):
        monkeypatch.setattr(f"drivers.lazy.{factory}", refuse)
    monkeypatch.setattr("drivers.signals.make_signal_drivers", refuse)
    inv = inventory(tmp_path, Placement.QUEUES)
    acts = registrations(inv, [TaskQueue.DNS], every_activity(inv, None))[TaskQueue.DNS]
    dns_steps = {name.value for name, step in STEPS.items() if step.queue == TaskQueue.DNS}
    assert {activity_name(fn) for fn in acts} == dns_steps == {"dns_cutover", "set_traffic", "probe_dns"}


def test_the_control_worker_registers_every_step_when_colocated_and_only_its_own_on_queues(
    tmp_path: Path,
) -> None:
    for placement in Placement:
        inv = inventory(tmp_path, placement)
        acts = registrations(inv, [TaskQueue.CONTROL], every_activity(inv, None))[TaskQueue.CONTROL]
        names = {activity_name(fn) for fn in acts}
        if placement == Placement.COLOCATED:
            assert names == {n.value for n in ActivityName}
        else:
            assert "dns_cutover" not in names and "promote_standby" not in names
            assert {"plan_failover", "checkpoint", "write_evidence", "acquire_lease"} <= names


def test_an_activity_given_twice_or_served_by_no_queue_is_refused(tmp_path: Path) -> None:
    inv = inventory(tmp_path, Placement.QUEUES)

    @activity.defn(name="checkpoint")
    async def standin(inp: CheckpointInput) -> CheckpointResult:
        return CheckpointResult(detail=inp.name)

    @activity.defn(name="no_such_step")
    async def stray(inp: CheckpointInput) -> CheckpointResult:
        return CheckpointResult(detail=inp.name)

    assert registrations(inv, [TaskQueue.CONTROL], [standin])[TaskQueue.CONTROL] == [standin]
    with pytest.raises(ConfigError, match=r"twice.*checkpoint"):
        registrations(inv, [TaskQueue.CONTROL], [standin, *every_activity(inv, None)])
    with pytest.raises(ConfigError, match="no_such_step"):
        registrations(inv, [TaskQueue.CONTROL], [stray])


def test_a_worker_warms_the_drivers_of_its_queues_steps(tmp_path: Path) -> None:
    queues = inventory(tmp_path, Placement.QUEUES)
    assert warm_parts(queues, [TaskQueue.INFRA]) == [Part.INFRA]
    assert warm_parts(queues, [TaskQueue.DNS]) == [Part.POSTGRES, Part.DNS, Part.TOPOLOGY]
    assert Part.INFRA not in warm_parts(queues, [TaskQueue.CONTROL])
    colocated = inventory(tmp_path, Placement.COLOCATED)
    assert set(warm_parts(colocated, [TaskQueue.CONTROL])) >= {Part.POSTGRES, Part.DNS, Part.INFRA}


def test_warm_builds_each_part_once_and_leaves_one_that_fails_to_its_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: object) -> None:
        raise ConfigError("infra.driver: no driver 'nope'")

    monkeypatch.setattr("drivers.lazy.make_infra_driver", refuse)
    drivers = Drivers(inventory(tmp_path, Placement.QUEUES))
    assert drivers.warm([Part.DNS, Part.INFRA, Part.DNS]) == [Part.DNS]
    dns = drivers.dns
    assert drivers.warm([Part.DNS]) == [Part.DNS] and drivers.dns is dns
    assert "infra.driver: no driver 'nope'" in caplog.text
    with pytest.raises(ConfigError, match=r"infra\.driver"):
        assert drivers.infra is None
