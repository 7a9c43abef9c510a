"""The API's edge: bodies over 1 MiB are refused while they arrive (by Content-Length without
reading, chunked at the first byte over); deep or malformed bodies on every POST route get the
error shape, never a 500; a wrong method on an API path is 405 with ``Allow``. Last, a real
daemon keeps its memory through two concurrent 300 MB uploads."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from agentflowd.api.app import create_app
from agentflowd.api.edge import MAX_BODY_BYTES, MAX_JSON_DEPTH, BodyLimit, nested_deeper_than
from agentflowd.engine import ExecutionRecord
from agentflowd.engine.triggers import TriggerTable, WebhookRoute
from agentflowd.errors import NotFound
from tests.api.test_api import Handle, sign_github
from tests.conftest import ADMIN, commit, free_port, git, init_repo
from tests.manifests import named
from tests.waiting import wait_for

MiB = 1024 * 1024
DEEP = b"[" * 100_000 + b"]" * 100_000
PARAMS = {"name": "a", "execution_id": "0" * 26, "revision_id": "1", "key": "nobody"}
#: the malformed bodies every POST route is sent: (what, content type, body)
MALFORMED = [
    ("deep", "application/json", DEEP),
    ("invalid JSON", "application/json", b'{"to": '),
    ("wrong content type", "application/x-www-form-urlencoded", b"to=HEAD"),
    ("empty", "application/json", b""),
    ("wrong JSON type", "application/json", b"[1, 2]"),
]


def signed_or_unsigned(name: str) -> str:
    """A valid manifest whatever the shared one says about its webhook's signing."""
    text = named(name)
    if "secretRef" not in text and "unsigned" not in text:
        text = text.replace(
            "        method: POST\n", "        method: POST\n        unsigned: true\n"
        )
    return text


class FakeEngine:
    """What the API needs of an engine to start executions: starts, unique by trigger key."""

    def __init__(self) -> None:
        self.started: list[ExecutionRecord] = []
        self.log = self

    async def run(
        self, workflow: str, input: Any = None, *, trigger: str = "manual", key: str | None = None
    ) -> ExecutionRecord:
        found = self.by_trigger_key(key) if key else None
        if found is not None:
            return found
        record = ExecutionRecord(
            id=f"e{len(self.started) + 1}",
            workflow=workflow,
            generation=1,
            spec={},
            images={},
            state="pending",
            trigger=trigger,
            trigger_key=key,
            input=input,
            output=None,
            error=None,
            created_at=datetime(2026, 11, 24, tzinfo=UTC),
            started_at=None,
            finished_at=None,
            deadline_at=None,
        )
        self.started.append(record)
        return record

    def by_trigger_key(self, key: str) -> ExecutionRecord | None:
        return next((r for r in self.started if r.trigger_key == key), None)

    async def cancel(self, execution_id: str) -> ExecutionRecord:
        raise NotFound(f"execution {execution_id!r} not found")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Handle]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    commit(repo, {"a.yaml": signed_or_unsigned("a")})
    handle = Handle(repo, tmp_path / "state")
    app = create_app(handle)
    with TestClient(app, headers={"Authorization": f"Bearer {handle.token}"}) as client:
        assert client.post("/api/v1/sync").json()["counts"] == {"create": 1}
        yield client, handle
    handle.pool.shutdown()


def is_error(response: httpx.Response) -> bool:
    body = response.json()
    return set(body) >= {"error"} and {"code", "message"} <= set(body["error"])


# -- the body limit --------------------------------------------------------------------------


def scope(*headers: tuple[bytes, bytes], method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/x", "headers": list(headers)}


def run_asgi(app: Any, the_scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(the_scope, receive, send))
    return sent


def answer(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def never_called(*_args: Any) -> None:
    raise AssertionError("the application was called")


def test_a_content_length_over_the_limit_is_refused_without_reading():
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    edge = BodyLimit(never_called)
    sent = run_asgi(edge, scope((b"content-length", str(300 * MiB).encode())), receive)
    status, body = answer(sent)
    assert status == 413
    assert body == {"error": {"code": "too_large", "message": "the body is over 1 MiB"}}


def test_a_chunked_body_is_refused_at_the_first_byte_over_the_limit():
    chunk = b"x" * 65_536
    pulled = 0

    async def endless() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    edge = BodyLimit(never_called)
    status, body = answer(run_asgi(edge, scope((b"transfer-encoding", b"chunked")), endless))
    assert status == 413 and body["error"]["code"] == "too_large"
    assert pulled == MAX_BODY_BYTES // len(chunk) + 1  # the chunk that crossed, no further


def test_a_body_within_the_limit_reaches_the_route_whole():
    parts = [b"a" * 1000, b"b" * 1000, b""]
    seen: list[bytes] = []

    async def receive() -> dict[str, Any]:
        part = parts.pop(0)
        return {"type": "http.request", "body": part, "more_body": bool(parts)}

    async def app(_scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["more_body"] is False
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = run_asgi(BodyLimit(app), scope((b"transfer-encoding", b"chunked")), receive)
    assert sent[0]["status"] == 204 and seen == [b"a" * 1000 + b"b" * 1000]


def test_a_recursion_error_is_a_400_not_a_500():
    async def app(*_args: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status, body = answer(run_asgi(BodyLimit(app), scope(method="GET"), receive))
    assert status == 400 and body["error"]["code"] == "bad_request"


def test_the_api_stops_reading_a_streamed_body_at_the_limit(env):
    _client, handle = env
    chunks = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal chunks
        for _ in range(300 * 16):  # 300 MiB if it were all read
            chunks += 1
            yield b"{" * 65_536

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(handle))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(
                "/api/v1/workflows",
                content=stream(),
                headers={"Authorization": f"Bearer {handle.token}"},
            )

    response = asyncio.run(main())
    assert response.status_code == 413 and is_error(response)
    assert chunks <= 17  # 16 chunks are 1 MiB: the 17th crossed the limit


@pytest.mark.parametrize("authorized", [True, False], ids=["admin", "anonymous"])
def test_a_content_length_over_the_limit_is_413_on_any_route(env, authorized):
    client, _ = env
    headers = {} if authorized else {"Authorization": ""}
    for path in ("/api/v1/workflows", "/api/v1/git/webhook", "/api/v1/workflows/a/rollback"):
        response = client.post(path, content=b"x" * (MiB + 1), headers=headers)
        assert response.status_code == 413 and is_error(response), path
        assert response.json()["error"]["code"] == "too_large"


# -- malformed and deep bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b"", False),
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b'{"a": ' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH, False),
        (b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), True),
        (b'["' + b"[" * 1000 + b'"]', False),  # brackets in a string do not nest
        (b'["\\"' + b"[" * 1000 + b'"]', False),  # nor after an escaped quote
        (b'["\\\\"' + b"[" * 100 + b"]" * 100 + b"]", True),  # an escaped backslash ends it
        (b"[[]]" * 10_000, False),  # many brackets, shallow
        (b"[" * 65 + b'"' + b'\\"' * 100_000, True),  # an unterminated string, linear
        (b"[" * 100 + b"]" * 100, True),
        (b"- - - [x]\n" * 100, False),  # YAML without deep brackets
    ],
)
def test_nesting_is_counted_outside_strings(body, deeper):
    assert nested_deeper_than(body, MAX_JSON_DEPTH) is deeper


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


TRICKY = st.text(alphabet='[]{}"\\ab\n', max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(value=JSON_VALUES, limit=st.integers(0, 6), ascii_only=st.booleans())
def test_nesting_matches_the_parsed_depth_of_any_json(value, limit, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nested_deeper_than(body, limit) is (depth(value) > limit)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | st.text(alphabet='[]{}"\\', max_size=300).map(str.encode))
def test_nesting_of_anything_is_answered(body):
    assert nested_deeper_than(body, 3) in (True, False)


def post_routes(client: TestClient) -> list[tuple[str, dict[str, Any]]]:
    schema = client.get("/openapi.json").json()
    return [(path, ops["post"]) for path, ops in schema["paths"].items() if "post" in ops]


def url_of(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


def test_every_post_route_answers_malformed_bodies_with_the_error_shape(env):
    client, handle = env
    handle.engine = FakeEngine()
    routes = post_routes(client)
    assert len(routes) >= 10
    checked = 0
    for path, op in routes:
        takes_body = "requestBody" in op or path == "/api/v1/workflows"
        optional = takes_body and not op.get("requestBody", {"required": True}).get("required")
        for what, content_type, body in MALFORMED:
            headers = {"Content-Type": content_type}
            if path == "/api/v1/git/webhook":
                headers.update(sign_github(body))
            response = client.post(url_of(path), content=body, headers=headers)
            where = (path, what, response.status_code, response.text[:200])
            assert response.status_code != 500, where
            assert response.headers["content-type"] == "application/json", where
            if response.status_code >= 400:
                assert is_error(response), where
            if what == "deep":
                assert response.status_code == 400, where
                assert response.json()["error"]["code"] == "bad_request", where
            elif (takes_body or path == "/api/v1/git/webhook") and not (
                optional and what == "empty"
            ):
                assert 400 <= response.status_code < 500, where
                checked += 1
    assert checked >= 19  # rollback, run (a body is optional), keys, deploy, git webhook


def test_webhook_triggers_answer_deep_bodies_with_400_and_take_others_as_input(env):
    client, handle = env
    engine = handle.engine = FakeEngine()
    handle.triggers = TriggerTable.build(
        [
            (
                (
                    WebhookRoute("a", "POST", "/hooks/open", None, unsigned=True),
                    WebhookRoute("a", "POST", "/hooks/signed", "no-such-secret-here"),
                ),
                (),
            )
        ]
    )
    for what, content_type, body in MALFORMED:
        response = client.post("/hooks/open", content=body, headers={"Content-Type": content_type})
        where = (what, response.status_code, response.text[:200])
        if what == "deep":
            assert response.status_code == 400 and is_error(response), where
        else:  # a body that is not JSON is the input {"body": text}
            assert response.status_code == 202, where
        signed = client.post("/hooks/signed", content=body, headers={"Content-Type": content_type})
        assert signed.status_code in (400, 503) and is_error(signed), (what, signed.text)
    inputs = [r.input for r in engine.started]
    assert inputs == [{"body": '{"to": '}, {"body": "to=HEAD"}, None, [1, 2]]


# -- 405 -----------------------------------------------------------------------------------------


def test_a_wrong_method_on_an_api_path_is_405_with_allow(env):
    client, _ = env
    response = client.delete("/api/v1/revisions")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
    schema = client.get("/openapi.json").json()
    checked = 0
    for path, ops in schema["paths"].items():
        declared = sorted(m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete"))
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - set(declared):
            response = client.request(method, url_of(path))
            where = (method, path, response.text)
            assert response.status_code == 405, where
            assert response.headers["allow"] == ", ".join(declared), where
            assert response.json()["error"]["code"] == "method_not_allowed", where
            checked += 1
    assert checked >= 50
    # methods the webhook catch-all does not take reach Starlette's own 405: headers kept
    response = client.request("OPTIONS", "/api/v1/revisions")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_webhook_trigger_paths_keep_working_and_unknown_paths_are_404(env):
    client, handle = env
    handle.engine = FakeEngine()
    route = WebhookRoute("a", "POST", "/hooks/a", None, unsigned=True)
    handle.triggers = TriggerTable.build([((route,), ())])
    assert client.post("/hooks/a", json={"x": 1}).status_code == 202
    assert client.get("/hooks/a").status_code == 404  # a webhook is one method and one path
    response = client.delete("/no/such/route")
    assert response.status_code == 404 and "allow" not in response.headers


# -- a real daemon's memory --------------------------------------------------------------------


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _stream(total: int, chunk: bytes) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk  # the same object each time: the test holds 1 MiB, not 300


@pytest.mark.slow
def test_two_concurrent_300_mb_bodies_leave_the_daemon_memory_flat(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    (repo / "README").write_text("no workflows\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    port = free_port()
    config = tmp_path / "agentflowd.yaml"
    config.write_text(
        f"repo: {repo}\nstate_dir: {tmp_path / 'state'}\nlisten: 127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [Path(sys.executable).parent / "agentflowd", "serve", "--config", str(config)],
        env={**os.environ, "AGENTFLOW_WARM_PYTHON": "false"},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    chunk = b"[" * MiB
    uploads: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/workflows", ADMIN),  # a deployer's route
        ("/api/v1/git/webhook", {}),  # anyone's
    ]

    def upload(path: str, headers: dict[str, str], total: int) -> int:
        try:
            response = httpx.post(
                url + path, content=_stream(total, chunk), headers=headers, timeout=120
            )
        except httpx.TransportError:
            return 0  # the daemon may close the connection after its 413
        assert response.json()["error"]["code"] == "too_large", response.text
        return response.status_code

    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what="the daemon to be ready")
        with ThreadPoolExecutor(2) as pool:  # warm up: every code path runs once
            assert set(pool.map(lambda u: upload(u[0], u[1], 4 * MiB), uploads)) <= {413, 0}
        before = _status(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(lambda u: upload(u[0], u[1], 300 * MiB), uploads))
        peak, after = _status(proc.pid, "VmHWM"), _status(proc.pid, "VmRSS")
        print(f"RSS before {before / MiB:.1f} MiB, peak {peak / MiB:.1f}, after {after / MiB:.1f}")
        assert statuses.count(413) >= 1
        assert peak - before <= 20 * MiB, (before, peak)
        assert after - before <= 20 * MiB, (before, after)
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
