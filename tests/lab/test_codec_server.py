"""``hybridops serve codec`` with the real Temporal UI (in headless Chromium) and the real CLI.

The codec server runs as the CLI command, from an inventory file with a key and a token. A
run is started with an encrypted input. In a browser:

* a dev server whose UI has ``--ui-codec-endpoint`` pointing at the codec server shows the
  decoded input on the run's page (the browser's calls carry the bearer token, as an SSO
  proxy or the UI's "pass access token" would: the lab's UI has no login);
* the same UI without the token, and a dev server whose UI has no codec endpoint, show the
  sealed payload's base64 and never the clear text.

Screenshots of what a user sees are kept in the test's output directory (printed).
The ``temporal`` CLI with ``--codec-endpoint`` and ``--codec-auth`` decodes the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from hybridops.client import data_converter
from hybridops.constants import WorkflowType
from hybridops.contracts.failover import FailoverInput
from hybridops.inventory import Inventory, TemporalSettings, write_inventory
from tests.conftest import free_port
from tests.lab.helpers import eventually

TEMPORAL = Path(sys.executable).parent / "temporal"
KEY_ENV = "HYBRIDOPS_TEST_UI_CODEC_KEY"
TOKEN_ENV = "HYBRIDOPS_TEST_UI_CODEC_TOKEN"
NOBODY_QUEUE = "codec-test-no-worker"
"""No worker polls it: the runs wait with their input in the history, which is all we need."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class CodecSetup:
    inventory: Path
    settings: TemporalSettings
    token: str
    url: str


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def _codec_server(
    tmp_path: Path, temporal_port: int, ui_origins: list[str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CodecSetup]:
    """``hybridops serve codec`` as a process, from an inventory file of its own."""
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    token = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_ENV, token)
    port = free_port()
    settings = TemporalSettings.model_validate(
        {
            "address": f"127.0.0.1:{temporal_port}",
            "codec": {
                "keys": [{"id": "ui-test", "key_ref": f"env:{KEY_ENV}"}],
                "active_key_id": "ui-test",
                "listen": f"127.0.0.1:{port}",
                "ui_origins": ui_origins,
                "token_ref": f"env:{TOKEN_ENV}",
            },
        }
    )
    inv = Inventory.model_validate(
        {
            "temporal": settings.model_dump(mode="json"),
            "sites": {
                "onprem": {"host": "127.0.0.1", "data_dir": str(tmp_path / "onprem")},
                "azure": {"cloud": "azure", "host": "127.0.0.2", "data_dir": str(tmp_path / "azure")},
            },
            "dns": {"zone": "codec.test.", "record": "db.codec.test."},
        }
    )
    path = tmp_path / "inventory.yaml"
    write_inventory(inv, path)
    log = (tmp_path / "codec-server.log").open("wb")
    env = {**os.environ, "HYBRIDOPS_INVENTORY": str(path), "HYBRIDOPS_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridops.cli", "serve", "codec"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "codec-server.log").read_text()
            return _port_open(port)

        await eventually("the codec server", healthy)
        yield CodecSetup(path, settings, token, url)
    finally:
        _stop(proc)
        log.close()
    logged = (tmp_path / "codec-server.log").read_text()
    assert token not in logged and os.environ[KEY_ENV] not in logged


@contextlib.asynccontextmanager
async def _dev_server(codec_endpoint: str | None, ui_port: int) -> AsyncIterator[int]:
    """A dev server of this test's own (its UI's codec endpoint is a start-up flag)."""
    port = free_port()
    argv = [str(TEMPORAL), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    argv += ["--ui-port", str(ui_port), "--log-level", "error", "--ui-disable-news-fetch"]
    if codec_endpoint:
        argv += ["--ui-codec-endpoint", codec_endpoint]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    try:
        await eventually(
            "the dev server and its UI", lambda: _async(_port_open(port) and _port_open(ui_port))
        )
        yield port
    finally:
        _stop(proc)


async def _async(value: bool) -> bool:
    return value


async def _start_sealed_run(settings: TemporalSettings, port: int, reason: str) -> tuple[str, str]:
    """A run with an encrypted input; its id and the sealed input's base64 (what a UI
    without the codec shows)."""
    client = await Client.connect(f"127.0.0.1:{port}", data_converter=data_converter(settings))
    wf_id = f"codec-ui-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        WorkflowType.FAILOVER.value, FailoverInput(reason=reason), id=wf_id, task_queue=NOBODY_QUEUE
    )
    plain = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
    history = await plain.get_workflow_handle(wf_id).fetch_history()
    sealed = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    return wf_id, base64.b64encode(sealed.data).decode()


async def _shows(page: Page, text: str) -> bool:
    return text in await page.inner_text("body")


async def _open_run(browser: Browser, ui_port: int, wf_id: str, token: str | None, codec_url: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    if token is not None:

        async def with_token(route):  # type: ignore[no-untyped-def]
            await route.continue_(headers={**route.request.headers, "authorization": f"Bearer {token}"})

        await page.route(f"{codec_url}/**", with_token)
    await page.goto(f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{wf_id}")
    return page


async def _screenshot(page: Page, path: Path) -> None:
    await page.screenshot(path=str(path))  # 1280x1000: the run's header and its Input
    print(f"screenshot: {path}")


@pytest.fixture
def chromium() -> Iterator[str]:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is not installed (scripts/debian-deps installs it)"
    yield found


async def test_the_ui_shows_decoded_input_only_through_the_codec_server(
    tmp_path: Path, chromium: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui_codec, ui_plain = free_port(), free_port()
    origin = f"http://127.0.0.1:{ui_codec}"
    reason = f"ui-visible-reason-{uuid.uuid4().hex[:8]}"
    async with (
        _codec_server(tmp_path, 0, [origin], monkeypatch) as codec,
        _dev_server(codec.url, ui_codec) as port_codec,
        _dev_server(None, ui_plain) as port_plain,
        async_playwright() as pw,
    ):
        wf_codec, sealed_codec = await _start_sealed_run(codec.settings, port_codec, reason)
        wf_plain, sealed_b64 = await _start_sealed_run(codec.settings, port_plain, reason)
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # Through the codec server, with the token: the clear input is on the page.
            page = await _open_run(browser, ui_codec, wf_codec, codec.token, codec.url)
            await eventually(
                "the decoded input on the run's page", lambda: _shows(page, f'"reason": "{reason}"')
            )
            await _screenshot(page, tmp_path / "ui-with-codec.png")

            # The same UI, no token: the codec server refuses (401), the page keeps ciphertext.
            refused: list[int] = []
            page = await _open_run(browser, ui_codec, wf_codec, None, codec.url)
            page.on("response", lambda r: refused.append(r.status) if r.url.startswith(codec.url) else None)
            await eventually("the codec server's refusal", lambda: _async(401 in refused))
            await eventually("the sealed input on the page", lambda: _shows(page, sealed_codec[:40]))
            assert not await _shows(page, reason)
            await _screenshot(page, tmp_path / "ui-codec-without-token.png")

            # A UI without a codec endpoint: the sealed payload's base64, never the text.
            page = await _open_run(browser, ui_plain, wf_plain, None, codec.url)
            await eventually("the sealed input on the page", lambda: _shows(page, sealed_b64[:40]))
            assert not await _shows(page, reason)
            assert reason not in await page.content()
            await _screenshot(page, tmp_path / "ui-without-codec.png")
        finally:
            await browser.close()


def _started_input(show_json: str) -> dict[str, Any]:
    """The first input payload of ``temporal workflow show --output json``."""
    started = json.loads(show_json)["events"][0]["workflowExecutionStartedEventAttributes"]
    return dict(started["input"]["payloads"][0])


async def test_the_temporal_cli_decodes_through_the_codec_server(
    tmp_path: Path, temporal_env: WorkflowEnvironment, temporal_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = f"cli-visible-reason-{uuid.uuid4().hex[:8]}"
    async with _codec_server(tmp_path, temporal_port, ["http://127.0.0.1:8233"], monkeypatch) as codec:
        wf_id, _ = await _start_sealed_run(codec.settings, temporal_port, reason)
        show = [str(TEMPORAL), "workflow", "show", "-w", wf_id, "--address", f"127.0.0.1:{temporal_port}"]
        show += ["--output", "json"]
        try:
            decoded = subprocess.run(
                [*show, "--codec-endpoint", codec.url, "--codec-auth", f"Bearer {codec.token}"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            payload = _started_input(decoded)
            assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
            assert json.loads(base64.b64decode(payload["data"]))["reason"] == reason
            sealed = _started_input(
                subprocess.run(show, capture_output=True, text=True, timeout=60, check=True).stdout
            )
            assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
            assert reason.encode() not in base64.b64decode(sealed["data"])
            refused = subprocess.run(
                [*show, "--codec-endpoint", codec.url, "--codec-auth", "Bearer wrong"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert reason not in refused.stdout
            async with aiohttp.ClientSession() as http:
                resp = await http.post(f"{codec.url}/decode", json={"payloads": []})
                assert resp.status == 401
        finally:
            plain = await Client.connect(f"127.0.0.1:{temporal_port}", data_converter=pydantic_data_converter)
            await plain.get_workflow_handle(wf_id).terminate("codec test done")
