"""A fake OIDC issuer on 127.0.0.1 that speaks the real wire format.

* ``GET {issuer}/.well-known/openid-configuration``: the discovery document (``issuer`` can be
  made to lie with ``discovery_issuer``);
* ``GET {issuer}/keys``: the JWKS of the published keys' public halves, with
  ``Cache-Control: public, max-age=...`` (no header when ``max_age`` is None);
* fetches are counted, ``faults`` queues status codes to answer first, ``jwks_body`` replaces
  the JWKS with raw bytes, and :meth:`FakeIssuer.rotate` adds a key and drops the old ones.

:meth:`FakeIssuer.mint` signs tokens; :func:`none_token` and :func:`hmac_confusion_token` build
the two classic forgeries. Test keys are generated once per session (:func:`signing_keys`).

    with fake_issuer(clock=clock) as issuer:
        verifier = OidcVerifier(OidcSettings(issuer=issuer.url, audience="agentflow", ...))
        verifier.verify(issuer.mint({"groups": ["admins"]}))
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

AUDIENCE = "agentflow"
_DEFAULT: Any = object()


@dataclass(frozen=True)
class SigningKeys:
    rsa: RSAKey
    rsa2: RSAKey
    ec: ECKey
    ed: OKPKey


@functools.cache
def signing_keys() -> SigningKeys:
    """Keys generated once per session (an RSA 2048 key takes ~50 ms)."""
    return SigningKeys(
        rsa=RSAKey.generate_key(2048, {"kid": "rsa-1", "use": "sig"}),
        rsa2=RSAKey.generate_key(2048, {"kid": "rsa-2", "use": "sig"}),
        ec=ECKey.generate_key("P-256", {"kid": "ec-1", "use": "sig"}),
        ed=OKPKey.generate_key("Ed25519", {"kid": "ed-1", "use": "sig"}),
    )


def default_alg(key: Key) -> str:
    return {"RSA": "RS256", "EC": "ES256", "OKP": "Ed25519"}[key.key_type]


@dataclass
class FakeIssuer:
    keys: list[Key]
    clock: Callable[[], float] = time.time
    url: str = ""
    max_age: int | None = 300
    discovery_issuer: str | None = None  # what discovery says the issuer is (default: url)
    jwks_body: bytes | None = None  # served instead of the JWKS when set
    faults: list[int] = field(default_factory=list)
    discovery_fetches: int = 0
    jwks_fetches: int = 0
    #: the device flow (RFC 8628): device code -> {"user_code", "claims" once approved, "denied"}
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_polls: int = 0
    slow_down: int = 0  # answer this many polls with slow_down first

    def approve(self, user_code: str, **claims: Any) -> None:
        """The user signs in and approves ``user_code`` (the token gets these claims)."""
        for device in self.devices.values():
            if device["user_code"] == user_code:
                device["claims"] = claims
                return
        raise KeyError(user_code)

    def deny(self, user_code: str) -> None:
        for device in self.devices.values():
            if device["user_code"] == user_code:
                device["denied"] = True

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def rotate(self, new: Key) -> None:
        """Publish ``new`` and stop publishing every other key."""
        self.keys = [new]

    def add_key(self, new: Key) -> None:
        self.keys = [*self.keys, new]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims as of the clock; an override of None leaves that claim out."""
        now = int(self.clock())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1",
            "email": "user@example.com",
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        key: Key | None = None,
        kid: str | None = _DEFAULT,
        alg: str | None = None,
    ) -> str:
        """A token over ``self.claims(**claims)`` signed by ``key`` (the first published one);
        ``kid`` defaults to the key's (None: no kid header); ``alg`` to the key type's."""
        key = key or self.keys[0]
        header: dict[str, Any] = {"alg": alg or default_alg(key)}
        if kid is _DEFAULT:
            kid = key.kid
        if kid is not None:
            header["kid"] = kid
        return jwt.encode(header, self.claims(**dict(claims or {})), key, [header["alg"]])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def none_token(claims: Mapping[str, Any], kid: str | None = None) -> str:
    """``alg: none``: no signature at all."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return _unsigned(header, claims) + "."


def hmac_confusion_token(claims: Mapping[str, Any], public_key: RSAKey) -> str:
    """HS256 keyed with the RSA *public* key's PEM, which a verifier that lets the header pick
    the algorithm would use as the HMAC secret (hand-made: joserfc refuses to sign it)."""
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": public_key.kid}, claims)
    secret = public_key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _handler(state: FakeIssuer, prefix: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            path = self.path.removeprefix(prefix)
            if path == "/.well-known/openid-configuration":
                state.discovery_fetches += 1
                body = json.dumps(
                    {
                        "issuer": state.discovery_issuer or state.url,
                        "jwks_uri": f"{state.url}/keys",
                        "authorization_endpoint": f"{state.url}/auth",
                        "token_endpoint": f"{state.url}/token",
                        "device_authorization_endpoint": f"{state.url}/device/code",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }
                ).encode()
                headers: dict[str, str] = {}
            elif path == "/keys":
                state.jwks_fetches += 1
                body = state.jwks_body or json.dumps(state.jwks()).encode()
                headers = (
                    {}
                    if state.max_age is None
                    else {"Cache-Control": f"public, max-age={state.max_age}"}
                )
            else:
                self._send(404, b'{"error": "not found"}')
                return
            if state.faults:
                self._send(state.faults.pop(0), b'{"error": "injected"}')
                return
            self._send(200, body, headers)

        def do_POST(self) -> None:
            path = self.path.removeprefix(prefix)
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if path == "/device/code":
                device_code = f"dc-{len(state.devices) + 1}"
                user_code = f"WDJB-MJH{len(state.devices) + 1}"
                state.devices[device_code] = {"user_code": user_code, "client": form["client_id"]}
                answer = {
                    "device_code": device_code,
                    "user_code": user_code,
                    "verification_uri": f"{state.url}/device",
                    "verification_uri_complete": f"{state.url}/device?user_code={user_code}",
                    "expires_in": 600,
                    "interval": 5,
                }
                self._send(200, json.dumps(answer).encode())
            elif path == "/token":
                state.token_polls += 1
                device = state.devices.get(form.get("device_code", ""))
                if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
                    self._send(400, b'{"error": "unsupported_grant_type"}')
                elif device is None:
                    self._send(400, b'{"error": "invalid_grant"}')
                elif device.get("denied"):
                    self._send(400, b'{"error": "access_denied"}')
                elif state.slow_down > 0:
                    state.slow_down -= 1
                    self._send(400, b'{"error": "slow_down"}')
                elif "claims" not in device:
                    self._send(400, b'{"error": "authorization_pending"}')
                else:
                    token = state.mint({"aud": device["client"], **device["claims"]})
                    answer = {"id_token": token, "access_token": "opaque", "token_type": "Bearer"}
                    self._send(200, json.dumps(answer).encode())
            else:
                self._send(404, b'{"error": "not found"}')

    return Handler


@contextmanager
def fake_issuer(
    keys: list[Key] | None = None, *, clock: Callable[[], float] = time.time, path: str = ""
) -> Iterator[FakeIssuer]:
    """Serve an issuer at ``http://127.0.0.1:PORT{path}``; yields its handle (``.url``)."""
    state = FakeIssuer(keys=list(keys or [signing_keys().rsa, signing_keys().ec]), clock=clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, path))
    state.url = f"http://127.0.0.1:{server.server_port}{path}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
