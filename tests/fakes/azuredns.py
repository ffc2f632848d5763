"""A fake Azure Resource Manager (DNS record sets and zones) and Entra ID token endpoint on
loopback over HTTPS (azure-identity and azure-core refuse bearer tokens over plain HTTP), for
the real ``azure-mgmt-dns`` client and ``ClientSecretCredential``.

It checks what the real services check: OpenID discovery and a ``client_credentials`` grant for
the ARM scope with the right client id and secret (else 401 ``invalid_client``, AADSTS7000215);
ARM requests with a bearer token it issued and that has not expired (each is good until its
``expires_in`` passed and for ``token_requests`` requests, then ``ExpiredAuthenticationToken``),
the ``api-version`` query, the documented paths, and the conditional headers: ``If-Match``
must equal the record set's etag, ``If-None-Match: *`` means it must not exist (else 412
``PreconditionFailed``). Errors have ARM's JSON error format; a missing zone is
``ParentResourceNotFound``, a missing set ``NotFound``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ARM_SCOPE = "https://management.azure.com/.default"


def self_signed(folder: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written under ``folder``: (cert, key). Fakes
    whose certificates share one CA bundle need distinct ``common_name`` (OpenSSL finds an
    issuer by its name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fake-arm.crt", folder / "fake-arm.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class FakeAzure:
    tenant: str
    client_id: str
    client_secret: str
    subscription: str
    resource_group: str
    zone: str
    token_requests: int = 1000
    scope: str = ARM_SCOPE
    """The scope a client-credentials grant must ask for (ARM's; Key Vault's fake: the vault's)."""
    expires_in: int = 3599
    """What the token endpoint says of each token's life (seconds)."""
    record_sets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    zone_exists: bool = True
    tokens: dict[str, int] = field(default_factory=dict)
    expiry: dict[str, float] = field(default_factory=dict)
    """Issued token to the time it expires (``time.time()``): refused after it."""
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, folder: Path) -> str:
        """Serve HTTPS on a free loopback port; returns ``host:port``. The certificate is
        ``<folder>/fake-arm.crt`` (the test trusts it through ``REQUESTS_CA_BUNDLE``)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def do_PUT(self) -> None:
                fake.handle(self, "PUT")

        cert, key = self_signed(folder)
        self.ca = cert
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        return self.host

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests.append(f"{method} {parsed.path}")
            if parsed.path.startswith(f"/{self.tenant}/"):
                status, answer = self._login(method, parsed.path, body)
            else:
                status, answer = self._arm(req, method, parsed, body)
        data = json.dumps(answer).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if status == 401 and not parsed.path.startswith(f"/{self.tenant}/"):
            req.send_header(
                "WWW-Authenticate",
                f'Bearer authorization="https://{self.host}/{self.tenant}",'
                f' resource="{self.scope.removesuffix("/.default")}"',
            )
        if "etag" in answer:
            req.send_header("ETag", answer["etag"])
        req.end_headers()
        req.wfile.write(data)

    # ------------------------------------------------------------------ Entra ID

    def _login(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        base = f"https://{self.host}/{self.tenant}"
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "tenant_region_scope": "EU",
            }
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            form = dict(urllib.parse.parse_qsl(body.decode()))
            if form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                }
            if self.scope not in form.get("scope", "").split():
                return 400, {"error": "invalid_scope"}
            token = f"eyJ.fake-{uuid.uuid4().hex}"
            self.tokens[token] = 0
            self.expiry[token] = time.time() + self.expires_in
            return 200, {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            }
        return 404, {"error": "not_found"}

    # ------------------------------------------------------------------ ARM

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": code, "message": message}}

    def _arm(
        self, req: BaseHTTPRequestHandler, method: str, parsed: urllib.parse.SplitResult, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        auth = req.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.tokens:
            return self._error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        self.tokens[token] += 1
        if self.tokens[token] > self.token_requests or time.time() > self.expiry[token]:
            return self._error(401, "ExpiredAuthenticationToken", "The access token expiry UTC time is past.")
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if not query.get("api-version"):
            return self._error(
                400, "MissingApiVersionParameter", "The api-version query parameter is required."
            )
        prefix = (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            "/providers/Microsoft.Network/dnsZones/"
        )
        if not parsed.path.startswith(prefix):
            return self._error(404, "ResourceGroupNotFound", f"Resource group not found: {parsed.path}")
        zone, _, rest = parsed.path[len(prefix) :].partition("/")
        zone_id = prefix + zone
        if rest == "":
            if method == "PUT":
                self.zone_exists = True
                return 201, {"id": zone_id, "name": zone, "location": "global", "etag": "z1"}
            if zone != self.zone or not self.zone_exists:
                return self._error(404, "ResourceNotFound", f"The Resource '{zone}' was not found.")
            return 200, {"id": zone_id, "name": zone, "location": "global", "etag": "z1"}
        if zone != self.zone or not self.zone_exists:
            return self._error(
                404,
                "ParentResourceNotFound",
                f"Parent resource '{zone}' not found.",
            )
        rtype, _, name = rest.partition("/")
        key = (rtype, name)
        held = self.record_sets.get(key)
        if method == "GET":
            if held is None:
                return self._error(
                    404, "NotFound", f"The resource record '{name}' does not exist in resource group."
                )
            return 200, held
        if method == "PUT":
            if_match, if_none = req.headers.get("If-Match"), req.headers.get("If-None-Match")
            if if_none == "*" and held is not None:
                return self._error(412, "PreconditionFailed", "The record set already exists.")
            if if_match is not None and (held is None or held["etag"] != if_match):
                return self._error(412, "PreconditionFailed", "The etag does not match.")
            props = json.loads(body).get("properties", {})
            if "TTL" not in props or not (props.get("ARecords") or props.get("AAAARecords")):
                return self._error(400, "BadRequest", "The record set has no records.")
            self.record_sets[key] = {
                "id": f"{zone_id}/{rtype}/{name}",
                "name": name,
                "type": f"Microsoft.Network/dnszones/{rtype}",
                "etag": str(uuid.uuid4()),
                "properties": {**props, "fqdn": f"{name}.{zone}.", "provisioningState": "Succeeded"},
            }
            return (201 if held is None else 200), self.record_sets[key]
        return self._error(405, "MethodNotAllowed", method)


@dataclass
class FakeKeyVault(FakeAzure):
    """Azure Key Vault's secrets API behind the same Entra ID endpoints: an unauthenticated
    request gets Key Vault's 401 challenge naming the tenant's authority and the vault
    resource, as the real service does, then only a token it issued is taken."""

    secrets: dict[str, str] = field(default_factory=dict)
    """Name (or ``name/version``) to value."""

    def _arm(
        self, req: BaseHTTPRequestHandler, method: str, parsed: urllib.parse.SplitResult, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        auth = req.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.tokens:
            return 401, {
                "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer."}
            }
        if not dict(urllib.parse.parse_qsl(parsed.query)).get("api-version"):
            return self._error(400, "BadParameter", "api-version is required")
        name = parsed.path.removeprefix("/secrets/").strip("/")
        if method != "GET" or not parsed.path.startswith("/secrets/") or name not in self.secrets:
            return self._error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found.")
        base = f"https://{self.host}/secrets/{name.split('/')[0]}"
        return 200, {"value": self.secrets[name], "id": f"{base}/v1", "attributes": {"enabled": True}}
