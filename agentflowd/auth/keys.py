"""API keys: minting, recognising and checking tokens.

A token reads ``afk_<id>_<secret>``: a prefix that secret scanners (and people) recognise, a
public id the store looks the key up by, and 256 random bits. The store keeps only the
SHA-256 of the whole token: a fast hash is right for a random secret of this size (nothing to
brute-force, unlike a password; GitHub stores its tokens the same way), and the comparison
is constant-time. The token is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from agentflowd.auth.roles import Role
from agentflowd.auth.selector import Selector
from agentflowd.errors import ConflictError, KeyNotFound, UsageError
from agentflowd.manifest.quantities import QuantityError, parse_duration
from agentflowd.store.access import AccessStore, ApiKey

__all__ = [
    "PREFIX",
    "bootstrap",
    "issue",
    "key_id_of",
    "key_view",
    "mint",
    "new_token",
    "parse_expiry",
    "token_sha256",
    "verify",
]

PREFIX = "afk_"
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: read aloud or typed, it survives
_TOKEN = re.compile(r"^afk_([a-z2-9]{12})_([A-Za-z0-9_-]{43})$")


def token_sha256(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def mint(
    *,
    name: str,
    role: Role,
    selector: Selector | None,
    created_by: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[str, ApiKey]:
    """A new token and the record to store (the token is not in it)."""
    token = new_token()
    key_id = key_id_of(token)
    assert key_id is not None  # (new_token makes well-formed tokens)
    record = ApiKey(
        id=key_id,
        name=name,
        role=role.value,
        selector=selector.text if selector and selector.requirements else None,
        token_sha256=token_sha256(token),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, record


def key_id_of(token: str) -> str | None:
    """The id in a well-formed token; None for anything else."""
    found = _TOKEN.match(token)
    return found.group(1) if found else None


def verify(token: str, key: ApiKey) -> bool:
    """Whether ``token`` is ``key``'s (constant-time)."""
    return hmac.compare_digest(token_sha256(token), key.token_sha256)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_DAYS = re.compile(r"^\s*(\d{1,4})\s*([dw])\s*$")


def parse_expiry(text: str) -> timedelta:
    """How long a key lives: ``90d``, ``2w``, or a duration such as ``12h`` or ``30m``."""
    if found := _DAYS.match(text):
        count, unit = int(found.group(1)), found.group(2)
        days = count * (7 if unit == "w" else 1)
        if not 0 < days <= 3660:
            raise UsageError(f"expires {text!r}: between 1 day and 10 years")
        return timedelta(days=days)
    try:
        return parse_duration(text)
    except QuantityError as exc:
        raise UsageError(f"expires {text!r}: {exc}; or days and weeks: 90d, 2w") from exc


def issue(
    access: AccessStore,
    *,
    name: str,
    role: str,
    selector: str | None,
    expires: str | None,
    created_by: str,
    now: datetime,
) -> tuple[str, ApiKey]:
    """Check what a caller asked for, mint a key and store it; returns the token (shown
    once) and the record. :class:`UsageError` names the bad field."""
    if not _NAME.match(name):
        raise UsageError(f"name {name!r}: letters, digits and . _ @ - (at most 100)")
    try:
        the_role = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise UsageError(f"role {role!r}: one of {roles}") from None
    parsed = Selector.parse(selector) if selector else None
    expires_at = now + parse_expiry(expires) if expires else None
    token, record = mint(
        name=name,
        role=the_role,
        selector=parsed,
        created_by=created_by,
        now=now,
        expires_at=expires_at,
    )
    return token, access.create_key(record)


def bootstrap(access: AccessStore, token: str, *, now: datetime) -> ApiKey:
    """Make sure ``token`` (read from the daemon's ``bootstrap_key_file``) is an active admin
    key named ``bootstrap``: how a fresh installation gets its first credential without a
    shell on the host (a Kubernetes Secret mounted as a file, ``make run``). Idempotent, and
    safe when several nodes start at once."""
    key_id = key_id_of(token.strip())
    if key_id is None:
        raise UsageError(
            "bootstrap_key_file: not an AgentFlow API key (make one with `agentflowd keys token`)"
        )
    record = ApiKey(
        id=key_id,
        name="bootstrap",
        role=Role.ADMIN.value,
        selector=None,
        token_sha256=token_sha256(token.strip()),
        created_at=now,
        created_by="local:bootstrap_key_file",
    )
    for _ in range(2):
        try:
            existing = access.get_key(key_id)
        except KeyNotFound:
            try:
                return access.create_key(record)
            except ConflictError:
                continue  # another node made it meanwhile, or another bootstrap key is active
        if existing.token_sha256 != record.token_sha256 or not existing.active(now):
            raise UsageError("bootstrap_key_file: that key was revoked or clashes with another")
        return existing
    raise UsageError(
        "bootstrap_key_file: another key named 'bootstrap' is active; revoke it with "
        "`agentflowd keys revoke bootstrap`"
    )


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as listed (never its token or hash)."""

    def time(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "workflows": key.selector,
        "created_at": time(key.created_at),
        "created_by": key.created_by,
        "expires_at": time(key.expires_at),
        "revoked_at": time(key.revoked_at),
        "last_used_at": time(key.last_used_at),
    }


def new_token() -> str:
    """A fresh well-formed token, for a ``bootstrap_key_file``."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
