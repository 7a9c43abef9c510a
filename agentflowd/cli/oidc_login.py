"""``agentflow auth login --oidc``: sign in with the organisation's identity provider from a
terminal, by the OAuth 2.0 device authorization grant (RFC 8628) — the flow ``gh auth login``
and ``az login --use-device-code`` use: no browser on this host, no redirect URI, no secret.

The daemon says which provider and client to use (``GET /api/v1/auth/oidc``, open: it is what
a client needs before it has credentials); the CLI finds the provider's device and token
endpoints by discovery, shows the user a URL and a code, and polls the token endpoint at the
interval the provider asks (slowing down when told) until the user approves, refuses, or the
code expires. The ID token it gets is sent as the bearer token from then on; it expires as
the provider decided, and ``auth login --oidc`` again gets a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from agentflowd.errors import Unauthenticated, UsageError

__all__ = ["DeviceCode", "device_login"]

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True, kw_only=True)
class DeviceCode:
    """What the user is shown: where to go, and the code to enter there."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"{what}: the provider answered {response.status_code}, not JSON")
    return data


def device_login(
    issuer: str,
    client_id: str,
    *,
    scope: str = "openid email profile groups",
    http: httpx.Client,
    show: Callable[[DeviceCode], None],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> str:
    """Run the device flow against ``issuer`` for ``client_id``; returns the ID token (the
    access token when the provider issues no ID token)."""
    try:
        found = _json(
            http.get(issuer.rstrip("/") + "/.well-known/openid-configuration"), "discovery"
        )
        device_url = found.get("device_authorization_endpoint")
        token_url = found.get("token_endpoint")
        if not isinstance(device_url, str) or not isinstance(token_url, str):
            raise UsageError(
                f"{issuer} does not offer the device flow (no device_authorization_endpoint)"
            )
        started = _json(
            http.post(device_url, data={"client_id": client_id, "scope": scope}),
            "device authorization",
        )
        if "device_code" not in started:
            raise UsageError(f"device authorization refused: {started.get('error', started)}")
        code = DeviceCode(
            user_code=str(started["user_code"]),
            verification_uri=str(
                started.get("verification_uri") or started.get("verification_url")
            ),
            verification_uri_complete=started.get("verification_uri_complete"),
            expires_in=float(started.get("expires_in", 600)),
        )
        show(code)
        interval = float(started.get("interval", 5))
        deadline = monotonic() + code.expires_in
        while monotonic() < deadline:
            sleep(interval)
            answer = _json(
                http.post(
                    token_url,
                    data={
                        "grant_type": GRANT,
                        "device_code": started["device_code"],
                        "client_id": client_id,
                    },
                ),
                "token",
            )
            error = answer.get("error")
            if error is None:
                token = answer.get("id_token") or answer.get("access_token")
                if not isinstance(token, str):
                    raise UsageError("the provider answered without a token")
                return token
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5  # RFC 8628 3.5
                continue
            if error == "access_denied":
                raise Unauthenticated("sign-in refused at the provider")
            raise Unauthenticated(f"sign-in failed: {error}")
        raise Unauthenticated("the sign-in code expired before it was approved")
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the identity provider {issuer}: {exc}") from exc
