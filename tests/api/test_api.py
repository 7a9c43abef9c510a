"""The REST API on a real reconciler and repository, in process (FastAPI's TestClient)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentflowd.api.app import create_app
from agentflowd.auth.authenticate import Authenticator
from agentflowd.auth.oidc import OidcSettings
from agentflowd.engine import Engine, Journal
from agentflowd.engine.triggers import TriggerTable
from agentflowd.node import NodeRole, Readiness
from agentflowd.observability import Metrics
from agentflowd.reconcile import MemorySink, Reconciler
from agentflowd.source.git import GitSource
from agentflowd.store import MemoryStore, Store
from tests.conftest import admin_token, bearer, commit, git, init_repo
from tests.manifests import named

SECRET = "s3cret"


class Handle:
    def __init__(self, repo: Path, state: Path) -> None:
        self.store: Store = MemoryStore()
        self.metrics = Metrics()
        self.webhook_secret: str | None = SECRET
        self.reconciler = Reconciler(
            source=GitSource(str(repo), state_dir=state),
            store=self.store,
            sinks=[MemorySink()],
            clock=lambda: datetime.now(UTC),
        )
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.sync_requests = 0
        self.role = NodeRole.LEADER
        self.readiness = Readiness(self.store.ping)
        self.engine: Engine | None = None
        self.journal: Journal | None = None
        self.triggers = TriggerTable()
        self.auth = Authenticator(self.store.access, clock=lambda: datetime.now(UTC))
        self.metrics_auth = False
        self.oidc: OidcSettings | None = None
        self.network_ceiling: tuple[str, ...] = ("*.example.com",)
        self.token = admin_token(self.store.access)

    def settings(self) -> dict[str, Any]:
        from agentflowd.config import DaemonConfig

        database = "postgresql://agentflow:hunter2@db.internal/agentflow"
        return DaemonConfig(repo="/srv/repo", database=database).public_view()

    def refresh_triggers(self) -> None:
        pass

    def run_git(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def request_sync(self, noticed_at: float | None = None) -> None:
        self.sync_requests += 1

    async def forward_cancel(self, execution_id: str) -> bool:
        return False


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Handle, Path]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    handle = Handle(repo, tmp_path / "state")
    with TestClient(create_app(handle), headers=bearer(handle.token)) as client:
        yield client, handle, repo
    handle.pool.shutdown()


def test_sync_list_describe(env):
    client, handle, repo = env
    body = client.post("/api/v1/sync").json()
    assert body["state"] == "success" and body["counts"] == {"create": 2}
    assert client.post("/api/v1/sync").json()["state"] == "unchanged"
    listed = client.get("/api/v1/workflows").json()
    assert [(w["name"], w["phase"], w["generation"]) for w in listed] == [
        ("a", "active", 1),
        ("b", "active", 1),
    ]
    detail = client.get("/api/v1/workflows/a").json()
    assert detail["spec"]["metadata"]["name"] == "a"
    assert (
        detail["schedules"][0]["cron"] == "0 9 * * 1-5" and len(detail["schedules"][0]["next"]) == 3
    )
    assert detail["history"][0]["action"] == "create"
    qa = detail["images"]["agents/qa:v0.8"]
    assert qa["path"] == "agents/qa/v0.8/agent.py" and len(qa["sha256"]) == 64
    revisions = client.get("/api/v1/revisions").json()
    assert revisions[0]["state"] == "success"
    assert client.get(f"/api/v1/revisions/{revisions[0]['id']}").json() == revisions[0]


def test_errors_have_one_shape(env):
    client, _, _ = env
    for path in ("/api/v1/workflows/nope", "/api/v1/revisions/99", "/no/such/route"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert set(response.json()["error"]) == {"code", "message"}
    response = client.post("/api/v1/workflows/nope/suspend")
    assert response.json() == {
        "error": {"code": "not_found", "message": "workflow 'nope' not found"}
    }
    response = client.post("/api/v1/workflows/a/rollback", json={})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_suspend_resume_rollback_unpin(env):
    client, handle, repo = env
    first = git(repo, "rev-parse", "HEAD")
    client.post("/api/v1/sync")
    assert client.post("/api/v1/workflows/a/suspend").json()["suspended"] is True
    assert client.get("/api/v1/workflows/a").json()["phase"] == "suspended"
    assert client.post("/api/v1/workflows/a/resume").json()["suspended"] is False
    commit(repo, {"a.yaml": named("a").replace("gpt-4", "gpt-4o")})
    client.post("/api/v1/sync")
    rolled = client.post("/api/v1/workflows/a/rollback", json={"to": first[:10]}).json()
    assert rolled["pinned_revision"] == first and rolled["generation"] == 3
    assert client.post("/api/v1/workflows/a/unpin").json()["counts"] == {
        "unchanged": 1,
        "update": 1,
    }


def test_diff_of_a_ref(env):
    client, handle, repo = env
    client.post("/api/v1/sync")
    git(repo, "checkout", "-q", "-b", "pr")
    commit(
        repo,
        {
            "c.yaml": named("c"),
            "a.yaml": named("a").replace("dependsOn: [respond]", "dependsOn: [x]"),
        },
    )
    body = client.get("/api/v1/diff", params={"ref": "pr"}).json()
    assert body["counts"] == {"create": 1, "keep-invalid": 1, "unchanged": 1}
    assert body["diagnostics"][0]["file"] == "a.yaml"
    assert sorted(handle.store.workflows()) == ["a", "b"]  # nothing applied


def sign_github(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}


def sign_gitea(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Gitea-Event": "push", "X-Gitea-Signature": digest}


def sign_gitlab(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}


@pytest.mark.parametrize(
    "sign", [sign_github, sign_gitea, sign_gitlab], ids=["github", "gitea", "gitlab"]
)
def test_push_webhooks_are_verified_then_trigger_a_fetch(env, sign):
    client, handle, _ = env
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
    good = client.post("/api/v1/git/webhook", content=body, headers=sign(body))
    assert good.status_code == 202 and good.json()["status"] == "accepted"
    assert handle.sync_requests == 1
    bad = client.post("/api/v1/git/webhook", content=body, headers=sign(body, "wrong"))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
    notes = json.dumps({"ref": "refs/notes/agentflow"}).encode()
    ignored = client.post("/api/v1/git/webhook", content=notes, headers=sign(notes))
    assert ignored.json() == {"status": "ignored", "reason": "notes push"}
    assert handle.sync_requests == 1


def test_webhooks_are_refused_without_a_secret(env):
    client, handle, _ = env
    handle.webhook_secret = None
    body = b'{"ref": "refs/heads/main"}'
    response = client.post("/api/v1/git/webhook", content=body, headers=sign_github(body))
    assert (
        response.status_code == 401 and "no webhook secret" in response.json()["error"]["message"]
    )
    unknown = client.post("/api/v1/git/webhook", content=body)
    assert unknown.status_code == 401


def test_health_and_metrics(env):
    client, handle, _ = env
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503  # until the first pass (tests/api/test_readyz)
    handle.readiness.pass_ended(None)
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").text
    assert 'agentflow_build_info{version="' in text
    assert "_created" not in text


def test_openapi_is_published(env):
    client, _, _ = env
    spec = client.get("/openapi.json").json()
    assert "/api/v1/workflows/{name}/rollback" in spec["paths"]


def test_webhook_edge_cases(env):
    import urllib.parse

    client, handle, _ = env
    payload = json.dumps({"ref": "refs/heads/main"})
    form = urllib.parse.urlencode({"payload": payload}).encode()
    headers = {**sign_github(form), "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/api/v1/git/webhook", content=form, headers=headers).status_code == 202
    odd = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=\u00e9".encode("latin-1")}
    response = client.post("/api/v1/git/webhook", content=payload.encode(), headers=odd)
    assert response.status_code == 401
    deep = b"[" * 100_000
    response = client.post("/api/v1/git/webhook", content=deep, headers=sign_github(deep))
    assert response.status_code == 400  # refused at the edge: nested over 64 levels
    assert response.json()["error"]["code"] == "bad_request"


def test_unknown_refs_are_404_and_huge_ids_422(env):
    client, _, _ = env
    client.post("/api/v1/sync")
    response = client.get("/api/v1/diff", params={"ref": "no-such-ref"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.post("/api/v1/workflows/a/rollback", json={"to": "deadbeef"})
    assert response.status_code == 404
    assert client.get("/api/v1/revisions/99999999999999999999999").status_code == 422


def test_costs_from_the_ledger(env):
    from decimal import Decimal

    from agentflowd.store import LlmCall

    client, handle, _ = env
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)
    for provider, cost in (("openai", "0.002"), ("anthropic", "0.0005"), ("openai", "0.001")):
        handle.store.record_llm_call(
            LlmCall(
                at=at,
                workflow="a",
                agent="classify",
                execution="e1",
                step="s",
                provider=provider,
                kind=provider,
                model="m",
                input_tokens=10,
                output_tokens=5,
                cache_read_tokens=0,
                cache_write_tokens=0,
                estimated=False,
                cost=Decimal(cost),
                price_source="p",
                latency_ms=1.0,
                cache_hit=False,
                fallback_depth=0,
                attempt=1,
                outcome="ok",
            )
        )
    body = client.get("/api/v1/costs").json()
    assert body == {
        "by": "provider",
        "totals": {
            "anthropic": {"cost_usd": "0.0005", "calls": 1},
            "openai": {"cost_usd": "0.003", "calls": 2},
        },
        "total_usd": "0.0035",
    }
    assert (
        client.get("/api/v1/costs?by=agent&workflow=a").json()["totals"]["classify"]["calls"] == 3
    )
    assert client.get("/api/v1/costs?since=2026-11-25T00:00:00Z").json()["totals"] == {}
    assert client.get("/api/v1/costs?by=secret").status_code == 422
    assert client.get("/api/v1/costs?since=2026-11-25T00:00:00").status_code == 422


def test_a_workflow_deployed_through_the_api_cannot_open_the_network_past_the_ceiling(env):
    client, _handle, _repo = env
    assert client.post("/api/v1/sync").status_code == 200  # its images are in the store now

    def manifest(host: str) -> str:
        text = named("from-api", hook="/hooks/from-api")
        return text.replace(
            "      image: agents/classifier:v1.2\n",
            f"      image: agents/classifier:v1.2\n      network:\n        allow: [{host!r}]\n",
        )

    headers = {"Content-Type": "application/yaml"}
    inside = client.post(
        "/api/v1/workflows", content=manifest("api.example.com:443"), headers=headers
    )
    assert inside.status_code == 201, inside.text
    for host in ("10.0.0.5:8500", "169.254.169.254", "example.com", "evil.org"):
        outside = client.post("/api/v1/workflows", content=manifest(host), headers=headers)
        assert outside.status_code == 422, (host, outside.text)
        error = outside.json()["error"]
        assert error["code"] == "network_ceiling" and "*.example.com" in error["message"]
    # the refused deploys changed nothing
    assert client.get("/api/v1/workflows/from-api").json()["generation"] == 1


def test_an_admin_reads_the_settings_with_secrets_masked(env):
    client, _handle, _repo = env
    settings = client.get("/api/v1/settings").json()
    assert settings["repo"] == "/srv/repo" and settings["lease"] == "10s"
    assert settings["database"] == "postgresql://agentflow:***@db.internal/agentflow"
    assert "hunter2" not in json.dumps(settings)


def test_metrics_can_ask_for_credentials(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    handle = Handle(repo, tmp_path / "state")
    handle.metrics_auth = True
    with TestClient(create_app(handle)) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers=bearer(handle.token))
        assert response.status_code == 200 and "agentflow_" in response.text
    handle.pool.shutdown()
