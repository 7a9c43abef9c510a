"""Webhook deliveries: whether a request to a workflow's webhook trigger may start an execution,
and under which trigger key.

:func:`verify_delivery` decides it without I/O:

* ``secretRef``, AgentFlow form: ``X-AgentFlow-Timestamp: <unix seconds>`` and
  ``X-AgentFlow-Signature-256: sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"``
  under the secret (read from ``$CREDENTIALS_DIRECTORY/NAME`` or ``AGENTFLOW_SECRET_NAME``).
  A timestamp more than :data:`REPLAY_WINDOW` (5 minutes) from the daemon's clock is refused,
  and the trigger key is derived from the signature: a replay — even with another, unsigned,
  delivery id — names the same key and starts nothing.
* ``secretRef``, GitHub form: ``X-Hub-Signature-256`` over the body alone with
  ``X-GitHub-Delivery``. GitHub signs no timestamp, so the delivery id is the only replay
  protection: the key is ``webhook:WORKFLOW:DELIVERY``.
* ``unsigned: true`` (the manifest must say so): anyone who reaches the daemon may call it; an
  ``X-AgentFlow-Delivery`` (or ``X-GitHub-Delivery``) makes a retry start nothing new. A stored
  webhook with neither a secret nor ``unsigned: true`` (applied before the field existed)
  accepts nothing.

Keys are unique in the database (the durable dedup, across restarts and nodes);
:class:`ReplayGuard` remembers recent ones in memory (bounded) so a replay is refused without a
database write, and two copies arriving together start one execution.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from agentflowd.engine.triggers import WebhookRoute

__all__ = [
    "REPLAY_WINDOW",
    "ReplayGuard",
    "SignatureForm",
    "WebhookDelivery",
    "WebhookRefusal",
    "resolve_secret",
    "signature_ok",
    "timestamped_signature",
    "verify_delivery",
]

SIGNATURE_HEADERS = ("x-agentflow-signature-256", "x-hub-signature-256")


def resolve_secret(name: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """A webhook secret by credential name (systemd credential, then environment)."""
    env = os.environ if environ is None else environ
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / name
        if path.is_file():
            return path.read_bytes().strip()
    value = env.get("AGENTFLOW_SECRET_" + name.upper().replace("-", "_").replace(".", "_"))
    return value.encode() if value else None


def signature_ok(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether a signature header holds the HMAC-SHA256 of ``body`` under ``secret``."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    for name in SIGNATURE_HEADERS:
        given = headers.get(name)
        if given is not None and hmac.compare_digest(given.strip().lower(), expected):
            return True
    return False


#: How far a signed timestamp may be from the daemon's clock (either way: clocks drift).
REPLAY_WINDOW = timedelta(minutes=5)
#: A delivery id longer than this is hashed into the trigger key (a key is at most 255 long).
_MAX_DELIVERY = 128
_TIMESTAMP_DIGITS = 12  # unix seconds until the year 33658


class SignatureForm(StrEnum):
    """How a webhook request proved who sent it."""

    AGENTFLOW = "agentflow"  # a timestamp and the body, signed
    GITHUB = "github"  # the body signed, the delivery id not
    UNSIGNED = "unsigned"  # nothing: the manifest said `unsigned: true`


@dataclass(frozen=True, kw_only=True)
class WebhookDelivery:
    """A webhook request that may start an execution.

    ``key`` is its trigger key (None: an unsigned call without a delivery id, which starts an
    execution each time); ``until`` is how long :class:`ReplayGuard` needs to remember it."""

    form: SignatureForm
    key: str | None
    until: datetime


@dataclass(frozen=True, kw_only=True)
class WebhookRefusal:
    """Why a webhook request starts nothing, as the HTTP answer says it."""

    status: int
    code: str
    message: str


def timestamped_signature(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-AgentFlow-Signature-256`` value of ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def _delivery_key(workflow: str, delivery: str) -> str:
    if len(delivery) <= _MAX_DELIVERY and delivery.isprintable():
        return f"webhook:{workflow}:{delivery}"  # the form keys had before signatures
    digest = hashlib.sha256(delivery.encode("utf-8", "surrogateescape")).hexdigest()
    return f"webhook:{workflow}:delivery-sha256:{digest}"


def _unauthorized(message: str) -> WebhookRefusal:
    return WebhookRefusal(status=401, code="unauthorized", message=message)


def verify_delivery(
    route: WebhookRoute,
    secret: bytes | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime,
    window: timedelta = REPLAY_WINDOW,
) -> WebhookDelivery | WebhookRefusal:
    """Whether a request to ``route`` may start an execution, and under which trigger key.

    ``secret`` is the resolved secret of a route with ``secretRef`` (the caller answers 503
    when it is not configured); ``headers`` are looked up in lower case. Pure: the clock is
    ``now``, the memory of past deliveries is the caller's."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery = lowered.get("x-agentflow-delivery") or lowered.get("x-github-delivery")
    if route.secret is None:
        if not route.unsigned:
            return _unauthorized(
                f"the webhook of workflow {route.workflow!r} has no secretRef and does not "
                "declare unsigned: true; it accepts nothing until its manifest says which"
            )
        key = _delivery_key(route.workflow, delivery) if delivery else None
        return WebhookDelivery(form=SignatureForm.UNSIGNED, key=key, until=now + window)
    if secret is None:
        raise ValueError(f"the route of {route.workflow!r} needs its secret")
    ours = lowered.get("x-agentflow-signature-256")
    if ours is not None:
        stamp = lowered.get("x-agentflow-timestamp", "").strip()
        if not stamp:
            return _unauthorized("X-AgentFlow-Signature-256 needs X-AgentFlow-Timestamp")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > _TIMESTAMP_DIGITS:
            return _unauthorized("X-AgentFlow-Timestamp is not a number of unix seconds")
        sent = int(stamp)
        skew = abs(now.timestamp() - sent)
        if skew > window.total_seconds():
            return _unauthorized(
                f"X-AgentFlow-Timestamp is {skew:.0f} s from the daemon's clock "
                f"(at most {window.total_seconds():.0f} s)"
            )
        expected = timestamped_signature(secret, stamp, body)
        if not hmac.compare_digest(
            ours.strip().lower().encode("utf-8", "replace"), expected.encode()
        ):
            return _unauthorized("wrong X-AgentFlow-Signature-256")
        # the signature names the delivery: a replay carries the same one, whatever else it says
        key = f"webhook:{route.workflow}:sig:{expected.removeprefix('sha256=')}"
        until = datetime.fromtimestamp(sent, now.tzinfo) + window
        return WebhookDelivery(form=SignatureForm.AGENTFLOW, key=key, until=until)
    if "x-hub-signature-256" in lowered:
        if not signature_ok(secret, body, {"x-hub-signature-256": lowered["x-hub-signature-256"]}):
            return _unauthorized("wrong X-Hub-Signature-256")
        if not delivery:
            return _unauthorized(
                "X-Hub-Signature-256 needs X-GitHub-Delivery: the delivery id is what makes a "
                "replay start nothing (or sign a timestamp with X-AgentFlow-Signature-256)"
            )
        key = _delivery_key(route.workflow, delivery)
        return WebhookDelivery(form=SignatureForm.GITHUB, key=key, until=now + window)
    return _unauthorized("missing X-AgentFlow-Signature-256 and X-AgentFlow-Timestamp")


class ReplayGuard:
    """Trigger keys of recent webhook deliveries, in memory, each until its ``until``.

    The database's unique trigger key is the durable dedup; this one answers a replay without
    a database round trip and holds a key from the moment a delivery is accepted until its
    execution is written, so two copies arriving together start one execution. Bounded: past
    ``capacity`` keys the oldest are forgotten (the database still knows them)."""

    PENDING = ""

    def __init__(self, *, clock: Callable[[], datetime], capacity: int = 10_000) -> None:
        self.clock = clock
        self.capacity = capacity
        self._keys: OrderedDict[str, tuple[datetime, str]] = OrderedDict()

    def claim(self, key: str, until: datetime) -> str | None:
        """Hold ``key``; None when it was free, else the execution id that has it
        (:data:`PENDING` while that one is still being written)."""
        now = self.clock()
        known = self._keys.get(key)
        if known is not None and known[0] >= now:
            return known[1]
        self._keys[key] = (until, self.PENDING)
        self._keys.move_to_end(key)
        while self._keys:
            oldest, (expires, _) = next(iter(self._keys.items()))
            if expires >= now and len(self._keys) <= self.capacity:
                break
            del self._keys[oldest]
        return None

    def settle(self, key: str, execution_id: str) -> None:
        """``key`` started ``execution_id``."""
        known = self._keys.get(key)
        if known is not None:
            self._keys[key] = (known[0], execution_id)

    def release(self, key: str) -> None:
        """``key`` started nothing (the start failed): a retry may use it."""
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)
