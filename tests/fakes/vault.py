"""A fake HashiCorp Vault (KV version 2 reads) on loopback for the real ``hvac`` client: it
checks the ``X-Vault-Token`` header against its one token (403 ``permission denied``
otherwise), serves only ``GET /v1/MOUNT/data/PATH`` of the mounts it has (404 with an empty
``errors`` list for a missing secret, as Vault does) and answers in Vault's JSON format."""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeVault:
    token: str
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    """(mount, path) to the secret's data."""
    reads: list[str] = field(default_factory=list)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, answer = fake.get(self)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def get(self, req: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        path = urllib.parse.urlsplit(req.path).path
        self.reads.append(path)
        if req.headers.get("X-Vault-Token") != self.token:
            return 403, {"errors": ["permission denied"]}
        parts = path.removeprefix("/v1/").split("/", 2)
        if len(parts) < 3 or parts[1] != "data":
            return 404, {"errors": []}
        data = self.secrets.get((parts[0], parts[2]))
        if data is None:
            return 404, {"errors": []}
        return 200, {
            "request_id": "1",
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": {
                "data": data,
                "metadata": {
                    "created_time": "2026-01-01T00:00:00Z",
                    "deletion_time": "",
                    "destroyed": False,
                    "version": 3,
                },
            },
        }
