"""Fake GitHub, GitLab and Gitea status APIs on 127.0.0.1, quirks included.

* GitHub: 201 with ``state``; 422 once a commit+context holds 1,000 statuses; Bearer token.
* GitLab: ``PRIVATE-TOKEN``; 400 "Cannot transition status via :enqueue from :pending" when
  the state repeats; states pending/running/success/failed/canceled; project id URL-encoded.
* Gitea: ``Authorization: token``; the response names the state ``status``.

``faults`` queues status codes to answer before behaving (e.g. ``[429, 503]``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class ForgeState:
    kind: str
    token: str
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[int] = field(default_factory=list)
    requests: int = 0
    cap: int = 1000

    def of(self, sha: str, context: str) -> list[dict[str, Any]]:
        return self.statuses.get((sha, context), [])


def _handler(state: ForgeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            state.requests += 1
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
            if state.faults:
                code = state.faults.pop(0)
                self._send(
                    code, {"message": "injected"}, {"Retry-After": "0"} if code == 429 else None
                )
                return
            parts = unquote(self.path).strip("/").split("/")
            if state.kind == "github":
                ok = self.headers.get("Authorization") == f"Bearer {state.token}"
                sha, context, value = parts[-1], body.get("context", "default"), body.get("state")
                valid = {"error", "failure", "pending", "success"}
            elif state.kind == "gitlab":
                ok = self.headers.get("PRIVATE-TOKEN") == state.token
                sha, context, value = parts[-1], body.get("name", "default"), body.get("state")
                valid = {"pending", "running", "success", "failed", "canceled"}
            else:
                ok = self.headers.get("Authorization") == f"token {state.token}"
                sha, context, value = parts[-1], body.get("context", ""), body.get("state")
                valid = {"pending", "success", "error", "failure", "warning"}
            if not ok:
                self._send(401, {"message": "Bad credentials"})
                return
            if value not in valid:
                self._send(
                    422 if state.kind != "gitlab" else 400, {"message": f"bad state {value}"}
                )
                return
            history = state.statuses.setdefault((sha, context), [])
            if state.kind == "gitlab" and history and history[-1]["state"] == value:
                self._send(400, {"message": f"Cannot transition status via :enqueue from :{value}"})
                return
            if state.kind == "github" and len(history) >= state.cap:
                self._send(
                    422,
                    {"message": "This SHA and context has reached the maximum number of statuses."},
                )
                return
            record = {
                "state": value,
                "description": body.get("description"),
                "target_url": body.get("target_url"),
            }
            history.append(record)
            if state.kind == "gitea":
                self._send(201, {"status": value, "context": context, **record})
            else:
                self._send(201, {"state": value, "context": context, **record})

    return Handler


@contextmanager
def fake_forge(kind: str, token: str = "tok") -> Iterator[tuple[str, ForgeState]]:
    state = ForgeState(kind=kind, token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
