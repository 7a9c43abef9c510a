"""The real daemon serving the bundled examples (for the end-to-end tests of tests/daemon)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ADMIN, free_port
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def demo_repo(repo: Path) -> Path:
    """The repository `make run` serves: the example workflows and their agents."""
    subprocess.run(
        [sys.executable, ROOT / "scripts/demo_repo.py", repo, ROOT / "examples/workflows", "x"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return repo


def start(
    *args: str | Path, env: dict[str, str] | None = None, stdout: int | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """``agentflowd serve ARGS`` (stderr piped, text)."""
    return subprocess.Popen(
        [BIN / "agentflowd", "serve", *args],
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def readyz(url: str) -> httpx.Response | None:
    """The daemon's ``/readyz`` answer, or None while nothing listens."""
    try:
        return httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return None


class NotifySocket:
    """A fake systemd: the datagram socket behind $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def expect(self, line: str, timeout: float = 20.0) -> list[str]:
        """Receive datagrams until one holds ``line``; returns everything received so far."""
        self.sock.settimeout(timeout)
        while not any(line in m.splitlines() for m in self.messages):
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError as exc:
                raise AssertionError(f"no {line!r} from the daemon; got {self.messages}") from exc
        return self.messages

    def lines(self) -> list[str]:
        """Every line received so far, without waiting."""
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append(self.sock.recv(65536).decode())
        return [line for m in self.messages for line in m.splitlines()]

    def close(self) -> None:
        self.sock.close()


@contextmanager
def serving(repo: Path, state: Path, cache: Path) -> Iterator[str]:
    """`agentflowd serve --llm-mock` on ``repo`` until the 4 examples are applied; its URL.

    On leaving, the daemon is stopped with SIGTERM and must exit cleanly."""
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "AGENTFLOW_CACHE_DIR": str(cache), "OPENAI_API_KEY": ""}
    env["ANTHROPIC_API_KEY"] = ""
    proc = subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(repo),
            "--state-dir",
            str(state),
            "--listen",
            url.removeprefix("http://"),
            "--llm-mock",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def applied() -> bool:
            try:
                return (
                    len(httpx.get(f"{url}/api/v1/workflows", headers=ADMIN, timeout=2).json()) == 4
                )
            except httpx.HTTPError:
                return False

        wait_for(applied, timeout=60, what="the examples to be applied")
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]  # a clean stop (only when the test got this far)
