"""A fake Google Cloud Monitoring API on loopback for the real ``google-cloud-monitoring``
client, which speaks gRPC only: ``google.monitoring.v3.MetricService/ListTimeSeries`` over a
plaintext loopback port (the client reaches it through gRPC's local credentials).

It checks what the real service checks before answering: a bearer token in the call's
``authorization`` metadata that the fake's ``accept`` takes (else ``UNAUTHENTICATED``), the
routing header the library must send (``x-goog-request-params: name=projects/P``), a project
name, a filter, an interval with an end and a start not after it, and the ``FULL`` view (else
``INVALID_ARGUMENT``). Any other method of the service is ``UNIMPLEMENTED``. The test's
``handler`` then answers with a ``ListTimeSeriesResponse``, raw bytes (an undecodable answer),
or an error status.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.cloud import monitoring_v3

SERVICE = "google.monitoring.v3.MetricService"
Request = monitoring_v3.ListTimeSeriesRequest
Response = monitoring_v3.ListTimeSeriesResponse


class Refuse(Exception):
    """Raised by a handler: answer with this gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _serialize(answer: Response | bytes) -> bytes:
    """A response's wire form; bytes as they are (an undecodable answer)."""
    return answer if isinstance(answer, bytes) else Response.serialize(answer)


Handler = Callable[[Request, "Call"], "Response | bytes"]


@dataclass
class Call:
    """What the fake received: the request and the call's metadata."""

    request: Request
    metadata: dict[str, str]

    @property
    def token(self) -> str | None:
        auth = self.metadata.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") and len(auth) > 7 else None


@dataclass
class FakeCloudMonitoring:
    accept: Callable[[str], bool]
    """Whether a bearer token is one the fake issued and that has not expired."""
    handler: Handler | None = None
    seen: list[Call] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    """Set at stop: frees handlers that hold their answer back (timeout tests)."""

    def start(self) -> str:
        """Serve on a free loopback port; returns ``http://127.0.0.1:PORT``."""
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        method = grpc.unary_unary_rpc_method_handler(
            self._list_time_series,
            request_deserializer=Request.deserialize,
            response_serializer=lambda answer: (
                answer if isinstance(answer, bytes) else Response.serialize(answer)
            ),
        )
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"ListTimeSeries": method})]
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        self.release.set()
        self.server.stop(grace=None)

    def hang(self) -> None:
        """Never answer (until the client gives up or the fake stops)."""

        def handler(request: Request, call: Call) -> Response:
            self.release.wait()
            return Response()

        self.handler = handler

    def answer(self, response: Response | bytes) -> None:
        self.handler = lambda request, call: response

    def refuse(self, code: grpc.StatusCode, message: str) -> None:
        def handler(request: Request, call: Call) -> Response:
            raise Refuse(code, message)

        self.handler = handler

    def _list_time_series(self, request: Request, context: grpc.ServicerContext) -> Response | bytes:
        call = Call(request, {k: str(v) for k, v in context.invocation_metadata()})
        self.seen.append(call)
        wrong = self._misaddressed(call)
        try:
            if wrong is not None:
                raise wrong
            assert self.handler is not None, "the test sets the fake's handler"
            return self.handler(request, call)
        except Refuse as refusal:
            context.abort(refusal.code, refusal.message)
            raise AssertionError("unreachable: abort raises") from None

    def _misaddressed(self, call: Call) -> Refuse | None:
        request = call.request
        if call.token is None or not self.accept(call.token):
            return Refuse(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.")
        if not re.fullmatch(r"projects/[^/]+", request.name):
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, f"invalid name {request.name!r}")
        routing = urllib.parse.unquote(call.metadata.get("x-goog-request-params", ""))
        if routing != f"name={request.name}":
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, f"routing header {routing!r}")
        if not request.filter:
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, "filter is required")
        interval = request.interval
        if "end_time" not in interval:
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, "interval.end_time is required")
        if "start_time" in interval and interval.start_time > interval.end_time:
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, "interval starts after it ends")
        if request.view != Request.TimeSeriesView.FULL:
            return Refuse(grpc.StatusCode.INVALID_ARGUMENT, f"view {request.view!r}")
        return None
