"""HTTP for agents: only to allowlisted hosts, never to this machine's or the cloud's insides.

An agent asks ``http-fetch`` with JSON ``{"url", "method", "headers", "body"}`` and gets
``{"status", "headers", "body", "truncated"}``. Before any byte is sent:

1. the scheme is ``http`` or ``https``, and the host matches ``network.allow`` — a name
   (``api.github.com``), a wildcard for subdomains (``*.wikipedia.org``), or an IP literal, each
   with an optional ``:port``;
2. the name is resolved, and **every** address is checked: loopback, private, link-local (which
   includes the 169.254.169.254 metadata service), multicast, reserved and unspecified
   addresses are refused — unless the allowlist names that very IP. A name that resolves
   inside is refused even when the name itself is allowed (DNS can point anywhere);
3. plain ``http`` connects to the checked address itself (no second lookup, so no DNS
   rebinding); ``https`` connects by name for the certificate's sake and is re-resolved by the
   TLS client — a rebinding window that the allowlist of names narrows.

Responses are read up to ``max_response_bytes`` (the rest is cut, ``truncated: true``) within
the step's remaining time. A refusal raises :class:`NetworkDenied`, which ends the step as
NetworkDenied whatever the agent does with the error.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sandbox.context import HostCallError, NetworkDenied

__all__ = [
    "HttpPolicy",
    "NetworkDenied",
    "host_allowed",
    "make_http_fetch",
    "split_host_pattern",
    "system_resolver",
]

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True, kw_only=True)
class HttpPolicy:
    """Where an agent may go, and how much it may bring back."""

    allow: tuple[str, ...] = ()
    max_response_bytes: int = 1 * 2**20
    max_request_bytes: int = 1 * 2**20
    timeout_seconds: float = 30.0


def split_host_pattern(pattern: str) -> tuple[str, int | None]:
    """``host[:port]`` (``[v6]:port`` too) of an allowlist entry: the host lowercased, the port or
    None for any."""
    pattern = pattern.lower()
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = pattern.partition(":")
    return host, int(port) if port.isdigit() else None


def host_allowed(host: str, port: int, allow: Sequence[str]) -> bool:
    """Whether ``host:port`` matches an allowlist entry (names case-insensitively)."""
    host = host.lower().rstrip(".")
    for pattern in allow:
        want_host, want_port = split_host_pattern(pattern)
        if want_port is not None and want_port != port:
            continue
        if want_host.startswith("*."):
            if host.endswith(want_host[1:]) and host != want_host[2:]:
                return True
        elif host == want_host:
            return True
    return False


def _literal_ips(allow: Sequence[str]) -> set[tuple[str, int | None]]:
    """(IP, port or None for any) of every IP literal in the allowlist."""
    out = set()
    for pattern in allow:
        host, port = split_host_pattern(pattern)
        try:
            out.add((str(ipaddress.ip_address(host)), port))
        except ValueError:
            continue
    return out


def _inside(address: str) -> bool:
    """Anything but a globally routable unicast address: loopback, private, shared (CGNAT,
    100.64/10: some clouds' metadata), link-local (169.254.169.254), reserved, multicast,
    unspecified; for IPv6 also the IPv4 addresses embedded by mapping, 6to4 and Teredo."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if any(e is not None and _inside(str(e)) for e in embedded):
            return True
    return not ip.is_global or ip.is_multicast


def _literal_allows(address: str, port: int, literal: set[tuple[str, int | None]]) -> bool:
    ip = str(ipaddress.ip_address(address))
    return (ip, None) in literal or (ip, port) in literal


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostCallError(f"cannot resolve {host}: {exc.strerror}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # resolver order, no dups


def make_http_fetch(
    policy: HttpPolicy,
    *,
    remaining_seconds: Callable[[], float],
    resolver: Resolver = system_resolver,
    transport: httpx.BaseTransport | None = None,
) -> Callable[[str], str]:
    """The ``http-fetch`` callback of one step."""
    literal = _literal_ips(policy.allow)

    def fetch(request_json: str) -> str:
        try:
            request: Any = json.loads(request_json)
        except (ValueError, RecursionError) as exc:
            raise HostCallError("http-fetch takes a JSON object with a 'url'") from exc
        if not isinstance(request, dict) or not isinstance(request.get("url"), str):
            raise HostCallError("http-fetch takes a JSON object with a 'url'")
        url = urlsplit(request["url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            raise NetworkDenied(f"only http and https URLs are allowed: {request['url'][:200]}")
        host = url.hostname
        port = url.port or (443 if url.scheme == "https" else 80)
        if not host_allowed(host, port, policy.allow):
            raise NetworkDenied(f"host not allowed: {host}:{port} (network.allow)")
        addresses = [host] if _is_ip(host) else resolver(host, port)
        for address in addresses:
            if _inside(address) and not _literal_allows(address, port, literal):
                raise NetworkDenied(
                    f"{host} resolves to {address}, an internal address; "
                    "allow that IP explicitly to reach it"
                )
        budget = min(policy.timeout_seconds, remaining_seconds())
        if budget <= 0:
            raise HostCallError("no time left in this step for a request")
        return _send(request, url, addresses[0], budget, policy, transport)

    return fetch


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _send(
    request: dict[str, Any],
    url: Any,
    address: str,
    budget: float,
    policy: HttpPolicy,
    transport: httpx.BaseTransport | None,
) -> str:
    method = str(request.get("method", "GET")).upper()
    headers = {
        str(k): str(v)
        for k, v in (request.get("headers") or {}).items()
        if str(k).lower() not in ("host", "proxy-authorization", "connection")
    }
    body = request.get("body")
    content = body.encode() if isinstance(body, str) else None
    if content is not None and len(content) > policy.max_request_bytes:
        raise HostCallError(f"request body over {policy.max_request_bytes} bytes")
    target = urlunsplit(url)
    if url.scheme == "http":  # connect to the address we checked; keep the name in Host
        netloc = f"[{address}]" if ":" in address else address
        if url.port:
            netloc += f":{url.port}"
        headers["Host"] = url.netloc.rsplit("@", 1)[-1]
        target = urlunsplit((url.scheme, netloc, url.path, url.query, ""))
    headers.setdefault("Accept-Encoding", "identity")  # the cap applies to bytes as sent
    deadline = time.monotonic() + budget
    # httpx's timeouts apply per read: a server dripping a byte at a time would never trip
    # them. The request runs on a helper thread, and closing the client at the deadline
    # aborts it, whatever it is waiting for.
    client = httpx.Client(
        transport=transport, timeout=budget, follow_redirects=False, trust_env=False
    )
    result: list[str] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(_exchange(client, method, target, headers, content, deadline, policy))
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    worker = threading.Thread(target=work, name="agentflow-http", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        client.close()
        worker.join(1.0)
        raise HostCallError(f"request to {url.hostname} timed out")
    client.close()
    if failure:
        exc = failure[0]
        if isinstance(exc, httpx.TimeoutException):
            raise HostCallError(f"request to {url.hostname} timed out") from exc
        if isinstance(exc, httpx.HTTPError):
            raise HostCallError(f"request to {url.hostname} failed: {type(exc).__name__}") from exc
        raise exc
    return result[0]


def _exchange(
    client: httpx.Client,
    method: str,
    target: str,
    headers: dict[str, str],
    content: bytes | None,
    deadline: float,
    policy: HttpPolicy,
) -> str:
    with client.stream(method, target, headers=headers, content=content) as response:
        chunks: list[bytes] = []
        size = 0
        truncated = False
        # iter_raw: the body as sent; a compressed body is not inflated (no gzip bombs)
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise HostCallError("the response did not arrive within the step's time")
            room = policy.max_response_bytes - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return json.dumps(
            {
                "status": response.status_code,
                "headers": dict(response.headers),
                "body": b"".join(chunks).decode("utf-8", "replace"),
                "truncated": truncated,
            }
        )
