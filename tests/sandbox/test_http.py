"""HTTP from agents: allowlist, SSRF refusal after resolution, size and time caps."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox import HostCallError, HttpPolicy, NetworkDenied, OutcomeKind, RunContext, StepLimits
from sandbox.context import HostCallbacks
from sandbox.http import host_allowed, make_http_fetch
from sandbox.outcome import LimitKind
from sandbox.runner import _outcome

release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/big":
            body = b"x" * 100_000
        elif self.path == "/slow":
            release.wait(60)  # far past any client's timeout: only the client's end stops it
            body = b"late"
        elif self.path == "/drip":
            self.send_response(200)
            # a header line every 0.1 s for 60 s: no single read ever times out, so only the
            # request's overall deadline can end it
            for i in range(600):
                if release.wait(0.1):
                    return
                try:
                    self.send_header(f"X-Drip-{i}", "x")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
            self.end_headers()
            return
        else:
            body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client stopped reading at its cap


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd.server_port
    release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("host", "port", "allow", "ok"),
    [
        ("api.github.com", 443, ["api.github.com"], True),
        ("API.GitHub.com", 443, ["api.github.com"], True),
        ("evil.com", 443, ["api.github.com"], False),
        ("en.wikipedia.org", 443, ["*.wikipedia.org"], True),
        ("wikipedia.org", 443, ["*.wikipedia.org"], False),
        ("notwikipedia.org", 443, ["*.wikipedia.org"], False),
        ("api.x.com", 8443, ["api.x.com:443"], False),
        ("api.x.com", 443, ["api.x.com:443"], True),
        ("127.0.0.1", 8080, ["127.0.0.1"], True),
        ("::1", 80, ["[::1]"], True),
    ],
)
def test_allowlist(host, port, allow, ok):
    assert host_allowed(host, port, allow) is ok


def fetch(allow: list[str], url: str, resolver: Any = None, **policy: Any) -> dict[str, Any]:
    kwargs = {"resolver": resolver} if resolver else {}
    fn = make_http_fetch(
        HttpPolicy(allow=tuple(allow), **policy), remaining_seconds=lambda: 5.0, **kwargs
    )
    result: dict[str, Any] = json.loads(fn(json.dumps({"url": url})))
    return result


@pytest.mark.parametrize(
    ("url", "allow", "resolved", "fragment"),
    [
        ("http://evil.com/", ["good.com"], ["93.184.216.34"], "host not allowed: evil.com:80"),
        ("file:///etc/passwd", ["*"], [], "only http and https"),
        (
            "http://localhost/",
            ["localhost"],
            ["127.0.0.1"],
            "resolves to 127.0.0.1, an internal address",
        ),
        ("http://meta.example/latest", ["meta.example"], ["169.254.169.254"], "169.254.169.254"),
        ("http://intranet.example/", ["intranet.example"], ["10.1.2.3"], "10.1.2.3"),
        ("http://six.example/", ["six.example"], ["::ffff:127.0.0.1"], "internal address"),
        (
            "http://mixed.example/",
            ["mixed.example"],
            ["93.184.216.34", "192.168.1.1"],
            "192.168.1.1",
        ),
        ("http://169.254.169.254/", ["169.254.169.254:81"], [], "host not allowed"),
    ],
    ids=[
        "not-allowed",
        "scheme",
        "loopback-name",
        "metadata",
        "private",
        "mapped-v6",
        "any-address",
        "ip-port",
    ],
)
def test_refusals(url, allow, resolved, fragment):
    with pytest.raises(NetworkDenied, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        fetch(allow, url, resolver=lambda _h, _p: resolved)


def test_a_literal_ip_in_the_allowlist_reaches_it(server):
    body = fetch(["127.0.0.1"], f"http://127.0.0.1:{server}/hello")
    assert body["status"] == 200 and json.loads(body["body"])["path"] == "/hello"


def test_http_connects_to_the_checked_address_and_keeps_the_name(server):
    # the name resolves (once) to the allowed literal IP; no second lookup happens
    body = fetch(
        ["api.local", "127.0.0.1"],
        f"http://api.local:{server}/x",
        resolver=lambda _h, _p: ["127.0.0.1"],
    )
    assert json.loads(body["body"]) == {"path": "/x", "host": f"api.local:{server}"}


def test_responses_are_capped(server):
    body = fetch(["127.0.0.1"], f"http://127.0.0.1:{server}/big", max_response_bytes=1000)
    assert len(body["body"]) == 1000 and body["truncated"] is True


def test_requests_stop_at_the_timeout(server):
    with pytest.raises(HostCallError, match="timed out"):
        fetch(["127.0.0.1"], f"http://127.0.0.1:{server}/slow", timeout_seconds=0.2)


def test_a_denied_request_ends_the_step_as_network_denied():
    fn = make_http_fetch(HttpPolicy(allow=("good.com",)), remaining_seconds=lambda: 5.0)
    ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(http_fetch=fn))
    ok, message = ctx.http_fetch(json.dumps({"url": "http://evil.com/"}))
    assert not ok and message.startswith("host not allowed")
    outcome = _outcome(ctx, None, None)
    assert outcome.kind is OutcomeKind.NETWORK_DENIED
    assert outcome.message() == "network-denied: host not allowed: evil.com:80 (network.allow)"


def test_network_requests_are_counted_and_limited():
    ctx = RunContext(
        limits=StepLimits(network_requests=1), callbacks=HostCallbacks(http_fetch=lambda r: r)
    )
    assert ctx.http_fetch("{}")[0]
    assert not ctx.http_fetch("{}")[0] and ctx.breach is LimitKind.NETWORK_REQUESTS


def test_a_dripping_server_cannot_hold_the_step(server):
    # the drip goes on for 60 s without a read ever waiting 0.5 s: "timed out" can come only
    # from the request's overall deadline (how soon after it: bench/sandbox.py)
    with pytest.raises(HostCallError, match="timed out"):
        fetch(["127.0.0.1"], f"http://127.0.0.1:{server}/drip", timeout_seconds=0.5)


def test_the_agent_cannot_choose_the_host_header(server):
    fn = make_http_fetch(HttpPolicy(allow=("127.0.0.1",)), remaining_seconds=lambda: 5.0)
    body = json.loads(
        fn(
            json.dumps(
                {"url": f"http://127.0.0.1:{server}/h", "headers": {"Host": "metadata.internal"}}
            )
        )
    )
    assert json.loads(body["body"])["host"] == f"127.0.0.1:{server}"
