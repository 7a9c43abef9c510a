"""A real git smart-HTTP server on 127.0.0.1: `git http-backend` behind a small WSGI wrapper.

Basic auth with a token (any user name), like forges take a token over HTTPS. libgit2 sends
pushes chunked, which wsgiref does not decode, so the wrapper does.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        out = b""
        while True:
            size = int(stream.readline().strip() or b"0", 16)
            if size == 0:
                stream.readline()
                return out
            out += stream.read(size)
            stream.readline()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return stream.read(length) if length else b""


def make_app(root: Path, token: str | None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if token is not None:
            auth = environ.get("HTTP_AUTHORIZATION", "")
            ok = False
            if auth.startswith("Basic "):
                _user, _, given = base64.b64decode(auth[6:]).decode().partition(":")
                ok = given == token
            if not ok:
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
                return [b"auth required\n"]
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "REMOTE_USER": "test",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        body = _read_body(environ)
        env["CONTENT_LENGTH"] = str(len(body))
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = "200 OK"
        headers = []
        for line in head.decode().split("\r\n"):
            if not line:
                continue
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = value
            else:
                headers.append((key, value))
        start_response(status, headers)
        return [payload]

    return app


@contextmanager
def serve_git(
    root: Path, *, token: str | None = None, gate: threading.Event | None = None
) -> Iterator[str]:
    """Serve the repositories under ``root``; yields the base URL.

    With a ``gate``, every request waits until it is set (a remote that hangs, then answers);
    it is set on leaving."""
    app = make_app(root, token)
    if gate is not None:
        served = app

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            gate.wait()
            return served(environ, start_response)  # type: ignore[no-any-return]

    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        if gate is not None:
            gate.set()
        server.shutdown()
        server.server_close()
        thread.join()
