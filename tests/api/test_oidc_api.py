"""OIDC sign-in through the API: a provider's token maps to its role; a bad one gets 401; the
audit log names the user (a fake issuer on 127.0.0.1, test keys)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from agentflowd.api.app import create_app
from agentflowd.auth.authenticate import Authenticator
from agentflowd.auth.oidc import OidcSettings, OidcVerifier
from agentflowd.store import AuditQuery
from tests.api.test_api import Handle
from tests.conftest import bearer, commit, init_repo
from tests.fakeoidc import (
    AUDIENCE,
    FakeIssuer,
    fake_issuer,
    hmac_confusion_token,
    none_token,
    signing_keys,
)
from tests.manifests import named


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Handle, FakeIssuer]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    commit(repo, {"a.yaml": named("a")})
    handle = Handle(repo, tmp_path / "state")
    with (
        fake_issuer(keys=[signing_keys().rsa]) as issuer,
        httpx.Client(timeout=5.0, trust_env=False) as http,
    ):
        settings = OidcSettings(
            issuer=issuer.url,
            audience=AUDIENCE,
            name_claim="email",
            roles={"sre": "deployer", "support": "viewer"},
        )
        verifier = OidcVerifier(settings, client=http)
        handle.auth = Authenticator(
            handle.store.access, clock=handle.reconciler.clock, oidc=verifier
        )
        handle.oidc = settings
        with TestClient(create_app(handle)) as client:
            assert client.post("/api/v1/sync", headers=bearer(handle.token)).status_code == 200
            yield client, handle, issuer


def test_a_good_token_gets_its_role(env):
    client, handle, issuer = env
    sre = bearer(issuer.mint({"groups": ["sre"], "email": "ann@example.com"}))
    support = bearer(issuer.mint({"groups": ["support"], "email": "bob@example.com"}))
    assert client.get("/api/v1/whoami", headers=sre).json()["role"] == "deployer"
    assert client.get("/api/v1/workflows", headers=support).status_code == 200
    assert client.post("/api/v1/workflows/a/suspend", headers=support).status_code == 403
    assert client.post("/api/v1/workflows/a/suspend", headers=sre).status_code == 200
    rows = handle.store.access.audit(AuditQuery(limit=2))
    assert [(r.actor, r.action, r.status) for r in rows] == [
        ("oidc:ann@example.com", "workflow.suspend", 200),
        ("oidc:bob@example.com", "workflow.suspend", 403),
    ]
    nobody = bearer(issuer.mint({"groups": ["sales"]}))
    refused = client.get("/api/v1/workflows", headers=nobody)
    assert refused.status_code == 403 and "no AgentFlow role" in refused.json()["error"]["message"]


def test_bad_tokens_get_401(env):
    client, _, issuer = env
    good = issuer.claims(groups=["sre"])
    now = good["iat"]
    other = signing_keys().ec
    tokens = {
        "expired": issuer.mint({"groups": ["sre"], "iat": now - 7200, "exp": now - 3600}),
        "not yet valid": issuer.mint({"groups": ["sre"], "nbf": now + 3600}),
        "wrong aud": issuer.mint({"groups": ["sre"], "aud": "someone-else"}),
        "wrong iss": issuer.mint({"groups": ["sre"], "iss": "http://127.0.0.1:1/evil"}),
        "unknown kid": issuer.mint({"groups": ["sre"]}, key=other, kid="not-published"),
        "alg none": none_token(good, kid=signing_keys().rsa.kid),
        "hmac confusion": hmac_confusion_token(good, signing_keys().rsa),
    }
    for why, token in tokens.items():
        response = client.get("/api/v1/workflows", headers=bearer(token))
        assert response.status_code == 401, (why, response.text)
        assert token not in response.text


def test_the_cli_learns_the_provider_without_credentials(env):
    client, handle, issuer = env
    answer = client.get("/api/v1/auth/oidc")
    assert answer.json() == {
        "issuer": issuer.url,
        "client_id": AUDIENCE,
        "scope": "openid email profile groups",
    }
    handle.oidc = None
    assert client.get("/api/v1/auth/oidc").status_code == 404
