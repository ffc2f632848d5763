"""The codec server's HTTP contract: decode, encode, bearer token, CORS, namespace, errors."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from hybridops.client import DATA_CONVERTER
from hybridops.codec import ENCODING, EncryptionCodec
from hybridops.codec_server import CodecServer, codec_server_for
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import ConfigError
from hybridops.inventory import CodecSettings, TemporalSettings, parse_listen

TOKEN = "codec-unit-token-0123456789abcdef"
UI = "http://127.0.0.1:8233"
KEY = bytes(range(32))
REASON = "codec-server-unit-reason"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[TestClient]:
    server = CodecServer(EncryptionCodec({"k1": KEY}, "k1"), TOKEN, [UI], "default")
    async with TestClient(TestServer(server.app())) as client:
        yield client


def _body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def _parse(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def test_encode_then_decode_round_trips_in_the_uis_json(http: TestClient) -> None:
    plain = DATA_CONVERTER.payload_converter.to_payloads([FailoverInput(reason=REASON)])
    enc = await http.post("/encode", data=_body(plain), headers=_auth())
    assert enc.status == 200
    text = await enc.text()
    assert REASON not in text and base64.b64encode(REASON.encode()).decode() not in text
    sealed = _parse(text)
    assert [p.metadata["encoding"] for p in sealed] == [ENCODING]
    dec = await http.post("/decode", data=text, headers=_auth() | {"X-Namespace": "default"})
    assert dec.status == 200
    assert _parse(await dec.text()) == plain
    # A plain payload is answered as it is (histories from before encryption).
    again = await http.post("/decode", data=_body(plain), headers=_auth())
    assert _parse(await again.text()) == plain


async def test_no_or_wrong_token_is_401(http: TestClient) -> None:
    body = _body([])
    for headers in ({}, {"Authorization": TOKEN}, _auth("wrong"), {"Authorization": "Basic " + TOKEN}):
        resp = await http.post("/decode", data=body, headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in (await resp.json())["error"]


async def test_cors_preflight_and_origin_headers(http: TestClient) -> None:
    pre = await http.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == UI
    assert set(pre.headers["Access-Control-Allow-Headers"].replace(" ", "").split(",")) == {
        "content-type",
        "authorization",
        "x-namespace",
    }
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    evil = await http.options(
        "/encode", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert evil.status == 403 and "Access-Control-Allow-Origin" not in evil.headers

    ok = await http.post("/decode", data=_body([]), headers=_auth() | {"Origin": UI})
    assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == UI
    # A 401 carries the CORS header too, so the UI can show why.
    denied = await http.post("/decode", data=_body([]), headers={"Origin": UI})
    assert denied.status == 401 and denied.headers["Access-Control-Allow-Origin"] == UI
    other = await http.post("/decode", data=_body([]), headers=_auth() | {"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_another_namespace_bad_body_and_undecryptable_payloads(http: TestClient) -> None:
    ns = await http.post("/decode", data=_body([]), headers=_auth() | {"X-Namespace": "payments"})
    assert ns.status == 403 and "payments" in (await ns.json())["error"]
    bad = await http.post("/decode", data="not json", headers=_auth())
    assert bad.status == 400 and "payloads" in (await bad.json())["error"]
    foreign = await EncryptionCodec({"k0": bytes(32)}, "k0").encode([Payload(data=b"x")])
    lost = await http.post("/decode", data=_body(foreign), headers=_auth())
    assert lost.status == 422 and "'k0' is not configured" in (await lost.json())["error"]
    assert (await http.get("/healthz")).status == 200


async def test_logs_name_key_ids_never_data_token_or_key(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plain = DATA_CONVERTER.payload_converter.to_payloads([FailoverInput(reason=REASON)])
    sealed = _parse(await (await http.post("/encode", data=_body(plain), headers=_auth())).text())
    await http.post("/decode", data=_body(sealed), headers=_auth())
    await http.post("/decode", data=_body(sealed), headers=_auth("wrong-token"))
    logged = caplog.text
    assert "codec decode payloads=1 key_ids=k1" in logged
    for secret in (REASON, TOKEN, "wrong-token", base64.b64encode(KEY).decode()):
        assert secret not in logged


def test_config_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridops.inventory import Inventory

    def inv(codec: dict[str, object]) -> Inventory:
        return Inventory.model_construct(temporal=TemporalSettings(codec=CodecSettings.model_validate(codec)))

    with pytest.raises(ConfigError, match=r"temporal.codec.keys: no key"):
        codec_server_for(inv({}))
    monkeypatch.setenv("HYBRIDOPS_TEST_K", base64.b64encode(KEY).decode())
    keyed = {"keys": [{"id": "k1", "key_ref": "env:HYBRIDOPS_TEST_K"}], "active_key_id": "k1"}
    with pytest.raises(ConfigError, match=r"temporal.codec.token_ref: required"):
        codec_server_for(inv(keyed))
    monkeypatch.setenv("HYBRIDOPS_TEST_T", "")
    with pytest.raises(ConfigError, match=r"temporal.codec.token_ref: .*(empty|at least 8)"):
        codec_server_for(inv(keyed | {"token_ref": "env:HYBRIDOPS_TEST_T"}))
    with pytest.raises(ConfigError, match=r"temporal.codec.listen"):
        parse_listen("8081", "temporal.codec.listen")
    assert parse_listen("[::1]:8081", "temporal.codec.listen") == ("::1", 8081)
