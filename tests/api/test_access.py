"""Every route of the OpenAPI document refuses a missing, wrong or revoked key (401) and too weak
a role (403); a key limited by a selector cannot touch other workflows; each mutation (and each
refusal) leaves exactly one audit row naming its actor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentflowd.api.app import create_app
from agentflowd.auth.roles import Role
from agentflowd.store import AuditQuery
from tests.api.test_api import Handle
from tests.conftest import admin_token, bearer, commit, init_repo
from tests.manifests import named

#: Routes anyone may call: probes, metrics (unless metrics_auth), the git push webhook (HMAC),
#: the sign-in provider.
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/git/webhook"),
    ("get", "/api/v1/auth/oidc"),  # which provider to sign in with: asked before any credential
}
PARAMS = {"name": "a", "execution_id": "0" * 26, "revision_id": "1", "key": "nobody"}
BODIES: dict[str, Any] = {
    "/api/v1/workflows/{name}/rollback": {"to": "HEAD"},
    "/api/v1/keys": {"name": "k", "role": "viewer"},
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Handle]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    sales = named("b").replace("team: cs", "team: sales")
    commit(repo, {"a.yaml": named("a"), "b.yaml": sales})
    handle = Handle(repo, tmp_path / "state")
    with TestClient(create_app(handle)) as client:
        assert client.post("/api/v1/sync", headers=bearer(handle.token)).status_code == 200
        yield client, handle
    handle.pool.shutdown()


def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    schema = client.get("/openapi.json").json()
    return [
        (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def call(client: TestClient, method: str, path: str, token: str | None, **params: str):
    url = re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), PARAMS[m.group(1)]), path)
    headers = bearer(token) if token else {}
    return client.request(method, url, headers=headers, json=BODIES.get(path))


def test_the_document_declares_the_bearer_scheme_on_every_guarded_route(env):
    client, _ = env
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    found = operations(client)
    assert len(found) >= 25
    open_ = {(m, p) for m, p, op in found if "security" not in op}
    assert open_ == PUBLIC
    for method, path, op in found:
        if (method, path) not in PUBLIC:
            assert op["x-agentflow-role"] in {r.value for r in Role}, (method, path)
            assert op["x-agentflow-scope"] in {"target", "list", "global"}


def test_every_route_refuses_missing_wrong_and_revoked_keys(env):
    client, handle = env
    revoked = admin_token(handle.store.access, name="gone")
    handle.store.access.revoke_key("gone", now=datetime.now(UTC))
    wrong = handle.token[:-4] + "AAAA"
    for method, path, _ in operations(client):
        if (method, path) in PUBLIC:
            continue
        for token, why in ((None, "no credentials"), (wrong, "unknown"), (revoked, "revoked")):
            response = call(client, method, path, token)
            assert response.status_code == 401, (method, path, why, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_route_refuses_too_weak_a_role(env):
    client, handle = env
    tokens = {r: admin_token(handle.store.access, name=f"as-{r.value}", role=r.value) for r in Role}
    checked = 0
    for method, path, op in operations(client):
        if (method, path) in PUBLIC:
            continue
        needed = Role(op["x-agentflow-role"])
        if needed.rank == 0:
            continue
        weaker = list(Role)[needed.rank - 1]
        response = call(client, method, path, tokens[weaker])
        assert response.status_code == 403, (method, path, weaker, response.text)
        assert response.json()["error"]["code"] == "forbidden"
        assert f"needs {needed.value}" in response.json()["error"]["message"]
        checked += 1
        enough = call(client, method, path, tokens[needed])
        assert enough.status_code not in (401, 403), (method, path, enough.text)
    assert checked >= 12


def test_a_key_limited_by_a_selector_touches_only_its_workflows(env):
    client, handle = env
    limited = handle.store.access
    from agentflowd.auth.keys import issue

    token, _ = issue(
        limited,
        name="cs-team",
        role="deployer",
        selector="team=cs",
        expires=None,
        created_by="local:test",
        now=datetime.now(UTC),
    )
    for method, path, op in operations(client):
        if (method, path) in PUBLIC or Role(op["x-agentflow-role"]) is Role.ADMIN:
            continue
        scope = op["x-agentflow-scope"]
        if scope == "global":
            response = call(client, method, path, token)
            assert response.status_code == 403, (method, path, response.text)
            assert "touches every workflow" in response.json()["error"]["message"]
        elif scope == "target" and "{name}" in path:
            other = call(client, method, path, token, name="b")
            assert other.status_code == 403, (method, path, other.text)
            assert "'b' is not one" in other.json()["error"]["message"]
            mine = call(client, method, path, token, name="a")
            assert mine.status_code not in (401, 403), (method, path, mine.text)
    listed = client.get("/api/v1/workflows", headers=bearer(token)).json()
    assert [w["name"] for w in listed] == ["a"]
    everything = client.get("/api/v1/workflows", headers=bearer(handle.token)).json()
    assert [w["name"] for w in everything] == ["a", "b"]


def test_each_mutation_and_each_refusal_leaves_one_audit_row(env):
    client, handle = env
    access = handle.store.access
    before = {e.id for e in access.audit(AuditQuery(limit=1000))}
    viewer = admin_token(access, name="watcher", role="viewer")
    admin = bearer(handle.token)
    steps = [
        ("post", "/api/v1/workflows/a/suspend", admin, "workflow.suspend", "a", 200),
        ("post", "/api/v1/workflows/a/resume", admin, "workflow.resume", "a", 200),
        ("post", "/api/v1/workflows/a/suspend", bearer(viewer), "workflow.suspend", "a", 403),
        ("post", "/api/v1/workflows/a/suspend", {}, "workflow.suspend", "a", 401),
        ("delete", "/api/v1/workflows/a", admin, "workflow.delete", "a", 409),
        ("post", "/api/v1/sync", admin, "revision.sync", None, 200),
        ("delete", "/api/v1/keys/watcher", admin, "key.revoke", "watcher", 200),
        ("get", "/api/v1/workflows", {}, "workflow.list", None, 401),
    ]
    for method, path, headers, *_ in steps:
        client.request(method, path, headers=headers)
    client.get("/api/v1/workflows", headers=admin)  # a read: not audited
    rows = [e for e in reversed(access.audit(AuditQuery(limit=1000))) if e.id not in before]
    got = [(r.action, r.target, r.status, r.actor) for r in rows]
    actors = {"admin": "key:test-admin", "viewer": "key:watcher", "none": "anonymous"}
    expected = []
    for _m, _p, headers, action, target, status in steps:
        who = "none" if not headers else "viewer" if headers == bearer(viewer) else "admin"
        expected.append((action, target, status, actors[who]))
    assert got == expected
    assert all(r.source == "testclient" for r in rows)
    assert [r.result for r in rows] == [
        "ok",
        "ok",
        "denied",
        "denied",
        "error",
        "ok",
        "ok",
        "denied",
    ]


def test_every_mutating_route_leaves_exactly_one_row_naming_its_actor(env):
    """Each POST/PUT/PATCH/DELETE of the document, called once by an admin: one new audit row,
    its action the route's name, its actor the key, whatever the answer."""
    client, handle = env
    access = handle.store.access
    mutating = [
        (m, p, op) for m, p, op in operations(client) if m != "get" and (m, p) not in PUBLIC
    ]
    assert len(mutating) >= 12
    actions = []
    for method, path, _op in mutating:
        before = {e.id for e in access.audit(AuditQuery(limit=10_000))}
        response = call(client, method, path, handle.token)
        new = [e for e in access.audit(AuditQuery(limit=10_000)) if e.id not in before]
        assert len(new) == 1, (method, path, response.status_code, new)
        [row] = new
        assert row.actor == "key:test-admin" and row.status == response.status_code
        assert "." in row.action, (method, path, row.action)
        actions.append(row.action)
    assert len(set(actions)) == len(actions), actions  # each kind of mutation has its own name
