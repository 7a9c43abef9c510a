"""The real daemon serving the bundled examples (for the end-to-end tests of tests/daemon)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port
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
                return len(httpx.get(f"{url}/api/v1/workflows", timeout=2).json()) == 4
            except httpx.HTTPError:
                return False

        wait_for(applied, timeout=60, what="the examples to be applied")
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]  # a clean stop (only when the test got this far)
