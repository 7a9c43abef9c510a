"""OIDC bearer tokens against a fake issuer on 127.0.0.1, on a fake clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agentflowd.auth.oidc import OidcIdentity, OidcSettings, OidcVerifier
from agentflowd.auth.roles import Role
from agentflowd.errors import Unauthenticated
from tests.fakeoidc import (
    AUDIENCE,
    FakeIssuer,
    fake_issuer,
    hmac_confusion_token,
    none_token,
    signing_keys,
)

T0 = 1_700_000_000.0
ROLES = {"viewers": "viewer", "operators": "operator", "admins": "admin"}
NOW = int(T0)
KEYS = signing_keys()


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    issuer: FakeIssuer
    clock: FakeClock
    make: Callable[..., OidcVerifier]  # a verifier of these settings plus overrides


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (making one costs ~70 ms); the fake closes every connection.
    No proxy from the environment: the tests talk to 127.0.0.1 only."""
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture
def env(http: httpx.Client) -> Iterator[Env]:
    clock = FakeClock()
    with ExitStack() as stack:
        issuer = stack.enter_context(fake_issuer(clock=clock))

        def make(**overrides: Any) -> OidcVerifier:
            settings = OidcSettings(
                **{
                    "issuer": issuer.url,
                    "audience": AUDIENCE,
                    "roles": ROLES,
                    "name_claim": "email",
                    **overrides,
                }
            )
            return stack.enter_context(OidcVerifier(settings, client=http, clock=clock))

        yield Env(issuer, clock, make)


def _b64json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def tamper(token: str, **claims: Any) -> str:
    """The token with its payload replaced, its header and signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{_b64json(claims)}.{signature}"


def with_header(token: str, **header: Any) -> str:
    """The token with its header replaced, its payload and signature kept."""
    _, payload, signature = token.split(".")
    return f"{_b64json(header)}.{payload}.{signature}"


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithms", "reason"),
    [
        (("none",), "not allowed"),
        (("RS256", "HS256"), "not allowed"),
        (("hs512",), "not allowed"),
        (("RS999",), "unknown algorithm"),
        ((), "at least one"),
    ],
)
def test_settings_refuse_symmetric_none_and_unknown_algorithms(algorithms, reason):
    with pytest.raises(ValidationError, match=reason):
        OidcSettings(issuer="https://id.example.com", audience="a", algorithms=algorithms)


@pytest.mark.parametrize("issuer", ["id.example.com", "ftp://id.example.com", "https://"])
def test_settings_refuse_an_issuer_that_is_not_an_http_url(issuer):
    with pytest.raises(ValidationError):
        OidcSettings(issuer=issuer, audience="a")


def test_settings_read_durations_and_roles_from_config_text():
    settings = OidcSettings.model_validate(
        {
            "issuer": "https://id.example.com/realms/x",
            "audience": "agentflow",
            "roles": {"agentflow-admins": "admin"},
            "leeway": "2m",
            "jwks_cache_seconds": 600,
        }
    )
    assert settings.leeway == 120.0
    assert settings.jwks_cache_seconds == 600.0
    assert settings.roles == {"agentflow-admins": Role.ADMIN}
    with pytest.raises(ValidationError):
        OidcSettings.model_validate({"issuer": "https://i", "audience": "a", "extra": 1})


# -- good tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "algorithms"),
    [("rsa", None), ("ec", None), ("ed", ("Ed25519",))],
)
def test_a_good_token_proves_its_identity(env, key_name, algorithms):
    key = getattr(KEYS, key_name)
    env.issuer.add_key(key)
    verifier = env.make(**({"algorithms": algorithms} if algorithms else {}))
    token = env.issuer.mint({"groups": ["operators"]}, key=key)
    assert verifier.verify(token) == OidcIdentity(
        subject="user-1",
        display="user@example.com",
        role=Role.OPERATOR,
        issuer=env.issuer.url,
        expires_at=datetime.fromtimestamp(T0 + 300, UTC),
    )


@pytest.mark.parametrize(
    ("claims", "settings", "role"),
    [
        ({"groups": ["viewers", "admins", "operators"]}, {}, Role.ADMIN),
        ({"groups": "operators"}, {}, Role.OPERATOR),
        ({"groups": ["strangers"]}, {}, None),
        ({"groups": ["strangers"]}, {"default_role": "viewer"}, Role.VIEWER),
        ({}, {"default_role": "viewer"}, Role.VIEWER),
        ({"groups": [1, None, "viewers"]}, {}, Role.VIEWER),
        ({"groups": {"admins": True}}, {}, None),
        (
            {"realm_access": {"roles": ["offline_access", "admins"]}},
            {"role_claim": "realm_access.roles"},
            Role.ADMIN,
        ),
        ({"realm_access": ["admins"]}, {"role_claim": "realm_access.roles"}, None),
        (
            {"https://agentflow.example.com/groups": ["operators"]},
            {"role_claim": "https://agentflow.example.com/groups"},
            Role.OPERATOR,
        ),
    ],
)
def test_groups_map_to_the_highest_role(env, claims, settings, role):
    verifier = env.make(**settings)
    assert verifier.verify(env.issuer.mint(claims)).role == role


@pytest.mark.parametrize(
    ("claims", "settings", "display", "subject"),
    [
        ({}, {}, "user@example.com", "user-1"),
        ({"email": None}, {}, "user-1", "user-1"),
        ({"preferred_username": "ada"}, {"name_claim": "preferred_username"}, "ada", "user-1"),
        ({"oid": "abc-123"}, {"subject_claim": "oid", "name_claim": None}, "abc-123", "abc-123"),
    ],
)
def test_subject_and_display_name(env, claims, settings, display, subject):
    identity = env.make(**settings).verify(env.issuer.mint(claims))
    assert (identity.display, identity.subject) == (display, subject)


def test_audience_may_be_a_list_holding_ours(env):
    token = env.issuer.mint({"aud": ["other", AUDIENCE]})
    assert env.make().verify(token).subject == "user-1"


def test_a_token_without_kid_is_verified_when_the_issuer_has_one_key(env):
    env.issuer.rotate(KEYS.rsa)
    assert env.make().verify(env.issuer.mint(kid=None)).subject == "user-1"


def test_an_issuer_under_a_path_is_discovered_there():
    clock = FakeClock()
    with fake_issuer(clock=clock, path="/realms/agentflow") as issuer:
        settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
        with OidcVerifier(settings, clock=clock) as verifier:
            assert verifier.verify(issuer.mint()).issuer.endswith("/realms/agentflow")
        assert issuer.discovery_fetches == 1


# -- bad tokens -------------------------------------------------------------------------------


BAD: dict[str, tuple[Callable[[FakeIssuer], str], str]] = {
    "expired": (lambda i: i.mint({"exp": NOW - 61}), "token expired"),
    "not yet valid": (lambda i: i.mint({"nbf": NOW + 61}), "not yet valid"),
    "issued in the future": (lambda i: i.mint({"iat": NOW + 61}), "issued in the future"),
    "wrong audience": (lambda i: i.mint({"aud": "someone-else"}), "wrong audience"),
    "audience list without ours": (lambda i: i.mint({"aud": ["a", "b"]}), "wrong audience"),
    "no audience": (lambda i: i.mint({"aud": None}), "token has no aud"),
    "wrong issuer": (lambda i: i.mint({"iss": "https://evil.example.com"}), "wrong issuer"),
    "issuer with a trailing slash": (lambda i: i.mint({"iss": i.url + "/"}), "wrong issuer"),
    "missing exp": (lambda i: i.mint({"exp": None}), "token has no exp"),
    "exp not a number": (lambda i: i.mint({"exp": "tomorrow"}), "invalid exp"),
    "missing sub": (lambda i: i.mint({"sub": None}), "token has no sub"),
    "unknown kid": (lambda i: i.mint(kid="not-published"), "unknown signing key"),
    "unpublished key": (lambda i: i.mint(key=KEYS.rsa2), "unknown signing key"),
    "no kid, several keys": (lambda i: i.mint(kid=None), "names no key"),
    "alg none": (
        lambda i: none_token(i.claims(), kid="rsa-1"),
        "algorithm 'none' is not allowed",
    ),
    "HMAC confusion": (
        lambda i: hmac_confusion_token(i.claims(), KEYS.rsa),
        "algorithm 'HS256' is not allowed",
    ),
    "tampered payload": (lambda i: tamper(i.mint(), **i.claims(sub="admin")), "bad signature"),
    "another key's signature": (lambda i: i.mint(key=KEYS.rsa2, kid="rsa-1"), "bad signature"),
    "key type does not fit alg": (
        lambda i: i.mint(key=KEYS.ec, kid="rsa-1", alg="ES256"),
        "signing key does not fit algorithm ES256",
    ),
    "an algorithm not configured": (
        lambda i: i.mint(alg="PS256"),
        "algorithm 'PS256' is not allowed",
    ),
    "no alg": (lambda i: with_header(i.mint(), kid="rsa-1"), "malformed token"),
    "alg not a string": (lambda i: with_header(i.mint(), alg=["RS256"]), "not allowed"),
    "kid not a string": (lambda i: with_header(i.mint(), alg="RS256", kid=7), "kid is not"),
    "unknown crit header": (
        lambda i: with_header(i.mint(), alg="RS256", kid="rsa-1", crit=["x"], x=1),
        "malformed token",
    ),
    "not a JWT": (lambda i: "not-a-token", "malformed token"),
    "header is not JSON": (lambda i: "e30x.e30.", "malformed token"),
    "header is a list": (lambda i: "W10.e30.", "malformed token"),
    "non-ASCII": (lambda i: "\u00e9.\u00e9.\u00e9", "malformed token"),
    "JWE-shaped": (lambda i: "a.b.c.d.e", "malformed token"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_tokens_are_refused_with_a_reason(env, case):
    verifier = env.make(algorithms=("RS256", "ES256"))
    make_token, reason = BAD[case]
    token = make_token(env.issuer)
    with pytest.raises(Unauthenticated, match=reason) as caught:
        verifier.verify(token)
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        ({"exp": NOW - 59}, True),
        ({"exp": NOW - 60}, False),
        ({"nbf": NOW + 60}, True),
        ({"nbf": NOW + 61}, False),
        ({"iat": NOW + 60}, True),
    ],
)
def test_leeway_absorbs_clock_skew(env, claims, ok):
    verifier = env.make(leeway=60)
    token = env.issuer.mint(claims)
    if ok:
        assert verifier.verify(token).subject == "user-1"
    else:
        with pytest.raises(Unauthenticated):
            verifier.verify(token)


def test_no_leeway_refuses_a_token_at_its_exp(env):
    verifier = env.make(leeway=0)
    token = env.issuer.mint({"exp": NOW + 10})
    assert verifier.verify(token)
    env.clock.now = T0 + 10
    with pytest.raises(Unauthenticated, match="token expired"):
        verifier.verify(token)


# -- keys: discovery, cache, rotation ---------------------------------------------------------


def test_a_rotated_key_is_fetched_once(env):
    verifier = env.make()
    assert verifier.verify(env.issuer.mint())
    assert (env.issuer.discovery_fetches, env.issuer.jwks_fetches) == (1, 1)
    env.issuer.rotate(KEYS.rsa2)
    token = env.issuer.mint({"exp": NOW + 3600})
    env.clock.now = T0 + 10  # within min_refresh_seconds of the last fetch: not refetched yet
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.verify(token)
    assert env.issuer.jwks_fetches == 1
    env.clock.now = T0 + 30  # the cache holds keys 300 s, but a new kid refetches after 30 s
    assert verifier.verify(token).subject == "user-1"
    assert (env.issuer.discovery_fetches, env.issuer.jwks_fetches) == (1, 2)
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.verify(env.issuer.mint(key=KEYS.rsa))  # dropped by the issuer
    assert env.issuer.jwks_fetches == 2


def test_unknown_kids_refetch_at_most_once_per_min_refresh(env):
    verifier = env.make(min_refresh_seconds=30)
    assert verifier.verify(env.issuer.mint())
    for step in range(90):
        env.clock.now = T0 + step  # 0..89 s: refetches at 30 and 60 only
        with pytest.raises(Unauthenticated, match="unknown signing key"):
            verifier.verify(env.issuer.mint(kid=f"garbage-{step}"))
    assert env.issuer.jwks_fetches == 3


@pytest.mark.parametrize(
    ("max_age", "cache_seconds", "ttl"),
    [(300, 3600, 300), (None, 600, 600), (7200, 600, 600), (0, 600, 30)],
)
def test_keys_are_refetched_when_the_cache_expires(env, max_age, cache_seconds, ttl):
    env.issuer.max_age = max_age
    verifier = env.make(jwks_cache_seconds=cache_seconds, min_refresh_seconds=30)
    token = env.issuer.mint({"exp": NOW + 86_400})
    verifier.verify(token)
    env.clock.now = T0 + ttl - 1
    verifier.verify(token)
    assert env.issuer.jwks_fetches == 1
    env.clock.now = T0 + ttl
    verifier.verify(token)
    assert env.issuer.jwks_fetches == 2
    assert env.issuer.discovery_fetches == 1


def test_a_clock_stepping_back_does_not_freeze_the_cache(env):
    verifier = env.make()
    token = env.issuer.mint({"iat": None, "exp": NOW + 86_400})
    verifier.verify(token)
    env.clock.now = T0 - 3600
    verifier.verify(token)
    assert env.issuer.jwks_fetches == 2


def test_discovery_naming_another_issuer_is_refused(env):
    env.issuer.discovery_issuer = "https://evil.example.com"
    with pytest.raises(
        Unauthenticated, match="issuer misconfigured: .* names issuer 'https://evil"
    ):
        env.make().verify(env.issuer.mint())
    assert env.issuer.jwks_fetches == 0


def test_an_https_issuer_may_not_send_for_its_keys_over_http():
    issuer = "https://id.example.com"
    discovery = {"issuer": issuer, "jwks_uri": "http://id.example.com/keys"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=discovery))
    token = FakeIssuer(keys=[KEYS.rsa], url=issuer).mint()
    settings = OidcSettings(issuer=issuer, audience=AUDIENCE)
    with (
        httpx.Client(transport=transport) as client,
        OidcVerifier(settings, client=client) as verifier,
        pytest.raises(Unauthenticated, match="names no usable jwks_uri"),
    ):
        verifier.verify(token)


def test_an_issuer_that_is_down_is_unreachable(monkeypatch):
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):  # the verifier's own client
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.lower(), raising=False)
    with fake_issuer() as gone:
        url = gone.url
    settings = OidcSettings(issuer=url, audience=AUDIENCE)
    with OidcVerifier(settings) as verifier, pytest.raises(Unauthenticated) as caught:
        verifier.verify(gone.mint())
    assert str(caught.value).startswith("issuer unreachable: ")


def test_failed_fetches_are_retried_at_most_once_per_min_refresh(env):
    env.issuer.faults = [503]
    verifier = env.make(min_refresh_seconds=30)
    token = env.issuer.mint()
    for _ in range(3):
        with pytest.raises(Unauthenticated, match="issuer unreachable: HTTP 503"):
            verifier.verify(token)
    assert env.issuer.discovery_fetches == 1
    env.clock.now = T0 + 30
    assert verifier.verify(token).subject == "user-1"
    assert env.issuer.discovery_fetches == 2


def test_stale_keys_are_used_while_the_issuer_fails(env):
    env.issuer.max_age = None
    verifier = env.make(jwks_cache_seconds=600)
    token = env.issuer.mint({"exp": NOW + 86_400})
    verifier.verify(token)
    env.issuer.faults = [500]
    env.clock.now = T0 + 600
    assert verifier.verify(token).subject == "user-1"
    assert env.issuer.jwks_fetches == 2
    env.clock.now = T0 + 630
    verifier.verify(token)  # the failed attempt is retried, now with success
    assert (env.issuer.discovery_fetches, env.issuer.jwks_fetches) == (2, 3)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "no JSON object"),
        (b"<html>", "no JSON object"),
        (b" " * (1024 * 1024 + 1), "over 1 MiB"),
        (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]}', "no usable signing"),
        (b'{"keys": [{"kty": "RSA", "kid": "rsa-1", "n": "x"}]}', "no usable signing"),
        (b'{"nokeys": 1}', "no usable signing"),
    ],
)
def test_a_bad_jwks_is_refused(env, body, reason):
    env.issuer.jwks_body = body
    with pytest.raises(Unauthenticated, match=f"issuer misconfigured: .*{reason}"):
        env.make().verify(env.issuer.mint())


def test_encryption_and_symmetric_keys_in_the_jwks_are_ignored(env):
    jwks = env.issuer.jwks()
    jwks["keys"][0]["use"] = "enc"  # rsa-1 is not for signatures now
    jwks["keys"].append({"kty": "oct", "k": "c2VjcmV0", "kid": "hs"})
    env.issuer.jwks_body = json.dumps(jwks).encode()
    verifier = env.make()
    assert verifier.verify(env.issuer.mint(key=KEYS.ec)).subject == "user-1"
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.verify(env.issuer.mint(key=KEYS.rsa))


def test_concurrent_first_requests_share_one_fetch(env):
    verifier = env.make()
    token = env.issuer.mint()
    with ThreadPoolExecutor(max_workers=8) as pool:
        identities = list(pool.map(verifier.verify, [token] * 32))
    assert {identity.subject for identity in identities} == {"user-1"}
    assert (env.issuer.discovery_fetches, env.issuer.jwks_fetches) == (1, 1)


def test_eddsa_verifies_with_joserfcs_deprecation_warning(env):
    # "EdDSA" is allowed by default (providers such as Keycloak can sign with it); RFC 9864
    # renamed it "Ed25519", and joserfc warns (once per process, outside tests) when it is used.
    from joserfc.errors import SecurityWarning

    env.issuer.add_key(KEYS.ed)
    verifier = env.make()
    with pytest.warns(SecurityWarning, match="EdDSA is deprecated"):
        assert verifier.verify(env.issuer.mint(key=KEYS.ed, alg="EdDSA")).subject == "user-1"
