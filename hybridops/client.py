"""The Temporal client factory: the one place the data converter is built, and the one place
the connection's TLS and API key are built (:func:`connect_options`).

Every payload passes through the pydantic data converter, and through the encryption codec
when the inventory configures a key (DESIGN.md rule 5; :mod:`hybridops.codec`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from temporalio.client import Client
from temporalio.common import HeaderCodecBehavior
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig

from hybridops.codec import codec_for
from hybridops.errors import ConfigError
from hybridops.inventory import TemporalSettings
from hybridops.secrets import resolve_reference, resolve_secret

DATA_CONVERTER = pydantic_data_converter
"""The converter without encryption: for plain histories (the stored ones) and for payloads
that :func:`data_converter` already decrypted."""


def data_converter(settings: TemporalSettings) -> DataConverter:
    """HybridOps' data converter for ``settings``: pydantic, plus the encryption codec when
    ``temporal.codec`` lists keys. Raises a ConfigError naming the key when one is unusable.

    With the codec, failures' messages and stack traces move into an encoded (so encrypted)
    attribute too: a rejection's message carries the approver's comment, an error may quote
    an input."""
    codec = codec_for(settings.codec)
    if codec is None:
        return DATA_CONVERTER
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def connect_options(settings: TemporalSettings) -> dict[str, Any]:
    """The TLS and API-key arguments of ``Client.connect`` for ``settings``, references
    resolved now: ``tls`` (False, or a :class:`TLSConfig` with the CA, the client certificate
    and key, the server name) and ``api_key``. The inventory already refused an API key or a
    certificate without TLS; this checks it again, so no caller can send a key in clear text."""
    if not settings.tls:
        if settings.api_key_ref is not None:
            raise ConfigError("temporal.api_key_ref: requires temporal.tls: true")
        return {"tls": False, "api_key": None}
    ca = resolve_reference(settings.ca_cert_ref)
    cert = resolve_reference(settings.client_cert_ref)
    key = resolve_secret(settings.client_key_ref)
    tls = TLSConfig(
        server_root_ca_cert=_pem(ca),
        client_cert=_pem(cert),
        client_private_key=_pem(key),
        domain=settings.server_name,
    )
    return {"tls": tls, "api_key": resolve_secret(settings.api_key_ref)}


def _pem(text: str | None) -> bytes | None:
    return None if text is None else (text.strip() + "\n").encode()


def exit_now(code: int) -> NoReturn:
    """End a process that used the SDK with ``code``, without finalizing Python.

    The SDK's Rust runtime keeps threads that call into Python; when Python finalizes while one
    does, the process dies of ``Fatal Python error: PyGILState_Release`` (SIGABRT, exit -6)
    after its work is done, and scripts that read the exit code see a crash. Seen on
    ``hybridops audit verify`` and on a worker that could not connect. Once the work is done
    and everything is flushed, nothing is left for finalization to do: leave at once."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
"""sdk-core's message in a RuntimeError's debug text."""
_CONNECT_FAILED = "Failed client connect"
"""How the SDK's ``RuntimeError`` begins when no server answered at the address."""


def unreachable_reason(err: RuntimeError) -> str | None:
    """Why :func:`connect` found no server (``connection refused``), in a few words; None
    when ``err`` is not a failure to connect."""
    text = str(err)
    if not text.startswith(_CONNECT_FAILED):
        return None
    # sdk-core's debug dump ends in the OS's words ("Connection refused"): keep those.
    found = CORE_MESSAGE.findall(text)
    return (found[-1] if found else text.removeprefix(_CONNECT_FAILED).strip(": ")[:200]).lower()


async def connect(settings: TemporalSettings) -> Client:
    """A client for the inventory's Temporal, with HybridOps' data converter, and its identity
    (what its connection proves: :mod:`hybridops.identity`) on everything it starts or sends."""
    from hybridops.identity import IdentityClientInterceptor, local_identity

    identity = local_identity(settings)
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=data_converter(settings),
        identity=identity,
        interceptors=[IdentityClientInterceptor(identity)],
        # Headers through the codec too: the identity header says who approved.
        header_codec_behavior=HeaderCodecBehavior.CODEC,
        **connect_options(settings),
    )


@dataclass(frozen=True)
class Poller:
    """A worker Temporal saw polling a task queue, and how long ago it last did."""

    identity: str
    seconds_ago: float


async def queue_pollers(client: Client, queue: str) -> list[Poller]:
    """The workers polling ``queue`` for activities, as Temporal's task queue description
    has them (a dead worker stays listed for a while, its last poll growing older)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueueRef(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    now = datetime.now(UTC)
    return [
        Poller(
            identity=p.identity,
            seconds_ago=max(0.0, (now - p.last_access_time.ToDatetime(UTC)).total_seconds()),
        )
        for p in answer.pollers
    ]
