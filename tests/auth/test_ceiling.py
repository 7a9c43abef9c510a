"""The network ceiling of API-deployed workflows: an allow entry must admit nothing the
ceiling does not."""

from __future__ import annotations

import pytest

from agentflowd.auth.ceiling import beyond, within

CEILING = ["*.example.com", "api.partner.io:443", "[2001:db8::1]"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("api.example.com", True),
        ("api.example.com:8443", True),  # a portless ceiling entry admits every port
        ("*.api.example.com", True),
        ("*.example.com", True),
        ("example.com", False),  # the wildcard does not cover the bare domain
        ("evil-example.com", False),
        ("api.partner.io:443", True),
        ("api.partner.io", False),  # every port is wider than 443
        ("api.partner.io:80", False),
        ("API.Example.COM.", True),
        ("127.0.0.1:8080", False),
        ("169.254.169.254", False),
        ("[2001:db8::1]:443", True),
        ("10.0.0.5", False),
    ],
)
def test_within(pattern: str, expected: bool) -> None:
    assert within(pattern, CEILING) is expected


def test_an_empty_ceiling_admits_nothing() -> None:
    assert beyond([("fetch", "api.example.com")], []) == [("fetch", "api.example.com")]
    assert beyond([("a", "x.example.com"), ("b", "10.0.0.1")], CEILING) == [("b", "10.0.0.1")]
