"""Webhook triggers against replays: a signed timestamp within 5 minutes, a delivery accepted once
(in memory, and durably by its trigger key), GitHub's form deduplicated by its delivery id, and
unsigned webhooks only where the manifest says ``unsigned: true``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentflowd.api.app import create_app
from agentflowd.engine.deliveries import (
    REPLAY_WINDOW,
    ReplayGuard,
    SignatureForm,
    WebhookDelivery,
    WebhookRefusal,
    timestamped_signature,
    verify_delivery,
)
from agentflowd.engine.triggers import TriggerTable, WebhookRoute
from agentflowd.manifest import Severity, load_sources
from agentflowd.manifest.load import SourceFile
from tests.api.test_api import Handle
from tests.api.test_edge import FakeEngine
from tests.conftest import init_repo

SECRET = b"hook-s3cret"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SIGNED = WebhookRoute("orders", "POST", "/hooks/orders", "orders-hook")
OPEN = WebhookRoute("tickets", "POST", "/hooks/tickets", None, unsigned=True)
#: stored before `unsigned` existed: neither signed nor declared unsigned
LEGACY = WebhookRoute("legacy", "POST", "/hooks/legacy", None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Env:
    def __init__(self, handle: Handle, clock: Clock, engine: FakeEngine) -> None:
        self.handle, self.clock, self.engine = handle, clock, engine
        self.client = self.restart()

    def restart(self) -> TestClient:
        """A new app on the same daemon: the in-memory guard is gone, the database is not."""
        self.client = TestClient(create_app(self.handle))
        return self.client


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AGENTFLOW_SECRET_ORDERS_HOOK", SECRET.decode())
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    handle = Handle(repo, tmp_path / "state")
    clock = Clock()
    handle.reconciler.clock = clock
    engine = FakeEngine()
    handle.engine = engine  # type: ignore[assignment]
    handle.triggers = TriggerTable.build([((SIGNED, OPEN, LEGACY), ())])
    yield Env(handle, clock, engine)
    handle.pool.shutdown()


def agentflow_headers(body: bytes, at: datetime, secret: bytes = SECRET) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    return {
        "X-AgentFlow-Timestamp": stamp,
        "X-AgentFlow-Signature-256": timestamped_signature(secret, stamp, body),
    }


def github_headers(body: bytes, delivery: str | None, secret: bytes = SECRET) -> dict[str, str]:
    headers = {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, "sha256").hexdigest()}
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return headers


BODY = b'{"order": 42}'


def test_a_replayed_signed_webhook_starts_nothing(env):
    headers = agentflow_headers(BODY, T0)
    first = env.client.post("/hooks/orders", content=BODY, headers=headers)
    assert first.status_code == 202, first.text
    execution = first.json()["execution"]
    env.clock.now = T0 + timedelta(seconds=30)
    again = env.client.post("/hooks/orders", content=BODY, headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_delivery"
    assert again.json()["error"]["execution"] == execution
    # another delivery id is not signed: the signature still names the same delivery
    changed = {**headers, "X-AgentFlow-Delivery": "something-new"}
    assert env.client.post("/hooks/orders", content=BODY, headers=changed).status_code == 409
    # after a restart the in-memory guard is empty: the trigger key in the database refuses it
    env.restart()
    assert env.client.post("/hooks/orders", content=BODY, headers=headers).status_code == 409
    assert [r.id for r in env.engine.started] == [execution]
    assert env.engine.started[0].input == {"order": 42}


def test_old_future_and_missing_timestamps_are_refused(env):
    for at in (T0 - timedelta(seconds=301), T0 + timedelta(seconds=301)):
        response = env.client.post(
            "/hooks/orders", content=BODY, headers=agentflow_headers(BODY, at)
        )
        assert response.status_code == 401
        assert "301 s from the daemon's clock" in response.json()["error"]["message"]
    inside = agentflow_headers(BODY, T0 - timedelta(seconds=299))
    assert env.client.post("/hooks/orders", content=BODY, headers=inside).status_code == 202
    headers = agentflow_headers(BODY, T0)
    del headers["X-AgentFlow-Timestamp"]
    response = env.client.post("/hooks/orders", content=BODY, headers=headers)
    assert response.status_code == 401 and "X-AgentFlow-Timestamp" in response.text
    # the timestamp is signed: moving it forward breaks the signature
    moved = {**agentflow_headers(BODY, T0), "X-AgentFlow-Timestamp": str(int(T0.timestamp()) + 1)}
    response = env.client.post("/hooks/orders", content=BODY, headers=moved)
    assert response.status_code == 401 and "wrong X-AgentFlow-Signature-256" in response.text
    # a replay once the window has passed is refused by its timestamp
    env.clock.now = T0 + REPLAY_WINDOW + timedelta(seconds=1)
    response = env.client.post("/hooks/orders", content=BODY, headers=agentflow_headers(BODY, T0))
    assert response.status_code == 401
    assert len(env.engine.started) == 1


def test_wrong_and_missing_signatures_are_401(env):
    for headers in (
        {},
        agentflow_headers(BODY, T0, secret=b"wrong"),
        {**agentflow_headers(BODY, T0), "X-AgentFlow-Timestamp": "soon"},
        github_headers(BODY, "d-1", secret=b"wrong"),
        github_headers(BODY, None),  # GitHub's form needs its delivery id
    ):
        response = env.client.post("/hooks/orders", content=BODY, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
    assert env.engine.started == []


def test_githubs_form_still_works_and_its_delivery_id_dedups(env):
    first = env.client.post("/hooks/orders", content=BODY, headers=github_headers(BODY, "d-1"))
    assert first.status_code == 202, first.text
    again = env.client.post("/hooks/orders", content=BODY, headers=github_headers(BODY, "d-1"))
    assert again.status_code == 409 and again.json()["error"]["execution"] == "e1"
    env.restart()
    again = env.client.post("/hooks/orders", content=BODY, headers=github_headers(BODY, "d-1"))
    assert again.status_code == 409
    # GitHub signs no timestamp and not the delivery id: another id is another delivery
    # (documented in docs/webhooks.md; sign a timestamp where that matters)
    other = env.client.post("/hooks/orders", content=BODY, headers=github_headers(BODY, "d-2"))
    assert other.status_code == 202
    assert [r.trigger_key for r in env.engine.started] == [
        "webhook:orders:d-1",
        "webhook:orders:d-2",
    ]


def test_unsigned_webhooks_only_where_the_manifest_says_so(env):
    plain = env.client.post("/hooks/tickets", json={"ticket": 1})
    assert plain.status_code == 202
    retried = {"X-AgentFlow-Delivery": "t-1"}
    assert env.client.post("/hooks/tickets", json={}, headers=retried).status_code == 202
    assert env.client.post("/hooks/tickets", json={}, headers=retried).status_code == 409
    legacy = env.client.post("/hooks/legacy", json={})
    assert legacy.status_code == 401
    assert "does not declare unsigned: true" in legacy.json()["error"]["message"]
    assert len(env.engine.started) == 2


def test_a_missing_secret_is_503(env, monkeypatch):
    monkeypatch.delenv("AGENTFLOW_SECRET_ORDERS_HOOK")
    response = env.client.post("/hooks/orders", content=BODY, headers=agentflow_headers(BODY, T0))
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"


def test_a_huge_delivery_id_is_hashed_into_a_bounded_key():
    huge = "d" * 10_000
    verdict = verify_delivery(
        SIGNED, SECRET, BODY, github_headers(BODY, huge), now=T0, window=REPLAY_WINDOW
    )
    assert isinstance(verdict, WebhookDelivery) and verdict.form is SignatureForm.GITHUB
    assert verdict.key is not None and len(verdict.key) < 255
    assert (
        verdict.key == "webhook:orders:delivery-sha256:" + hashlib.sha256(huge.encode()).hexdigest()
    )


@pytest.mark.parametrize(
    ("route", "headers", "expected"),
    [
        (
            OPEN,
            {},
            WebhookDelivery(form=SignatureForm.UNSIGNED, key=None, until=T0 + REPLAY_WINDOW),
        ),
        (
            OPEN,
            {"x-github-delivery": "g"},
            WebhookDelivery(
                form=SignatureForm.UNSIGNED, key="webhook:tickets:g", until=T0 + REPLAY_WINDOW
            ),
        ),
        (LEGACY, {}, 401),
        (SIGNED, {}, 401),
        (
            SIGNED,
            {"X-AgentFlow-Signature-256": "sha256=00", "X-AgentFlow-Timestamp": "1" * 13},
            401,
        ),
    ],
)
def test_verify_delivery_decides_without_io(route, headers, expected):
    verdict = verify_delivery(route, SECRET if route.secret else None, BODY, headers, now=T0)
    if isinstance(expected, int):
        assert isinstance(verdict, WebhookRefusal) and verdict.status == expected
    else:
        assert verdict == expected


def test_the_replay_guard_holds_keys_until_they_expire_and_stays_bounded():
    clock = Clock()
    guard = ReplayGuard(clock=clock, capacity=3)
    until = T0 + REPLAY_WINDOW
    assert guard.claim("k1", until) is None
    assert guard.claim("k1", until) == ReplayGuard.PENDING  # a copy arriving meanwhile
    guard.settle("k1", "e1")
    assert guard.claim("k1", until) == "e1"
    guard.release("k1")  # its start failed: a retry may start it
    assert guard.claim("k1", until) is None
    for key in ("k2", "k3", "k4"):
        assert guard.claim(key, until) is None
    assert len(guard) == 3 and guard.claim("k1", until) is None  # the oldest was forgotten
    clock.now = until + timedelta(seconds=1)
    assert guard.claim("k5", clock.now + REPLAY_WINDOW) is None
    assert len(guard) == 1  # expired keys are dropped as new ones come


# -- the manifest says whether a webhook is unsigned -----------------------------------------

MANIFEST = """\
apiVersion: agentflow.io/v1
kind: Workflow
metadata:
  name: hooks
spec:
  agents:
    - name: a
      image: agents/a:v1
  triggers:
    - webhook:
        path: /hooks/x
{extra}"""


def diagnose(extra: str):
    text = MANIFEST.format(extra=extra)
    return load_sources([SourceFile(path="hooks.yaml", data=text.encode())])


def test_an_unsigned_webhook_must_say_so():
    report = diagnose("")
    [error] = report.errors
    assert error.format() == (
        "hooks.yaml:11:9: error: spec.triggers[0].webhook.unsigned: webhook POST /hooks/x has "
        "no secretRef: name the secret that signs its calls (secretRef: {name: ...}), or "
        "write unsigned: true to let anyone who reaches the daemon start this workflow"
    )
    assert error.code == "unsigned-webhook-undeclared"
    assert diagnose("        unsigned: false\n").errors[0].line == 12


def test_unsigned_true_is_valid_with_a_warning():
    report = diagnose("        unsigned: true\n")
    assert report.valid
    [warning] = report.diagnostics
    assert warning.severity is Severity.WARNING and warning.code == "unsigned-webhook"
    assert (warning.line, warning.path) == (12, "spec.triggers[0].webhook.unsigned")
    workflow = report.workflows()[0]
    assert workflow.spec.triggers[0].webhook is not None
    assert workflow.spec.triggers[0].webhook.unsigned is True


def test_signed_webhooks_need_no_word_and_cannot_also_be_unsigned():
    signed = diagnose("        secretRef: {name: x}\n")
    assert signed.valid and signed.diagnostics == []
    both = diagnose("        secretRef: {name: x}\n        unsigned: true\n")
    assert [d.code for d in both.errors] == ["webhook-signing-conflict"]
    # `unsigned: false` beside a secret means what leaving it out means: the same hash
    from agentflowd.manifest import spec_hash

    same = diagnose("        secretRef: {name: x}\n        unsigned: false\n")
    assert spec_hash(same.workflows()[0]) == spec_hash(signed.workflows()[0])


def test_the_push_event_carries_the_forges_delivery_id():
    from agentflowd.api.webhooks import parse_push

    body = b'{"ref": "refs/heads/main"}'
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e",
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"s", body, "sha256").hexdigest(),
    }
    event = parse_push(headers, body, "s")
    assert (event.forge, event.ref, event.delivery) == ("github", "refs/heads/main", "72d3162e")
