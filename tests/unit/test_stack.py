"""The deployable stack (docker-compose.yml, Dockerfile, .env, infra/compose/) against the code:
every command and flag a service runs exists in the CLI (the typer app's click commands, the
workers' argparse parser) and parses; every port one side names is the port the other side
listens on; every environment variable is one the code reads; every secret the inventory
names is mounted, into the services whose queue needs it and no others. A renamed flag breaks
this test, not somebody's deploy. No Docker engine runs here: ``.ci/run`` adds
``docker-compose config`` and hadolint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from hybridops.cli import app
from hybridops.constants import TaskQueue
from hybridops.inventory import HOME_ENV, INVENTORY_ENV, Inventory, load_inventory, parse_listen
from workers.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INVENTORY_FILE = ROOT / "infra" / "compose" / "inventory.yaml"
IMAGE = "${HYBRIDOPS_IMAGE}"

FLAGS_LANDING_WITH_ISSUE_16: set[str] = set()
"""Flags of ``python -m workers`` that the compose file's commented site-agent service uses and
that land with issue 16 (``--site``). When a flag lands, remove it from here: the test then
checks it against the parser like every other."""


def hybridops_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in SERVICES.items() if s.get("image") == IMAGE}


# typer carries its own copy of click (typer._click), without the names of click's public API:
# the commands are read through the methods every click command and group has.


def resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command ``hybridops argv...`` runs, and its own arguments."""
    cmd: Any = typer.main.get_command(app)
    args = list(argv)
    while hasattr(cmd, "get_command") and args and not args[0].startswith("-"):
        sub = cmd.get_command(cmd.make_context("hybridops", [], resilient_parsing=True), args[0])
        assert sub is not None, f"hybridops has no command {' '.join(argv[: len(argv) - len(args) + 1])!r}"
        cmd, args = sub, args[1:]
    return cmd, args


def parsed(argv: list[str]) -> dict[str, Any]:
    """``hybridops argv...``'s parameters, as click parses them (an unknown flag raises)."""
    cmd, args = resolve(argv)
    with cmd.make_context("hybridops", args) as ctx:
        return dict(ctx.params)


def entrypoint() -> list[str]:
    (line,) = [ln for ln in DOCKERFILE.splitlines() if ln.startswith("ENTRYPOINT")]
    return list(yaml.safe_load(line.removeprefix("ENTRYPOINT")))


def port(address: str) -> int:
    return parse_listen(address, "test")[1]


def inventory() -> Inventory:
    return load_inventory(INVENTORY_FILE)


# ---------------------------------------------------------------------- commands and flags


def test_the_image_runs_the_console_script() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert entrypoint()[-1] == "hybridops"
    assert re.search(r'^hybridops = "hybridops\.cli:main"$', pyproject, re.M)


@pytest.mark.parametrize("service", sorted(hybridops_services()))
def test_every_command_parses(service: str) -> None:
    params = parsed(SERVICES[service]["command"])
    if params.get("metrics_listen") is not None:
        parse_listen(params["metrics_listen"], f"{service}: --metrics-listen")
    if params.get("listen") is not None:
        parse_listen(params["listen"], f"{service}: --listen")


def test_a_worker_per_task_queue() -> None:
    served: dict[str, str] = {}
    for name, service in hybridops_services().items():
        cmd = service["command"]
        if cmd[0] == "worker":
            (queue,) = parsed(cmd)["queue"]
            assert queue in {q.value for q in TaskQueue}, f"{name}: no task queue {queue!r}"
            assert queue not in served, f"{name} and {served.get(queue)} both serve {queue}"
            served[queue] = name
    assert set(served) == {q.value for q in TaskQueue}


def test_the_check_sees_a_renamed_flag() -> None:
    with pytest.raises(Exception, match="No such option: --queues"):
        parsed(["worker", "--queues", "hybridops-control"])
    with pytest.raises(AssertionError, match="no command"):
        resolve(["serve", "alert"])


def commented_agent_commands() -> list[list[str]]:
    """The commented site-agent services' commands (``python -m workers --site ...``)."""
    text = (ROOT / "docker-compose.yml").read_text()
    return [yaml.safe_load(m) for m in re.findall(r"^\s*#\s+command: (\[.*\])\s*$", text, re.M)]


def test_the_site_agent_command_uses_flags_the_workers_have_or_will_have() -> None:
    commands = commented_agent_commands()
    assert commands, "the commented site-agent service is gone: drop this test or its list"
    parser = build_parser()
    known = {opt for action in parser._actions for opt in action.option_strings}
    landed = FLAGS_LANDING_WITH_ISSUE_16 & known
    assert not landed, f"{landed} exist now: remove them from FLAGS_LANDING_WITH_ISSUE_16"
    for cmd in commands:
        assert cmd[:3] == ["python", "-m", "workers"]
        args = cmd[3:]
        pending = [i for i, a in enumerate(args) if a in FLAGS_LANDING_WITH_ISSUE_16]
        for i in reversed(pending):  # the flag and its value
            del args[i : i + 2]
        parser.parse_args(args)  # exits (SystemExit 2) on an unknown flag or a bad queue


# ---------------------------------------------------------------------- ports


def listen_port(service: str, flag: str) -> int:
    value = parsed(SERVICES[service]["command"])[flag]
    assert value is not None, f"{service} has no --{flag.replace('_', '-')}"
    return port(value)


def test_ports_match_on_both_sides() -> None:
    inv = inventory()
    exposed = {int(p) for ln in DOCKERFILE.splitlines() if ln.startswith("EXPOSE") for p in ln.split()[1:]}
    receiver = listen_port("alert-receiver", "listen")
    codec = listen_port("codec-server", "listen")
    assert receiver == port(inv.alerts.listen)
    assert codec == port(inv.temporal.codec.listen)
    assert {receiver, codec} <= exposed
    # The codec server is published where the UI's browser calls it.
    assert SERVICES["codec-server"]["ports"] == [f"${{CODEC_PORT}}:{codec}"]
    assert (
        SERVICES["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:${CODEC_PORT}"
    )
    # Temporal: the inventory's address is the service and its port.
    host, temporal_port = parse_listen(inv.temporal.address, "temporal.address")
    assert host in SERVICES and SERVICES[host]["ports"] == [f"${{TEMPORAL_PORT}}:{temporal_port}"]
    # Alertmanager posts to the receiver's listener.
    am = yaml.safe_load((ROOT / "infra/compose/alertmanager/alertmanager.yml").read_text())
    (hook,) = next(r for r in am["receivers"] if r["name"] == "hybridops")["webhook_configs"]
    assert hook["url"] == f"http://alert-receiver:{receiver}/alerts"
    assert hook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/alert_token"
    assert "alert_token" in SERVICES["alertmanager"]["secrets"]


def test_prometheus_scrapes_every_process_where_it_serves() -> None:
    prom = yaml.safe_load((ROOT / "infra/compose/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "hybridops"]
    targets = {t for c in job["static_configs"] for t in c["targets"]}
    expected = {f"{name}:{listen_port(name, 'metrics_listen')}" for name in hybridops_services()}
    assert targets == expected
    exposed = {int(p) for ln in DOCKERFILE.splitlines() if ln.startswith("EXPOSE") for p in ln.split()[1:]}
    assert {int(t.rpartition(":")[2]) for t in targets} <= exposed
    # Each process's health check asks its own metrics endpoint.
    for name, service in hybridops_services().items():
        assert f":{listen_port(name, 'metrics_listen')}/metrics" in " ".join(service["healthcheck"]["test"])
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    mounts = SERVICES["prometheus"]["volumes"]
    assert "./infra/prometheus/rules:/etc/prometheus/rules:ro" in mounts


# ---------------------------------------------------------------------- environment, files, versions


def test_environment_variables_are_the_ones_the_code_reads() -> None:
    for name, service in hybridops_services().items():
        assert set(service["environment"]) == {INVENTORY_ENV, HOME_ENV}, name
        assert service["environment"][INVENTORY_ENV] == "/etc/hybridops/inventory.yaml"
        mount = f"./infra/compose/inventory.yaml:{service['environment'][INVENTORY_ENV]}:ro"
        assert mount in service["volumes"], name
    assert f"{INVENTORY_ENV}=/etc/hybridops/inventory.yaml" in DOCKERFILE
    assert f"{HOME_ENV}=/var/lib/hybridops" in DOCKERFILE
    # Evidence lands in a volume: the inventory's output_dir is where it is mounted, a folder
    # the image's user owns (a named volume takes the image folder's ownership).
    output_dir = str(inventory().output_dir)
    assert "evidence:" + output_dir in SERVICES["worker-control"]["volumes"]
    assert f"install -d -o 10001 -g 10001 {output_dir}" in DOCKERFILE
    assert "USER 10001:10001" in DOCKERFILE


def test_every_version_and_variable_comes_from_dot_env() -> None:
    env = dict(
        ln.split("=", 1) for ln in (ROOT / ".env").read_text().splitlines() if ln and not ln.startswith("#")
    )
    used = set(re.findall(r"\$\{([A-Z_]+)\}", (ROOT / "docker-compose.yml").read_text()))
    assert used <= set(env), f"not in .env: {sorted(used - set(env))}"
    for name, service in SERVICES.items():
        image = service.get("image", "")
        pinned = re.fullmatch(r"[\w./-]+:\$\{[A-Z_]+\}|\$\{HYBRIDOPS_IMAGE\}", image)
        assert pinned, f"{name}: {image!r} is not pinned in .env"
    for ln in DOCKERFILE.splitlines():
        if ln.startswith("ARG") and "_IMAGE=" in ln:
            assert re.search(r":\d[\w.-]*$", ln), f"unpinned base: {ln}"


def test_every_host_path_mounted_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


# ---------------------------------------------------------------------- secrets


def secret_refs(inv: Inventory, who: str) -> set[str]:
    """The compose secrets (``file:/run/secrets/NAME``) a service needs, by what it runs."""
    refs: list[str | None] = [k.key_ref for k in inv.temporal.codec.keys]  # every client
    if who == TaskQueue.DB.value:
        refs += [s.password_ref for s in inv.sites.values()]
        refs += [s.cnpg.kubeconfig_ref for s in inv.sites.values() if s.cnpg]
        refs += list(inv.backup.walg_env.values())
    elif who == TaskQueue.INFRA.value:
        refs += list(inv.infra.terraform.secret_env.values())
    elif who == TaskQueue.DNS.value:
        refs += [inv.dns.credentials_ref]
    elif who == "alerts":
        refs += [inv.alerts.token_ref]
    elif who == "codec":
        refs += [inv.temporal.codec.token_ref]
    names = set()
    for ref in refs:
        if ref is None:
            continue
        assert ref.startswith("file:/run/secrets/"), f"{ref}: not a compose secret"
        names.add(ref.removeprefix("file:/run/secrets/"))
    return names


def test_each_service_holds_only_its_own_credentials() -> None:
    inv = inventory()
    declared = set(COMPOSE["secrets"])
    for name, service in hybridops_services().items():
        cmd = service["command"]
        who = parsed(cmd)["queue"][0] if cmd[0] == "worker" else cmd[1]  # serve alerts|codec
        assert set(service.get("secrets", [])) == secret_refs(inv, who), name
        assert set(service.get("secrets", [])) <= declared
    for name, secret in COMPOSE["secrets"].items():
        assert secret == {"file": f"./secrets/{name}"}, name
    stack_secrets = (ROOT / "scripts" / "stack-secrets").read_text()
    for name in declared:
        assert re.search(rf"\b{name}\b", stack_secrets), f"scripts/stack-secrets does not make {name}"


SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|PWD|TOKEN|SECRET|KEY|CREDENTIAL", re.I)


def test_no_secret_is_a_literal_value() -> None:
    for name, service in SERVICES.items():
        env = service.get("environment", {})
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            if SECRET_WORDS.search(key):
                assert str(value).startswith("/run/secrets/"), f"{name}: {key} is a literal value"
    assert not (ROOT / "secrets").exists() or "secrets/" in (ROOT / ".gitignore").read_text()


def test_the_compose_inventory_loads() -> None:
    inv = inventory()
    assert inv.placement.value == "queues"  # a worker per queue, each with its credentials
    assert inv.temporal.codec.enabled


def test_hybridops_worker_hands_its_flags_to_the_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hybridops worker`` becomes ``python -m workers`` with the same queue and metrics flags,
    and those parse there too."""
    from hybridops.cli import serve

    became: list[list[str]] = []
    monkeypatch.setattr(serve, "inventory", inventory)
    monkeypatch.setattr(serve.os, "execv", lambda path, argv: became.append(argv))
    serve.worker(queue=["hybridops-dns"], metrics_listen="0.0.0.0:9464")
    (argv,) = became
    assert argv[1:3] == ["-m", "workers"]
    args = build_parser().parse_args(argv[3:])
    assert (args.queue, args.metrics_listen) == (["hybridops-dns"], "0.0.0.0:9464")
