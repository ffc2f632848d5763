"""A fake Google Cloud DNS API and OAuth token endpoint on loopback, for the real
``google-cloud-dns`` client and google-auth's service-account credentials.

It checks what a real service checks: the token endpoint takes only a JWT-bearer grant whose
assertion is signed (RS256) by the service account's key, addressed to Google's token URI, with
the Cloud DNS scope, not expired; the API takes only a bearer token it issued and that has not
expired (``token_requests`` API calls each, then 401, as a token that expires mid-run);
paths are the documented ones (``/dns/v1/projects/P/managedZones/Z/...``), a change's deletions
must match the zone's record set exactly (else 412 ``conditionNotMet``), and errors have
Google's JSON error format. Changes are ``pending`` when created and ``done`` when read again.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SECRET_MANAGER_AUDIENCE = "https://secretmanager.googleapis.com/"


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class FakeCloudDns:
    project: str
    managed_zone: str
    dns_name: str
    public_key: rsa.RSAPublicKey
    token_requests: int = 1000
    """API requests one token is good for; then 401 (expired)."""
    rrsets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    """Issued token to the API requests made with it."""
    expiry: dict[str, float] = field(default_factory=dict)
    """Issued token to the time it expires (``time.time()``), as the grant told the client."""
    requests: list[str] = field(default_factory=list)
    """``METHOD path`` of each request, token grants included."""
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    zone_exists: bool = True
    refuse_tokens: bool = False
    scope: str = SCOPE
    expires_in: int = 3599
    """What the token endpoint says of each token's life (seconds)."""
    """The OAuth scope a grant must ask for (Cloud DNS's; Secret Manager's fake: cloud-platform)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        """Serve on a free loopback port; returns the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ requests

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests.append(f"{method} {parsed.path}")
            if parsed.path == "/token" and method == "POST":
                status, answer = self._token(req, body)
            else:
                status, answer = self._api(req, method, parsed, body)
        data = json.dumps(answer).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _token(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any]]:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if self.refuse_tokens:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            head, payload, sig = form["assertion"].split(".")
            self.public_key.verify(
                _b64(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(_b64(payload))
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        # Google's token endpoint wants its own URI as the audience, wherever the key's
        # token_uri sends the grant.
        if claims.get("aud") != GOOGLE_TOKEN_URI or self.scope not in claims.get("scope", "").split():
            return 400, {"error": "invalid_scope"}
        if claims.get("exp", 0) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "expired assertion"}
        token = f"ya29.fake-{len(self.tokens) + 1}"
        self.tokens[token] = 0
        self.expiry[token] = time.time() + self.expires_in
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def _error(self, code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {
            "error": {
                "code": code,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        }

    def _api(
        self, req: BaseHTTPRequestHandler, method: str, parsed: urllib.parse.SplitResult, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        auth = req.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.tokens:
            return self._error(401, "authError", "Request had invalid authentication credentials.")
        self.tokens[token] += 1
        if self.tokens[token] > self.token_requests:
            return self._error(401, "authError", "Request had invalid authentication credentials (expired).")
        prefix = f"/dns/v1/projects/{self.project}/managedZones/"
        if not parsed.path.startswith(prefix):
            return self._error(404, "notFound", f"no such path {parsed.path}")
        zone, _, rest = parsed.path[len(prefix) :].partition("/")
        if zone != self.managed_zone:
            return self._error(
                404, "notFound", f"The 'parameters.managedZone' resource named '{zone}' does not exist."
            )
        if rest == "" and method == "GET":
            if not self.zone_exists:
                return self._error(404, "notFound", f"The managed zone '{zone}' does not exist.")
            return 200, {"kind": "dns#managedZone", "name": zone, "dnsName": self.dns_name, "id": "1"}
        if rest == "rrsets" and method == "GET":
            query = dict(urllib.parse.parse_qsl(parsed.query))
            if "type" in query and "name" not in query:
                return self._error(400, "invalid", "type requires name")
            sets = [
                r
                for (n, t), r in sorted(self.rrsets.items())
                if n == query.get("name", n) and t == query.get("type", t)
            ]
            return 200, {"kind": "dns#resourceRecordSetsListResponse", "rrsets": sets}
        if rest == "changes" and method == "POST":
            return self._change(json.loads(body))
        if rest.startswith("changes/") and method == "GET":
            change = self.changes.get(rest.split("/", 1)[1])
            if change is None:
                return self._error(404, "notFound", "no such change")
            change["status"] = "done"
            return 200, change
        return self._error(404, "notFound", f"no such path {parsed.path}")

    def _change(self, change: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for rrset in change.get("additions", []) + change.get("deletions", []):
            if not rrset["name"].endswith(self.dns_name) or not rrset.get("rrdatas"):
                return self._error(400, "invalid", f"Invalid value for 'entity.change': {rrset['name']}")
        for rrset in change.get("deletions", []):
            held = self.rrsets.get((rrset["name"], rrset["type"]))
            if held is None or held["rrdatas"] != rrset["rrdatas"] or str(held["ttl"]) != str(rrset["ttl"]):
                return self._error(412, "conditionNotMet", f"The resource '{rrset['name']}' does not match")
        for rrset in change.get("additions", []):
            key = (rrset["name"], rrset["type"])
            deleted = any((d["name"], d["type"]) == key for d in change.get("deletions", []))
            if key in self.rrsets and not deleted:
                return self._error(409, "alreadyExists", f"The resource '{rrset['name']}' already exists")
        for rrset in change.get("deletions", []):
            self.rrsets.pop((rrset["name"], rrset["type"]))
        for rrset in change.get("additions", []):
            self.rrsets[(rrset["name"], rrset["type"])] = {
                "kind": "dns#resourceRecordSet",
                "name": rrset["name"],
                "type": rrset["type"],
                "ttl": int(rrset["ttl"]),
                "rrdatas": rrset["rrdatas"],
            }
        cid = str(len(self.changes) + 1)
        self.changes[cid] = {
            "kind": "dns#change",
            "id": cid,
            "status": "pending",
            "startTime": "2026-01-01T00:00:00.000Z",
            **change,
        }
        return 200, self.changes[cid]


@dataclass
class FakeSecretManager(FakeCloudDns):
    """Google Cloud Secret Manager's REST API (``:access`` of a secret version) behind the same
    token endpoint: a bearer token it issued, the documented path, Google's error format."""

    versions: dict[str, str] = field(default_factory=dict)
    """``projects/P/secrets/N/versions/V`` to the payload (``latest`` is a version name too)."""
    self_signed: int = 0
    """Requests authenticated with a self-signed JWT."""

    def _api(
        self, req: BaseHTTPRequestHandler, method: str, parsed: urllib.parse.SplitResult, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        auth = req.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or not (token in self.tokens or self._self_signed(token)):
            return self._error(401, "authError", "Request had invalid authentication credentials.")
        if method != "GET" or not parsed.path.startswith("/v1/") or not parsed.path.endswith(":access"):
            return self._error(404, "notFound", f"no such path {parsed.path}")
        name = parsed.path.removeprefix("/v1/").removesuffix(":access")
        if name not in self.versions:
            return self._error(404, "notFound", f"Secret Version [{name}] not found.")
        data = base64.b64encode(self.versions[name].encode()).decode()
        return 200, {"name": name, "payload": {"data": data}}

    def _self_signed(self, token: str) -> bool:
        """A self-signed JWT (google-auth's JWT access for service accounts, which Google's
        APIs take instead of an OAuth token): signed by the key, for this API or with the
        scope, not expired."""
        try:
            head, payload, sig = token.split(".")
            self.public_key.verify(
                _b64(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(_b64(payload))
        except Exception:
            return False
        self.self_signed += 1
        audience_ok = (
            claims.get("aud") == SECRET_MANAGER_AUDIENCE or self.scope in claims.get("scope", "").split()
        )
        return bool(audience_ok and claims.get("exp", 0) > time.time())
