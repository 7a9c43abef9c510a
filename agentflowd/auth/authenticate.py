"""From an ``Authorization`` header to a :class:`~agentflowd.auth.principal.Principal`.

Two kinds of bearer credential: an API key (``afk_…``), looked up by its id in the store on
every request — so a revocation holds at once on every node sharing the database, at the cost
of one primary-key read — and, when an issuer is configured, an OIDC JWT. Anything else, or
nothing, is :class:`~agentflowd.errors.Unauthenticated`; the message says why without echoing
the credential.

A key's last use is written at most once a minute per key and node (a write per request would
double the database load of reads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from agentflowd.auth import keys
from agentflowd.auth.principal import Principal, PrincipalKind
from agentflowd.auth.roles import Role
from agentflowd.auth.selector import Selector
from agentflowd.errors import Forbidden, KeyNotFound, Unauthenticated, UsageError
from agentflowd.store.access import AccessStore

__all__ = ["Authenticator", "Identity", "TokenVerifier"]


class Identity(Protocol):
    """What a verified token says: who, and the role its claims map to (None: none)."""

    @property
    def display(self) -> str:
        """A name for the audit log (an email, a user name, the subject)."""
        ...

    @property
    def role(self) -> Role | None:
        """The role its claims map to."""
        ...


class TokenVerifier(Protocol):
    """Verifies a JWT (:class:`~agentflowd.auth.oidc.OidcVerifier`)."""

    def verify(self, token: str) -> Identity:
        """The token's identity; :class:`Unauthenticated` when it does not verify."""
        ...


class Authenticator:
    """Authenticates bearer credentials against the key store and the OIDC issuer."""

    def __init__(
        self,
        access: AccessStore,
        *,
        clock: Callable[[], datetime],
        oidc: TokenVerifier | None = None,
        touch_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.access = access
        self.clock = clock
        self.oidc = oidc
        self.touch_every = touch_every
        self._touched: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal an ``Authorization`` header value proves (blocking: call it off the
        event loop)."""
        if not authorization:
            raise Unauthenticated("no credentials: send 'Authorization: Bearer <API key>'")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use 'Authorization: Bearer <API key or token>'")
        if token.startswith(keys.PREFIX):
            return self._key(token)
        if token.count(".") == 2 and self.oidc is not None:
            identity = self.oidc.verify(token)
            if identity.role is None:
                raise Forbidden(f"{identity.display} has no AgentFlow role (see oidc.roles)")
            return Principal(kind=PrincipalKind.OIDC, name=identity.display, role=identity.role)
        raise Unauthenticated(
            "not an AgentFlow API key" + ("" if self.oidc else " (no OIDC issuer)")
        )

    def _key(self, token: str) -> Principal:
        key_id = keys.key_id_of(token)
        if key_id is None:
            raise Unauthenticated("malformed API key")
        try:
            key = self.access.get_key(key_id)
        except KeyNotFound:
            raise Unauthenticated("unknown API key") from None
        if not keys.verify(token, key):
            raise Unauthenticated("unknown API key")
        now = self.clock()
        if key.revoked_at is not None:
            raise Unauthenticated(f"API key {key.name!r} was revoked")
        if key.expires_at is not None and now >= key.expires_at:
            raise Unauthenticated(f"API key {key.name!r} expired")
        self._touch(key.id, key.last_used_at, now)
        try:
            selector = Selector.parse(key.selector) if key.selector else None
        except UsageError:  # pragma: no cover - checked when the key was made
            raise Unauthenticated(f"API key {key.name!r} has an unreadable selector") from None
        return Principal(
            kind=PrincipalKind.KEY,
            name=key.name,
            role=Role(key.role),
            selector=selector,
            key_id=key.id,
        )

    def _touch(self, key_id: str, last: datetime | None, now: datetime) -> None:
        with self._lock:
            seen = self._touched.get(key_id) or last
            if seen is not None and now - seen < self.touch_every:
                return
            self._touched[key_id] = now
        self.access.touch_key(key_id, now=now)
