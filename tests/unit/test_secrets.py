"""Secrets: the length floor, redaction of multi-line secrets in tool output, Temporal's TLS
and API key settings (refused in clear text) and the one place that builds them."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from drivers.backup.errors import BackupToolFailed
from drivers.backup.process import run_tool
from drivers.process import REDACTED, redact
from hybridops.client import connect_options
from hybridops.errors import ConfigError
from hybridops.inventory import TemporalSettings, parse_inventory
from hybridops.secrets import MIN_SECRET_LEN, resolve_reference, resolve_secret

GOOD = {
    "sites": {
        "onprem": {"host": "10.0.0.1", "data_dir": "/srv/pg"},
        "azure": {"cloud": "azure", "host": "10.1.0.1", "data_dir": "/srv/pg"},
    },
    "dns": {"zone": "corp.example.com", "record": "db.corp.example.com"},
}


def pem(label: str = "PRIVATE KEY", seed: int = 7) -> str:
    body = base64.b64encode(bytes((seed * i + 11) % 256 for i in range(300))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


# --------------------------------------------------------------------------- the floor


def test_a_secret_shorter_than_the_floor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MIN_SECRET_LEN == 8
    monkeypatch.setenv("HYBRIDOPS_TEST_SHORT", "hunter2")
    with pytest.raises(ConfigError, match=r"env:HYBRIDOPS_TEST_SHORT.*at least 8") as caught:
        resolve_secret("env:HYBRIDOPS_TEST_SHORT")
    assert "hunter2" not in str(caught.value)
    assert resolve_reference("env:HYBRIDOPS_TEST_SHORT") == "hunter2"  # a setting may be short
    monkeypatch.setenv("HYBRIDOPS_TEST_SHORT", "hunter22")
    assert resolve_secret("env:HYBRIDOPS_TEST_SHORT") == "hunter22"


# --------------------------------------------------------------------------- redaction


def test_a_pem_block_is_redacted_whole_and_line_by_line() -> None:
    key = pem()
    lines = key.strip().splitlines()
    out = redact(f"loaded:\n{key}then line 3 alone: {lines[3]}\nescaped: {json.dumps(key)}", [key])
    assert all(line not in out for line in lines), out
    assert out.count(REDACTED) >= 3 and "then line 3 alone" in out


def test_json_credentials_and_their_private_key_are_redacted() -> None:
    creds = json.dumps(
        {"type": "service_account", "client_email": "burst@p.iam.example", "private_key": pem(seed=13)},
        indent=2,
    )
    decoded_key = json.loads(creds)["private_key"]
    text = f"using {creds}\nkey was:\n{decoded_key}\nin json: {json.dumps(decoded_key)}"
    out = redact(text, [creds])
    for line in decoded_key.strip().splitlines():
        assert line not in out, line
    assert "burst@p.iam.example" not in out


async def test_tool_output_never_shows_a_multi_line_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real child prints the secret it was given, whole and a line at a time, on stdout and
    stderr: both come back redacted, and so does the error of its failure."""
    key = pem(seed=29)
    monkeypatch.setenv("HYBRIDOPS_TEST_PEM", key)
    script = (
        "import os, sys\n"
        "k = os.environ['TOOL_KEY']\n"
        "print(k)\n"
        "for line in k.splitlines(): print('line:', line)\n"
        "sys.stderr.write('Error: bad key ' + k.splitlines()[2] + '\\n')\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    secret = resolve_secret("env:HYBRIDOPS_TEST_PEM")
    assert secret is not None
    env = {"PATH": os.environ["PATH"], "TOOL_KEY": secret}
    out = await run_tool([sys.executable, "-c", script, "0"], timeout=30, env=env, secrets=[secret])
    for line in key.strip().splitlines():
        assert line not in out.stdout and line not in out.stderr
    assert "line: " + REDACTED in out.stdout
    with pytest.raises(BackupToolFailed) as failed:
        await run_tool([sys.executable, "-c", script, "1"], timeout=30, env=env, secrets=[secret])
    assert "bad key" in str(failed.value) and all(line not in str(failed.value) for line in key.splitlines())


# --------------------------------------------------------------------------- Temporal TLS


@pytest.mark.parametrize(
    ("temporal", "key"),
    [
        ({"api_key_ref": "env:TEMPORAL_API_KEY"}, "temporal.api_key_ref"),
        ({"api_key_ref": "env:TEMPORAL_API_KEY", "tls": False}, "temporal.api_key_ref"),
        ({"ca_cert_ref": "file:ca.pem"}, "temporal.ca_cert_ref"),
        ({"tls": True, "client_cert_ref": "file:c.pem"}, "temporal.client_key_ref"),
        ({"tls": True, "client_key_ref": "file:k.pem"}, "temporal.client_cert_ref"),
    ],
)
def test_temporal_credentials_without_tls_are_inventory_errors(temporal: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_inventory({**GOOD, "temporal": temporal})


def test_connect_options_plain_for_the_lab() -> None:
    assert connect_options(TemporalSettings()) == {"tls": False, "api_key": None}
    sneaked = TemporalSettings.model_construct(api_key_ref="env:X", tls=False)  # validation bypassed
    with pytest.raises(ConfigError, match=r"temporal\.api_key_ref"):
        connect_options(sneaked)


def test_connect_options_build_mtls_and_api_key_from_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = pem("CERTIFICATE", 3), pem("CERTIFICATE", 5), pem("PRIVATE KEY", 9)
    for name, text in (("ca.pem", ca), ("client.pem", cert), ("client.key", key)):
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("HYBRIDOPS_TEST_TEMPORAL_KEY", "tcld-api-key-0123456789")
    settings = parse_inventory(
        {
            **GOOD,
            "temporal": {
                "address": "hybridops.a1b2c.tmprl.cloud:7233",
                "tls": True,
                "ca_cert_ref": f"file:{tmp_path / 'ca.pem'}",
                "client_cert_ref": f"file:{tmp_path / 'client.pem'}",
                "client_key_ref": f"file:{tmp_path / 'client.key'}",
                "server_name": "hybridops.a1b2c.tmprl.cloud",
                "api_key_ref": "env:HYBRIDOPS_TEST_TEMPORAL_KEY",
            },
        }
    ).temporal
    options = connect_options(settings)
    tls = options["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == ca.encode() and tls.client_cert == cert.encode()
    assert tls.client_private_key == key.encode() and tls.domain == "hybridops.a1b2c.tmprl.cloud"
    assert options["api_key"] == "tcld-api-key-0123456789"
    server_only = connect_options(TemporalSettings(tls=True))["tls"]
    assert isinstance(server_only, TLSConfig) and server_only.client_cert is None
