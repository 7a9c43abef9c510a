"""``/readyz`` on a fake daemon: 503 with the reasons until the first pass is done and while the
database does not answer, 200 otherwise; the role in both; ``/healthz`` stays 200."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentflowd.api.app import create_app
from agentflowd.auth.oidc import OidcSettings
from agentflowd.engine.triggers import TriggerTable
from agentflowd.errors import StoreUnavailable, TransientError
from agentflowd.node import NodeRole, Readiness
from agentflowd.observability import Metrics
from agentflowd.store import MemoryStore


class FlakyStore(MemoryStore):
    """A store whose database can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.down: str | None = None

    def ping(self) -> None:
        if self.down is not None:
            raise StoreUnavailable(self.down)


class FakeDaemon:
    """What ``/readyz`` needs of the daemon: a role and a readiness on a store."""

    def __init__(self) -> None:
        self.store = FlakyStore()
        self.metrics = Metrics()
        self.webhook_secret: str | None = None
        self.engine = None
        self.journal = None
        self.triggers = TriggerTable()
        self.role = NodeRole.LEADER
        self.now = 0.0
        self.readiness = Readiness(self.store.ping, clock=lambda: self.now)
        self.metrics_auth = False
        self.oidc: OidcSettings | None = (
            None  # (probes and metrics are open: no key is needed here)
        )
        self.network_ceiling: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        from agentflowd.config import DaemonConfig

        database = "postgresql://agentflow:hunter2@db.internal/agentflow"
        return DaemonConfig(repo="/srv/repo", database=database).public_view()

    def refresh_triggers(self) -> None:
        pass

    def request_sync(self, noticed_at: float | None = None) -> None:
        pass

    async def forward_cancel(self, execution_id: str) -> bool:
        return False


@pytest.fixture
def api() -> Iterator[tuple[TestClient, FakeDaemon]]:
    daemon = FakeDaemon()
    with TestClient(create_app(daemon)) as client:  # type: ignore[arg-type]
        yield client, daemon


def test_not_ready_until_the_first_pass_is_done(api):
    client, daemon = api
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "error": {"code": "not_ready", "message": "first reconcile pending"},
        "ready": False,
        "reasons": ["first reconcile pending"],
        "role": "leader",
    }
    assert client.get("/healthz").status_code == 200  # alive all along

    assert daemon.readiness.pass_ended(StoreUnavailable("gone")) is False  # does not count
    assert client.get("/readyz").json()["reasons"] == ["first reconcile pending"]

    assert daemon.readiness.pass_ended(None) is True
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "reasons": [], "role": "leader"}


def test_a_pass_the_git_remote_failed_counts(api):
    client, daemon = api
    fetch_failed = TransientError("cannot fetch https://forge/r.git: timed out", delay=30)
    assert daemon.readiness.pass_ended(fetch_failed) is True
    assert client.get("/readyz").status_code == 200


def test_not_ready_while_the_database_does_not_answer(api):
    client, daemon = api
    daemon.readiness.pass_ended(None)
    daemon.store.down = "connection refused"
    daemon.now = 10.0
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["reasons"] == ["database unreachable: connection refused"]
    assert body["error"] == {
        "code": "not_ready",
        "message": "database unreachable: connection refused",
    }
    assert client.get("/healthz").status_code == 200

    daemon.store.down = None
    assert client.get("/readyz").status_code == 503  # the answer is kept for a second
    daemon.now = 11.0
    assert client.get("/readyz").status_code == 200


def test_both_reasons_and_the_follower_role(api):
    client, daemon = api
    daemon.store.down = "no route to host"
    daemon.role = NodeRole.FOLLOWER
    body = client.get("/readyz").json()
    assert body["reasons"] == ["first reconcile pending", "database unreachable: no route to host"]
    assert body["role"] == "follower"
    assert body["error"]["message"] == "; ".join(body["reasons"])


def test_readyz_is_in_the_openapi_document(api):
    client, _ = api
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/readyz"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ReadinessView"
    )
    assert responses["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NotReadyBody"
    )
