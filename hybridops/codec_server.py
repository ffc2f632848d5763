"""``hybridops serve codec``: the codec server the Temporal UI and CLI decrypt payloads with.

The Temporal UI (``--ui-codec-endpoint``, or its "Codec Server" setting) and the ``temporal``
CLI (``--codec-endpoint URL --codec-auth "Bearer TOKEN"``) send payloads here to be shown in
clear; the keys never leave this process. The HTTP contract, in the JSON the UI sends
(``{"payloads": [{"metadata": {key: base64}, "data": base64}]}``, protobuf's JSON form):

=======  =============================================================================
request  answer
=======  =============================================================================
POST     ``/decode``: the same list with every sealed payload opened (plain ones as
         they are); ``/encode``: the list sealed with the active key. 200 with
         ``{"payloads": [...]}``; 401 without the right bearer token (and
         ``WWW-Authenticate: Bearer``); 403 for another namespace (``X-Namespace``);
         400 when the body is not that JSON; 422 when a payload cannot be opened (its
         key id is not configured, or it was changed), naming the key id
OPTIONS  a CORS preflight: 204 with the CORS headers for a configured UI origin, 403
         for any other origin. Browsers send no credentials on a preflight.
GET      ``/healthz``: 200 ``{"status": "ok"}``; nothing about the keys
=======  =============================================================================

Who may use it: whoever holds the bearer token can read every payload of the namespace, so
the token is as sensitive as the keys; give it to the people who may read run inputs and
results (those who approve runs), and to the UI's reverse proxy. CORS only lets the
configured UI origins' pages call it from a browser; it is not authentication.

Logged per request: path, origin, payload count, key ids, status. Never payload data, the
token or key material.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from hybridops.codec import EncryptionCodec, PayloadDecryptError, codec_for, key_id_of
from hybridops.errors import ConfigError
from hybridops.inventory import Inventory, parse_listen
from hybridops.secrets import resolve_secret

log = logging.getLogger("hybridops.codec")

DECODE_PATH = "/decode"
ENCODE_PATH = "/encode"
HEALTH_PATH = "/healthz"
ALLOWED_HEADERS = "content-type, authorization, x-namespace"
MAX_BODY = 8 * 1024 * 1024
"""A history page's payloads at most (the UI decodes per event, usually a few kB)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CodecServer:
    """Decodes and encodes payloads for callers with the bearer token, from ``origins``' pages.

    ``namespace`` is the one whose keys these are: a request that names another
    (``X-Namespace``, which the UI sends) is refused rather than answered with garbage.
    """

    def __init__(self, codec: EncryptionCodec, token: str, origins: Sequence[str], namespace: str) -> None:
        if not token:
            raise ConfigError("temporal.codec.token_ref: the token it names is empty")
        self._codec = codec
        self._token = token.encode()
        self._origins = frozenset(origins)
        self._namespace = namespace

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._cors])
        for path in (DECODE_PATH, ENCODE_PATH):
            app.router.add_post(path, self.handle_codec)
            app.router.add_route(hdrs.METH_OPTIONS, path, self.handle_preflight)
        app.router.add_get(HEALTH_PATH, self.handle_health)
        return app

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as err:  # 404, 405, 413: CORS headers on those too
            response = err
        origin = request.headers.get(hdrs.ORIGIN)
        if origin in self._origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            # The UI may be set to include credentials (cookies of an SSO proxy).
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        response.headers[hdrs.VARY] = "Origin"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def handle_preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin not in self._origins:
            log.warning("codec preflight refused status=403 origin=%r", origin)
            return web.json_response({"error": f"origin {origin!r} is not allowed"}, status=403)
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST, OPTIONS",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: "600",
            },
        )

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def handle_codec(self, request: web.Request) -> web.Response:
        path, origin, remote = request.path, request.headers.get(hdrs.ORIGIN, "-"), request.remote or "-"
        refused = self._check_token(request.headers.get(hdrs.AUTHORIZATION))
        if refused:
            log.warning(
                "codec refused path=%s status=401 reason=%r origin=%s remote=%s",
                path,
                refused,
                origin,
                remote,
            )
            return web.json_response(
                {"error": refused}, status=401, headers={hdrs.WWW_AUTHENTICATE: "Bearer"}
            )
        namespace = request.headers.get("X-Namespace")
        if namespace and namespace != self._namespace:
            log.warning("codec refused path=%s status=403 namespace=%r remote=%s", path, namespace, remote)
            error = f"namespace {namespace!r}: this codec server holds the keys of {self._namespace!r}"
            return web.json_response({"error": error}, status=403)
        try:
            payloads = json_format.Parse(await request.read(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as err:
            log.warning("codec refused path=%s status=400 remote=%s", path, remote)
            return web.json_response({"error": f'body is not {{"payloads": [...]}}: {err}'}, status=400)
        items = list(payloads.payloads)
        try:
            if path == DECODE_PATH:
                key_ids = sorted({k for p in items if (k := key_id_of(p)) is not None})
                out = await self._codec.decode(items)
            else:
                key_ids = [self._codec.active_key_id]
                out = await self._codec.encode(items)
        except PayloadDecryptError as err:
            log.warning(
                "codec refused path=%s status=422 key_id=%s remote=%s", path, err.ids.get("key_id"), remote
            )
            return web.json_response({"error": str(err)}, status=422)
        log.info(
            "codec %s payloads=%d key_ids=%s origin=%s remote=%s",
            path.strip("/"),
            len(items),
            ",".join(key_ids) or "-",
            origin,
            remote,
        )
        body = json_format.MessageToJson(Payloads(payloads=out))
        return web.Response(body=body, content_type="application/json")

    def _check_token(self, header: str | None) -> str:
        """Empty when the bearer token is right; why not otherwise."""
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "missing bearer token"
        if not hmac.compare_digest(given.strip().encode(), self._token):
            return "wrong bearer token"
        return ""


# --------------------------------------------------------------------------- serving


def codec_server_for(inv: Inventory) -> CodecServer:
    """The inventory's codec server; a ConfigError naming the key when one is missing."""
    settings = inv.temporal.codec
    codec = codec_for(settings)
    if codec is None:
        raise ConfigError("temporal.codec.keys: no key configured, so there is nothing to decode")
    if settings.token_ref is None:
        raise ConfigError(
            "temporal.codec.token_ref: required to serve the codec (a secret reference, env:NAME or"
            " file:PATH, to the bearer token its callers send)"
        )
    try:
        token = resolve_secret(settings.token_ref) or ""
    except ConfigError as err:
        raise ConfigError(f"temporal.codec.token_ref: {err}") from None
    return CodecServer(codec, token, settings.ui_origins, inv.temporal.namespace)


async def serve_codec(inv: Inventory, listen: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and exit."""
    host, port = parse_listen(listen or inv.temporal.codec.listen, "temporal.codec.listen")
    server = codec_server_for(inv)
    runner = web.AppRunner(server.app(), access_log=None)  # our own log line, without bodies
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info(
            "codec server listening on http://%s:%d (active key %s, keys %s, UI origins %s)",
            host,
            port,
            inv.temporal.codec.active_key_id,
            ",".join(k.id for k in inv.temporal.codec.keys),
            ",".join(inv.temporal.codec.ui_origins),
        )
        await stop.wait()
        log.info("codec server stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
