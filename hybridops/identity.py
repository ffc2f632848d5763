"""Who calls Temporal: the identity an approval is authorized by (DESIGN.md rule 15).

Every HybridOps client carries its identity in a header of each workflow start, update and
signal (:class:`IdentityClientInterceptor`); the worker's interceptor (workflows/identity.py)
hands it to the workflow. The approver never types it:

* with mTLS, it is the client certificate's subject (``cert:CN=...``), the name the cluster's
  authorizer sees;
* with an API key, ``api-key:<sha256 prefix of the key>``, which names the key (and so its
  principal) without revealing it;
* otherwise ``os:<user>@<host>``, the Temporal client identity of a lab or a dev server, which
  authenticates nothing: the lab's policy allows it, production's should not.

A cluster whose authorizer checks the caller is what makes the header trustworthy; the header
is what the workflow can read (Temporal's update request identity is not exposed to it).
"""

from __future__ import annotations

import getpass
import hashlib
import socket
from collections.abc import Mapping

from temporalio import client
from temporalio.api.common.v1 import Payload
from temporalio.converter import default as default_converter

from hybridops.inventory import TemporalSettings
from hybridops.secrets import resolve_reference, resolve_secret

IDENTITY_HEADER = "hybridops-identity"


def local_identity(settings: TemporalSettings) -> str:
    """This client's identity, from what its connection proves (see the module's doc)."""
    if settings.tls and settings.client_cert_ref:
        pem = resolve_reference(settings.client_cert_ref)
        if pem:
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(pem.encode())
            return f"cert:{cert.subject.rfc4514_string()}"
    if settings.tls and settings.api_key_ref:
        key = resolve_secret(settings.api_key_ref) or ""
        return f"api-key:{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return f"os:{getpass.getuser()}@{socket.gethostname()}"


def identity_payload(identity: str) -> Payload:
    return default_converter().payload_converter.to_payloads([identity])[0]


def read_identity(headers: Mapping[str, Payload]) -> str | None:
    """The identity a header carries, or None."""
    payload = headers.get(IDENTITY_HEADER)
    if payload is None:
        return None
    try:
        value = default_converter().payload_converter.from_payloads([payload], [str])[0]
    except Exception:  # still encrypted (a worker without the key): no identity it can trust
        return None
    return str(value) if value else None


class IdentityClientInterceptor(client.Interceptor):
    """Stamps ``identity`` on every start, update and signal this client sends."""

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _Outbound(next, identity_payload(self.identity))


class _Outbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, payload: Payload) -> None:
        super().__init__(next)
        self._payload = payload

    def _stamp(self, headers: Mapping[str, Payload]) -> dict[str, Payload]:
        return {**headers, IDENTITY_HEADER: self._payload}

    async def start_workflow(self, input: client.StartWorkflowInput) -> client.WorkflowHandle:
        input.headers = self._stamp(input.headers)
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: client.StartWorkflowUpdateInput
    ) -> client.WorkflowUpdateHandle:
        input.headers = self._stamp(input.headers)
        return await super().start_workflow_update(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        input.headers = self._stamp(input.headers)
        await super().signal_workflow(input)
