"""The network ceiling: how far a workflow deployed through the API may open the network.

A workflow in git went through review; one posted to the API did not, and an agent that may
reach ``10.0.0.5:8500`` or ``169.254.169.254`` turns the daemon into a proxy into its own
network (server-side request forgery). So each ``network.allow`` entry of an API workflow must
lie within the daemon's ``api_network_ceiling`` (config): an entry is within a ceiling entry
when every host:port it admits, the ceiling entry admits too — ``api.example.com:443`` is within
``*.example.com``? no (a wildcard does not match the bare domain), within ``api.example.com``
yes, within ``*.example.com`` for ``a.api.example.com`` yes; a ceiling entry without a port
admits every port, one with a port only that port. The default ceiling is empty: API
workflows get no network until the operator says which.

Pure: decided from the two lists, no resolution (the sandbox refuses internal addresses a
name resolves to at call time anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sandbox.http import split_host_pattern

__all__ = ["beyond", "within"]


def _split_host(pattern: str) -> tuple[str, int | None]:
    host, port = split_host_pattern(pattern)
    return host.rstrip("."), port


def _host_within(host: str, ceiling: str) -> bool:
    if ceiling.startswith("*."):
        suffix = ceiling[1:]  # ".example.com"
        if host.startswith("*."):
            return host[1:].endswith(suffix)  # *.a.example.com within *.example.com
        return host.endswith(suffix) and host != ceiling[2:]
    return host == ceiling


def within(pattern: str, ceiling: Sequence[str]) -> bool:
    """Whether every host:port ``pattern`` admits, some entry of ``ceiling`` admits."""
    host, port = _split_host(pattern)
    for entry in ceiling:
        top_host, top_port = _split_host(entry)
        if top_port is not None and top_port != port:
            continue  # (a pattern without a port admits every port: only a portless top covers it)
        if _host_within(host, top_host):
            return True
    return False


def beyond(allows: Iterable[tuple[str, str]], ceiling: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(agent, pattern)`` pairs that go beyond ``ceiling``."""
    return [(agent, pattern) for agent, pattern in allows if not within(pattern, ceiling)]
