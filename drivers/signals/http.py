"""What the signal drivers share: Prometheus's HTTP session (one per collection, the bearer
token from a secret reference), the clouds' credential chains that the Azure Monitor and Cloud
Monitoring clients authenticate with, and every failure turned into a one-line reason that never
holds the token.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import threading
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from drivers.secrets import resolve_secret
from hybridops.contracts.sites import SiteRef
from hybridops.errors import ConfigError
from hybridops.inventory import SignalCredential, SignalSource

ONPREM = "onprem"
"""What ``{cloud}`` becomes for the on-prem site (a site without a cloud)."""

_BODY_CHARS = 200
"""How much of an unparsable answer goes into an error line."""


T = TypeVar("T")


class SourceError(Exception):
    """One reading failed; the message is the reason, ready for ``SourceReading.errors``."""


class Unreachable(SourceError):
    """No answer at all (timed out, refused, cut off): another request to the same server now
    would fare no better, so a driver reports it instead of trying another way."""


async def guarded(reading: Awaitable[T]) -> T | SourceError:
    """What ``reading`` returns, or the :class:`SourceError` it failed with. An answer shaped
    otherwise than the API documents (a list where an object should be, ...) is such an error
    too, so one odd answer spoils one signal, not the collection."""
    try:
        return await reading
    except SourceError as err:
        return err
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        return SourceError(f"malformed answer ({type(err).__name__}: {err})")


def substitute(template: str, target: SiteRef) -> str:
    """``template`` with ``{site}`` and ``{cloud}`` replaced by the target's name and cloud
    (``onprem`` for the on-prem site). Plain text replacement, not ``str.format``: PromQL and
    Monitoring filters are full of braces."""
    cloud = target.cloud.value if target.cloud is not None else ONPREM
    return template.replace("{site}", target.name).replace("{cloud}", cloud)


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-11-26T03:00:00Z``: what Azure's ``timespan`` and GCP's intervals take."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any, what: str) -> datetime:
    """An RFC 3339 timestamp from an answer; :class:`SourceError` naming ``what`` otherwise."""
    if not isinstance(text, str):
        raise SourceError(f"{what}: timestamp {text!r} is not a string")
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise SourceError(f"{what}: timestamp {text!r} is not RFC 3339") from None


def finite(value: Any, what: str) -> float:
    """A number from an answer as a finite float; NaN, infinities and junk are errors."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what}: value {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SourceError(f"{what}: value is {value}")
    return number


def _api_error(body: Any) -> str | None:
    """The error an API put in its answer, in the formats of the three APIs."""
    if not isinstance(body, dict):
        return None
    if body.get("status") == "error" or "errorType" in body:  # Prometheus
        return f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    err = body.get("error")
    if isinstance(err, dict):  # ARM (code, message) and Google (code, message, status)
        code = err.get("status") or err.get("code") or "error"
        return f"{code}: {err.get('message', '')}"
    if "code" in body and "message" in body:  # ARM, unwrapped
        return f"{body['code']}: {body['message']}"
    return None


class HttpSource:
    """An HTTP session for one collection from one source: bearer token set, every request
    bounded by ``source.timeout_s``. Use as ``async with HttpSource(source) as http``."""

    def __init__(self, source: SignalSource) -> None:
        self.source = source
        self._token: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpSource:
        try:
            if self.source.credential == SignalCredential.TOKEN:
                self._token = resolve_secret(self.source.token_ref)
            else:
                self._token = await asyncio.to_thread(chain_token, self.source.credential)
        except ConfigError as err:
            raise SourceError(f"token: {err}") from None
        except Exception as err:  # a credential chain's own errors (refused, unavailable)
            raise chain_error(self.source.credential, err) from None
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.source.timeout_s)
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        """The source's ``url`` joined with ``path`` (one slash between them)."""
        return self.source.url.rstrip("/") + "/" + path.lstrip("/")

    def redact(self, text: str) -> str:
        """``text`` without the token, should a server have echoed it back."""
        return text.replace(self._token, "***") if self._token else text

    async def get_json(self, url: str, params: Mapping[str, str]) -> Any:
        """GET ``url`` and decode its JSON answer. Every failure (timeout, refused connection,
        an HTTP error, an error the API reports, a body that is not JSON) raises
        :class:`SourceError` with a one-line reason; :class:`Unreachable` when there was no
        answer at all."""
        return await self._json("GET", url, params=params)

    async def post_json(self, url: str, form: Mapping[str, str]) -> Any:
        """POST ``form`` (URL-encoded) to ``url``, as :meth:`get_json` otherwise: for a request
        too long for a URL."""
        return await self._json("POST", url, data=form)

    async def _json(self, method: str, url: str, **request: Any) -> Any:
        assert self._session is not None, "use HttpSource as an async context manager"
        try:
            async with self._session.request(method, url, **request) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise Unreachable(f"no answer within {self.source.timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as err:
            # os_error's own text repeats the address: its errno says it better.
            reason = os.strerror(err.os_error.errno) if err.os_error.errno else str(err.os_error)
            raise Unreachable(self.redact(f"cannot connect to {err.host}:{err.port}: {reason}")) from None
        except aiohttp.ClientError as err:
            raise Unreachable(self.redact(f"{type(err).__name__}: {err}")) from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        reported = _api_error(body)
        if status >= 400:
            detail = reported or _excerpt(raw)
            raise SourceError(self.redact(f"HTTP {status}: {detail}"))
        if reported is not None:
            raise SourceError(self.redact(reported))
        if body is None:
            raise SourceError(self.redact(f"answer is not JSON: {_excerpt(raw)}"))
        return body


AZURE_ARM_SCOPE = "https://management.azure.com/.default"
GOOGLE_MONITORING_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
_chains: dict[SignalCredential, Any] = {}
_chains_lock = threading.Lock()


def chain_credential(kind: SignalCredential) -> Any:
    """The worker's ``kind`` credential chain (azure-identity's credential, google-auth's
    Application Default Credentials), made once per process and kept, so its library's cache
    and refresh work across collections: a token is reused while valid and fetched again when
    it expires (azure-identity five minutes before, google-auth a few minutes before). Raises
    what the library raises when no credential can be made (no ADC, say)."""
    with _chains_lock:
        if kind not in _chains:
            if kind == SignalCredential.AZURE:
                from drivers.azure_auth import azure_credential

                env = os.environ
                tenant, client = env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID")
                secret = env.get("AZURE_CLIENT_SECRET") if tenant and client else None
                _chains[kind] = azure_credential(tenant, client, secret, env.get("AZURE_AUTHORITY_HOST"))
            else:
                import google.auth

                _chains[kind] = google.auth.default(scopes=[GOOGLE_MONITORING_SCOPE])[0]
        return _chains[kind]


def chain_token(kind: SignalCredential) -> str:
    """A valid bearer token from the worker's ``kind`` credential chain (see
    :func:`chain_credential`): blocking, it may call the chain's token endpoint."""
    credential = chain_credential(kind)
    if kind == SignalCredential.AZURE:
        return str(credential.get_token(AZURE_ARM_SCOPE).token)
    import google.auth.transport.requests

    if not credential.valid:
        credential.refresh(google.auth.transport.requests.Request())
    return str(credential.token)


def chain_error(kind: SignalCredential, err: BaseException) -> SourceError:
    """A credential chain's own error (refused, unavailable) as the source's error line: its
    first line, which names what refused and never holds a token or a secret."""
    return SourceError(f"token from the {kind.value} credential chain: {_first_line(err)}")


def connection_refusal(err: BaseException) -> str | None:
    """The operating system's reason (``Connection refused``, ...) when ``err`` is, or wraps, a
    failed connection: the client libraries bury it several exceptions deep (azure-core's
    ``inner_exception``, urllib3's ``reason``, an exception in ``args``)."""
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and not isinstance(item, ssl.SSLError) and item.errno:
            return os.strerror(item.errno)
        todo.extend([item.__cause__, item.__context__, getattr(item, "inner_exception", None)])
        todo.extend([getattr(item, "reason", None), *item.args])
    return None


def api_error_line(status: int, raw: bytes) -> str:
    """An HTTP error answer as one line: ``HTTP 422: CODE: message`` in the API's own error
    format when it has one, else an excerpt of the body."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return f"HTTP {status}: {_api_error(body) or _excerpt(raw)}"


def not_json_line(raw: bytes) -> str:
    """A successful answer whose body is not JSON, as one line."""
    return f"answer is not JSON: {_excerpt(raw)}"


def forget_credentials() -> None:
    """Drop the kept credentials (tests; a worker whose identity changed)."""
    with _chains_lock:
        _chains.clear()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _excerpt(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return repr(text[:_BODY_CHARS] + ("..." if len(text) > _BODY_CHARS else ""))
