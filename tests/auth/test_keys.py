"""API keys: made, checked, expired, revoked and bootstrapped; ``agentflowd keys`` on the host."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentflowd.__main__ import main
from agentflowd.auth import keys
from agentflowd.auth.authenticate import Authenticator
from agentflowd.auth.principal import PrincipalKind
from agentflowd.auth.roles import Role
from agentflowd.errors import Forbidden, Unauthenticated, UsageError
from agentflowd.store import MemoryStore, open_store

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_key_authenticates_until_it_expires_or_is_revoked():
    store, clock = MemoryStore(), Clock()
    token, key = keys.issue(
        store.access,
        name="ci",
        role="operator",
        selector="team=support",
        expires="2d",
        created_by="local:test",
        now=T0,
    )
    assert token.startswith("afk_") and token not in repr(key) and len(token) == 60
    assert key.token_sha256 == keys.token_sha256(token) and key.expires_at == T0 + timedelta(days=2)
    auth = Authenticator(store.access, clock=clock)
    principal = auth.authenticate(f"Bearer {token}")
    assert (principal.kind, principal.name, principal.role) == (
        PrincipalKind.KEY,
        "ci",
        Role.OPERATOR,
    )
    assert principal.actor == "key:ci" and principal.limited
    assert principal.selects({"team": "support"}) and not principal.selects({"team": "sales"})
    clock.now = T0 + timedelta(days=2)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(f"Bearer {token}")
    clock.now = T0
    store.access.revoke_key("ci", now=T0)
    with pytest.raises(Unauthenticated, match="revoked"):
        auth.authenticate(f"bearer {token}")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no credentials"),
        ("", "no credentials"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer afk_short", "malformed"),
        ("Bearer afk_abcdefghijkm_" + "x" * 43, "unknown API key"),
        ("Bearer eyJhbGciOi.eyJzdWIi.c2ln", "no OIDC issuer"),
        ("Bearer sk-something-else", "not an AgentFlow API key"),
    ],
)
def test_what_proves_nothing_is_refused(header, reason):
    auth = Authenticator(MemoryStore().access, clock=Clock())
    with pytest.raises(Unauthenticated, match=reason):
        auth.authenticate(header)


def test_a_token_with_the_right_id_but_another_secret_is_refused():
    store = MemoryStore()
    token, _ = keys.issue(
        store.access, name="a", role="admin", selector=None, expires=None, created_by="t", now=T0
    )
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(Unauthenticated, match="unknown API key"):
        Authenticator(store.access, clock=Clock()).authenticate(f"Bearer {forged}")


def test_last_use_is_written_at_most_once_a_minute():
    store, clock = MemoryStore(), Clock()
    token, key = keys.issue(
        store.access, name="a", role="viewer", selector=None, expires=None, created_by="t", now=T0
    )
    auth = Authenticator(store.access, clock=clock)
    auth.authenticate(f"Bearer {token}")
    assert store.access.get_key(key.id).last_used_at == T0
    clock.now = T0 + timedelta(seconds=30)
    auth.authenticate(f"Bearer {token}")
    assert store.access.get_key(key.id).last_used_at == T0
    clock.now = T0 + timedelta(seconds=61)
    auth.authenticate(f"Bearer {token}")
    assert store.access.get_key(key.id).last_used_at == clock.now


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "bad name", "name 'bad name'"),
        ("role", "root", "role 'root': one of viewer, operator, deployer, admin"),
        ("selector", "team in ()", "selector"),
        ("expires", "forever", "expires 'forever'"),
        ("expires", "0d", "between 1 day"),
    ],
)
def test_bad_requests_name_the_field(field, value, message):
    args = {"name": "k", "role": "viewer", "selector": None, "expires": None, field: value}
    with pytest.raises(UsageError, match=message):
        keys.issue(MemoryStore().access, created_by="t", now=T0, **args)


class FakeOidc:
    def __init__(self, role: Role | None) -> None:
        self.role = role

    def verify(self, token: str):
        role = self.role

        class Identity:
            display = "alice@example.com"

        Identity.role = role  # type: ignore[attr-defined]
        return Identity()


def test_an_oidc_token_maps_to_its_role_or_is_forbidden_without_one():
    access = MemoryStore().access
    auth = Authenticator(access, clock=Clock(), oidc=FakeOidc(Role.DEPLOYER))
    principal = auth.authenticate("Bearer a.b.c")
    assert (principal.actor, principal.role) == ("oidc:alice@example.com", Role.DEPLOYER)
    with pytest.raises(Forbidden, match="no AgentFlow role"):
        Authenticator(access, clock=Clock(), oidc=FakeOidc(None)).authenticate("Bearer a.b.c")


def test_bootstrap_is_idempotent_and_refuses_a_clash():
    access = MemoryStore().access
    token = keys.new_token()
    first = keys.bootstrap(access, token, now=T0)
    assert (first.name, first.role) == ("bootstrap", "admin")
    assert keys.bootstrap(access, token + "\n", now=T0) == first  # a second node, a restart
    with pytest.raises(UsageError, match="another key named 'bootstrap'"):
        keys.bootstrap(access, keys.new_token(), now=T0)
    with pytest.raises(UsageError, match="not an AgentFlow API key"):
        keys.bootstrap(access, "hunter2", now=T0)
    access.revoke_key("bootstrap", now=T0)
    with pytest.raises(UsageError, match="revoked"):
        keys.bootstrap(access, token, now=T0)


def test_agentflowd_keys_on_the_host(tmp_path: Path, capsys):
    state = ["--state-dir", str(tmp_path / "state")]
    assert (
        main(
            ["keys", "create", "ci", "--role", "deployer", "--expires", "90d", "-o", "json", *state]
        )
        == 0
    )
    made = json.loads(capsys.readouterr().out)
    assert made["role"] == "deployer" and made["token"].startswith("afk_")
    assert main(["keys", "create", "ci", "--role", "viewer", *state]) == 1  # the name is taken
    assert "revoke it first" in capsys.readouterr().err
    assert main(["keys", "list", "-o", "json", *state]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "ci" and "token" not in listed and made["token"] not in str(listed)
    assert main(["keys", "revoke", "ci", *state]) == 0
    assert main(["keys", "revoke", "ci", *state]) == 3
    assert main(["keys", "create", "x", "--role", "admin", "--workflows", "a b", *state]) == 2
    store = open_store(str(tmp_path / "state" / "agentflow.db"))
    try:
        rows = store.access.audit()
        assert [(r.action, r.target, r.source) for r in rows] == [
            ("key.revoke", "ci", "cli"),
            ("key.create", "ci", "cli"),
        ]
        assert all(r.actor.startswith("local:") for r in rows)
    finally:
        store.close()


def test_agentflowd_keys_token_writes_a_private_file_once(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "admin.key"
    assert main(["keys", "token", "--file", str(path), "--cli-config", "http://127.0.0.1:9"]) == 0
    token = path.read_text().strip()
    assert keys.key_id_of(token) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["keys", "token", "--file", str(path)]) == 0
    assert path.read_text().strip() == token  # kept
    config = (tmp_path / "xdg" / "agentflow" / "config.yaml").read_text()
    assert token in config and "http://127.0.0.1:9" in config
