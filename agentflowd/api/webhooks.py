"""Push webhooks from GitHub, GitLab and Gitea: verify, then tell the reconciler to fetch.

* GitHub: ``X-GitHub-Event: push``, ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>``.
* Gitea (and Forgejo): ``X-Gitea-Event: push``, ``X-Gitea-Signature: <hex HMAC-SHA256>``.
* GitLab: ``X-Gitlab-Event: Push Hook``, ``X-Gitlab-Token: <the secret itself>``.

Without a configured secret every webhook is refused: an unauthenticated endpoint that makes
the daemon fetch would be a free amplifier. Pushes to ``refs/notes/*`` (our own statuses, pushed
back) are ignored, as are pings.

No forge signs a timestamp, so a captured push can be replayed; all it can do is ask for a fetch
the reconcile loop would make anyway (requests coalesce into one pass). The event carries the
forge's delivery id (``X-GitHub-Delivery``, ``X-Gitea-Delivery``) for a caller that wants to
answer a repeated one without a fetch. Bodies arrive within the API edge's limits
(:mod:`agentflowd.api.edge`: 1 MiB, 64 levels of JSON).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

__all__ = ["PushEvent", "WebhookError", "parse_push"]


class WebhookError(Exception):
    """A webhook that is refused; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_webhook") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, kw_only=True)
class PushEvent:
    """A verified push; ``ignored`` says why nothing will happen, if so."""

    forge: str
    ref: str | None
    after: str | None
    ignored: str | None = None
    delivery: str | None = None  # the forge's id of this delivery (GitHub, Gitea)


def _hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    # bytes: compare_digest refuses non-ASCII str, and a header may hold anything
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _verify(headers: Mapping[str, str], body: bytes, secret: str) -> tuple[str, str]:
    """The forge and its event name, once the signature or token checks out."""
    if "x-gitea-event" in headers:
        given = headers.get("x-gitea-signature", "")
        if not _same(given, _hmac(secret, body)):
            raise WebhookError("bad X-Gitea-Signature", status=401, code="unauthorized")
        return "gitea", headers["x-gitea-event"]
    if "x-github-event" in headers:
        given = headers.get("x-hub-signature-256", "")
        if not _same(given, "sha256=" + _hmac(secret, body)):
            raise WebhookError("bad X-Hub-Signature-256", status=401, code="unauthorized")
        return "github", headers["x-github-event"]
    if "x-gitlab-event" in headers:
        if not _same(headers.get("x-gitlab-token", ""), secret):
            raise WebhookError("bad X-Gitlab-Token", status=401, code="unauthorized")
        return "gitlab", headers["x-gitlab-event"]
    raise WebhookError("not a GitHub, GitLab or Gitea webhook (no event header)")


def _payload(content_type: str, body: bytes) -> object:
    """The push as JSON; GitHub's default form encoding carries it in ``payload=``."""
    text = body
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in form:
            raise WebhookError("a form-encoded webhook needs a 'payload' field")
        text = form["payload"][0].encode()
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WebhookError("the push body is not valid JSON") from exc


def parse_push(headers: Mapping[str, str], body: bytes, secret: str | None) -> PushEvent:
    """Verify a webhook and read its push; raise :class:`WebhookError` to refuse it."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if not secret:
        raise WebhookError(
            "webhooks are disabled: no webhook secret is configured",
            status=401,
            code="unauthorized",
        )
    forge, event = _verify(lowered, body, secret)
    delivery = lowered.get("x-github-delivery") or lowered.get("x-gitea-delivery")
    if event.lower() in ("ping", "system hook"):
        return PushEvent(
            forge=forge, ref=None, after=None, ignored=event.lower(), delivery=delivery
        )
    if event.lower() not in ("push", "push hook"):
        return PushEvent(
            forge=forge, ref=None, after=None, ignored=f"event {event!r}", delivery=delivery
        )
    payload = _payload(lowered.get("content-type", ""), body)
    ref = payload.get("ref") if isinstance(payload, dict) else None
    after = payload.get("after") if isinstance(payload, dict) else None
    if not isinstance(ref, str):
        raise WebhookError("the push has no 'ref'")
    if ref.startswith("refs/notes/"):
        return PushEvent(forge=forge, ref=ref, after=after, ignored="notes push", delivery=delivery)
    return PushEvent(
        forge=forge,
        ref=ref,
        after=after if isinstance(after, str) else None,
        delivery=delivery,
    )
