"""``agentflow auth login --oidc``: the device flow (RFC 8628) against a fake provider; the token
it gets is one the daemon's verifier accepts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agentflowd.auth.oidc import OidcSettings, OidcVerifier
from agentflowd.auth.roles import Role
from agentflowd.cli.oidc_login import DeviceCode, device_login
from agentflowd.errors import Unauthenticated, UsageError
from tests.fakeoidc import FakeIssuer, fake_issuer, signing_keys


class Time:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def env() -> Iterator[tuple[FakeIssuer, httpx.Client, Time]]:
    with (
        fake_issuer(keys=[signing_keys().rsa]) as issuer,
        httpx.Client(timeout=5.0, trust_env=False) as http,
    ):
        yield issuer, http, Time()


def login(issuer: FakeIssuer, http: httpx.Client, clock: Time, on_poll=None) -> str:
    shown: list[DeviceCode] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if on_poll is not None:
            on_poll(shown[0], len(clock.slept))

    return device_login(
        issuer.url,
        "agentflow-cli",
        http=http,
        show=shown.append,
        sleep=sleep,
        monotonic=lambda: clock.now,
    )


def test_the_user_approves_and_the_daemon_accepts_the_token(env):
    issuer, http, clock = env

    def approve_on_third_poll(code: DeviceCode, polls: int) -> None:
        assert code.verification_uri_complete.endswith(code.user_code)
        if polls == 3:
            issuer.approve(code.user_code, groups=["admins"], email="ann@example.com")

    token = login(issuer, http, clock, approve_on_third_poll)
    assert clock.slept == [5, 5, 5] and issuer.token_polls == 3  # the provider's interval
    settings = OidcSettings(
        issuer=issuer.url, audience="agentflow-cli", roles={"admins": "admin"}, name_claim="email"
    )
    identity = OidcVerifier(settings, client=http).verify(token)
    assert (identity.display, identity.role) == ("ann@example.com", Role.ADMIN)


def test_slow_down_adds_five_seconds_to_the_interval(env):
    issuer, http, clock = env
    issuer.slow_down = 2

    def approve(code: DeviceCode, polls: int) -> None:
        issuer.approve(code.user_code, groups=[])

    login(issuer, http, clock, approve)
    assert clock.slept == [5, 10, 15]


def test_refused_or_expired_sign_ins_fail(env):
    issuer, http, clock = env
    with pytest.raises(Unauthenticated, match="refused at the provider"):
        login(issuer, http, clock, lambda code, polls: issuer.deny(code.user_code))
    with pytest.raises(Unauthenticated, match="expired before it was approved"):
        login(issuer, http, clock)  # nobody approves: 600 s of polls, then it gives up
    assert 600 <= sum(clock.slept[1:]) <= 610


def test_a_provider_out_of_reach(env):
    issuer, http, clock = env
    with fake_issuer() as gone:
        url = gone.url
    with pytest.raises(UsageError, match="cannot reach the identity provider"):
        device_login(url, "x", http=http, show=print, sleep=clock.sleep)
