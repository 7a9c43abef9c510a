"""OIDC sign-in: verify a bearer JWT from the organisation's identity provider, say who it is.

A request may carry ``Authorization: Bearer <jwt>``, signed by an identity provider (Dex,
Keycloak, Okta...). :class:`OidcVerifier` checks it against the provider's published keys and
returns an :class:`OidcIdentity`: the subject, a name for the audit log, the role its groups map
to. Every failure is :class:`Unauthenticated` with a short reason that never echoes the token.

Decisions:

* **An algorithm allowlist, checked before any key is looked at.** The token's header names its
  own algorithm, so the sender picks it: ``none`` skips the signature, and ``HS256`` keyed with
  the provider's *public* RSA key ("algorithm confusion") is a signature anyone can make for a
  verifier that trusts the header. Only asymmetric algorithms may be configured (``none`` and
  ``HS*`` are refused), symmetric keys in a JWKS are ignored, and a key's type must fit the
  algorithm (an RSA key never verifies ES256).
* **Keys come from discovery, are cached, and refetched at a bounded rate.** The JWKS is found
  via ``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must equal ours (a document
  naming another issuer describes someone else's keys), and kept ``jwks_cache_seconds`` (3600),
  or the response's ``max-age`` when shorter. An unknown ``kid`` is how a key rotation shows up,
  so it refetches, but at most once per ``min_refresh_seconds`` (30): tokens are free to send
  before they are verified, and made-up kids must not turn the daemon into a load generator
  against the provider. The same bound spaces the retries after a failed fetch.
* **Stale keys beat no keys.** When a refresh fails the keys held stay in use (a provider outage
  should not sign everyone out); with none held a token is refused as "issuer unreachable".
* **Time is the injected clock**: ``exp`` is required, ``nbf`` and ``iat`` are honoured, each
  with ``leeway`` (60 s by default: hosts drift by seconds, a minute is what providers assume).
* **Synchronous and thread-safe** (the API calls it from a thread pool): one lock guards the keys
  and is held during a fetch, so concurrent requests wait for one fetch instead of each starting
  their own. Answers are capped at 1 MiB and 5 s.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Self

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
)
from joserfc.jwk import JWKRegistry, Key, KeySet
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from agentflowd.auth.roles import Role
from agentflowd.errors import Unauthenticated
from agentflowd.manifest.quantities import parse_duration

__all__ = ["OidcIdentity", "OidcSettings", "OidcVerifier"]

log = logging.getLogger(__name__)

_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_ASYMMETRIC_KEYS = frozenset({"RSA", "EC", "OKP"})
_MAX_BYTES = 1 << 20
_TIMEOUT = 5.0
_MAX_AGE = re.compile(r"max-age=(\d+)")
_CLAIM_REASONS = {
    "iss": "wrong issuer",
    "aud": "wrong audience",
    "nbf": "token not yet valid",
    "iat": "token issued in the future",
}


def _seconds(value: object) -> object:
    """``60``, ``60.0`` or ``"1m"``: a number is seconds, a string a duration."""
    return parse_duration(value).total_seconds() if isinstance(value, str) else value


_Seconds = Annotated[float, BeforeValidator(_seconds)]


class OidcSettings(BaseModel):
    """How to trust one identity provider: the daemon config's ``oidc:`` key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(
        pattern=r"^https?://[^\s/?#]+[^\s?#]*$",
        description="The provider's URL, exactly as tokens name it in `iss`.",
    )
    audience: str = Field(min_length=1, description="Must be in the token's `aud`.")
    role_claim: str = Field(
        default="groups", min_length=1, description="Claim, or dotted path, holding the groups."
    )
    roles: dict[str, Role] = Field(default_factory=dict, description="Group -> role.")
    default_role: Role | None = Field(
        default=None, description="Role of a valid token whose groups map to none."
    )
    client_id: str | None = Field(
        default=None,
        description="The public client `agentflow auth login --oidc` signs in with (device "
        "flow); default: the audience.",
    )
    cli_scope: str = Field(
        default="openid email profile groups", description="Scopes the CLI asks for."
    )
    subject_claim: str = Field(default="sub", min_length=1)
    name_claim: str | None = Field(default=None, description="Shown in the audit log: email...")
    algorithms: tuple[str, ...] = _ALGORITHMS
    leeway: _Seconds = Field(default=60.0, ge=0, le=600)
    jwks_cache_seconds: _Seconds = Field(default=3600.0, gt=0)
    min_refresh_seconds: _Seconds = Field(default=30.0, ge=0)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one algorithm")
        for alg in value:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"algorithm {alg!r} is not allowed: sign-in tokens must carry asymmetric "
                    "signatures (RS*, PS*, ES*, EdDSA)"
                )
            if alg not in jws.JWSRegistry.algorithms:
                raise ValueError(f"unknown algorithm {alg!r}")
        return value


@dataclass(frozen=True, kw_only=True)
class OidcIdentity:
    """Who a verified token speaks for, and until when."""

    subject: str
    display: str  # the name_claim's value (an email, a user name), else the subject
    role: Role | None  # the highest mapped role, else default_role; None: no access
    issuer: str
    expires_at: datetime  # UTC


class _FetchError(Exception):
    """The provider's keys could not be read; the message is the reason given to callers."""


class OidcVerifier:
    """Verifies bearer tokens of one provider; keeps its keys (see the module docstring)."""

    def __init__(
        self,
        settings: OidcSettings,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=_TIMEOUT)
        self._clock = clock
        # Unregistered header fields are ignored, as RFC 7515 says (``crit`` is still enforced).
        self._registry = jws.JWSRegistry(algorithms=settings.algorithms, strict_check_header=False)
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        self._fetched = 0.0  # the held keys are fresh from here...
        self._expires = 0.0  # ...to here
        self._attempted: float | None = None
        self._error = "issuer unreachable"

    def close(self) -> None:
        """Close the HTTP client if this verifier made it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def verify(self, token: str) -> OidcIdentity:
        """Who ``token`` proves the caller is; :class:`Unauthenticated` saying why if no one."""
        settings = self.settings
        try:
            header = jws.extract_compact(token.encode("ascii"), registry=self._registry).headers()
            if not isinstance(header, dict):
                raise TypeError("header is not an object")
        except (JoseError, ValueError, TypeError, AttributeError) as exc:
            raise Unauthenticated("malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in settings.algorithms:
            raise Unauthenticated(f"algorithm {alg!r:.40} is not allowed")  # cut: attacker-chosen
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token: kid is not a string")
        key = self._key(kid)
        try:
            claims = jwt.decode(token, key, settings.algorithms, self._registry).claims
        except BadSignatureError as exc:
            raise Unauthenticated("bad signature") from exc
        except (KeyParameterError, InvalidKeyCurveError) as exc:
            raise Unauthenticated(f"signing key does not fit algorithm {alg}") from exc
        except (JoseError, ValueError) as exc:
            raise Unauthenticated("malformed token") from exc
        self._check_claims(claims)
        subject = _claim(claims, settings.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(f"token has no {settings.subject_claim}")
        name = _claim(claims, settings.name_claim) if settings.name_claim else None
        try:
            expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise Unauthenticated("invalid exp claim") from exc
        return OidcIdentity(
            subject=subject,
            display=name if isinstance(name, str) and name else subject,
            role=self._role(claims),
            issuer=settings.issuer,
            expires_at=expires_at,
        )

    def _check_claims(self, claims: dict[str, Any]) -> None:
        settings = self.settings
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=int(settings.leeway),
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise Unauthenticated("token expired") from exc
        except MissingClaimError as exc:
            raise Unauthenticated(f"token has no {exc.claim}") from exc
        except InvalidClaimError as exc:
            reason = _CLAIM_REASONS.get(exc.claim, f"invalid {exc.claim} claim")
            raise Unauthenticated(reason) from exc

    def _role(self, claims: Mapping[str, Any]) -> Role | None:
        value = _claim(claims, self.settings.role_claim)
        groups = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        roles = self.settings.roles
        mapped = [roles[g] for g in groups if isinstance(g, str) and g in roles]
        return max(mapped, key=lambda role: role.rank, default=self.settings.default_role)

    def _key(self, kid: str | None) -> Key:
        """The key ``kid`` names, refetching the JWKS when stale or when ``kid`` is new."""
        with self._lock:
            now = self._clock()
            fresh = self._keys is not None and self._fetched <= now < self._expires
            known = fresh and _find(self._keys, kid) is not None
            since = math.inf if self._attempted is None else now - self._attempted
            # A clock that stepped back counts as time passed: the cache must not freeze.
            if not known and (since < 0 or since >= self.settings.min_refresh_seconds):
                self._refresh(now)
            if self._keys is None:
                raise Unauthenticated(self._error)
            key = _find(self._keys, kid)
        if key is None:
            raise Unauthenticated("unknown signing key" if kid else "token names no key (kid)")
        return key

    def _refresh(self, now: float) -> None:
        self._attempted = now
        try:
            if self._jwks_uri is None:
                self._jwks_uri = self._discover()
            document, max_age = self._get(self._jwks_uri)
            keys = _import_jwks(document, self._jwks_uri)
        except _FetchError as exc:
            self._jwks_uri = None  # rediscover next time: the provider may have moved its keys
            self._error = str(exc)
            log.warning("OIDC keys of %s not refreshed: %s", self.settings.issuer, exc)
            return
        ttl = self.settings.jwks_cache_seconds
        if max_age is not None:
            ttl = max(min(ttl, max_age), self.settings.min_refresh_seconds)
        self._keys, self._fetched, self._expires = keys, now, now + ttl

    def _discover(self) -> str:
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document, _ = self._get(url)
        if document.get("issuer") != issuer:
            named = document.get("issuer")
            raise _FetchError(f"issuer misconfigured: {url} names issuer {named!r:.100}")
        jwks_uri = document.get("jwks_uri")
        # An https issuer's keys must not be fetched over plain http.
        schemes = ("https://",) if issuer.startswith("https://") else ("https://", "http://")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(schemes):
            raise _FetchError(f"issuer misconfigured: {url} names no usable jwks_uri")
        return jwks_uri

    def _get(self, url: str) -> tuple[dict[str, Any], float | None]:
        """The JSON object at ``url`` and its ``max-age``, if any."""
        try:
            with self._client.stream("GET", url, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise _FetchError(f"issuer unreachable: HTTP {resp.status_code} from {url}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_BYTES:
                        raise _FetchError(f"issuer misconfigured: {url} answers over 1 MiB")
        except httpx.HTTPError as exc:
            raise _FetchError(f"issuer unreachable: {url}: {exc or type(exc).__name__}") from exc
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise _FetchError(f"issuer misconfigured: {url} answers no JSON object")
        max_age = _MAX_AGE.search(resp.headers.get("Cache-Control", ""))
        return document, float(max_age.group(1)) if max_age else None


def _import_jwks(document: Mapping[str, Any], url: str) -> KeySet:
    keys: list[Key] = []
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        # Symmetric and encryption keys have no business verifying sign-in tokens.
        usable = isinstance(entry, dict) and entry.get("use", "sig") == "sig"
        if not usable or entry.get("kty") not in _ASYMMETRIC_KEYS:
            continue
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            log.warning("OIDC: a key at %s cannot be read, skipped: %s", url, exc)
    if not keys:
        raise _FetchError(f"issuer misconfigured: no usable signing key at {url}")
    return KeySet(keys)


def _find(keys: KeySet | None, kid: str | None) -> Key | None:
    if keys is None:
        return None
    if kid is None:  # allowed when the provider publishes one key only (as RFC 7517 permits)
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((key for key in keys if key.kid == kid), None)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim ``path`` names: a claim of that exact name (Auth0's are URLs, dots included),
    else a dotted path into nested objects (Keycloak's ``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
