"""Benchmark what access control costs a request (targets: none set; recorded so a change
that makes it dearer shows).

    .venv/bin/python bench/auth.py [--requests 1000]

A real ``agentflowd serve`` on SQLite with the bundled examples; one keep-alive client:
1. ``GET /healthz``: no credentials (the floor: routing and the edge middleware)
2. ``GET /api/v1/whoami``: an API key checked (one primary-key read of the key)
3. ``GET /api/v1/workflows``: the same, and a listing
4. ``POST /api/v1/auth/login``: a key checked and an audit row written before the answer
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from agentflowd.auth.keys import new_token
from bench.validate import machine
from tests.conftest import free_port
from tests.daemon.examples import demo_repo

BIN = Path(sys.executable).parent


def timed(client: httpx.Client, method: str, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.request(method, path)
        out.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        token = new_token()
        (root / "admin.key").write_text(token)
        port = free_port()
        proc = subprocess.Popen(
            [
                BIN / "agentflowd",
                "serve",
                "--repo",
                str(demo_repo(root / "repo")),
                "--state-dir",
                str(root / "state"),
                "--listen",
                f"127.0.0.1:{port}",
                "--llm-mock",
                "--bootstrap-key-file",
                str(root / "admin.key"),
            ],
            env={**os.environ, "AGENTFLOW_WARM_PYTHON": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if len(client.get("/api/v1/workflows").json()) == 4:
                            break
                    except (httpx.HTTPError, ValueError, TypeError):
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the daemon did not apply the examples in 60 s")
                    time.sleep(0.2)
                for method, path in (
                    ("GET", "/healthz"),
                    ("GET", "/api/v1/whoami"),
                    ("GET", "/api/v1/workflows"),
                    ("POST", "/api/v1/auth/login"),
                ):
                    timed(client, method, path, 50)  # warm up
                    got = timed(client, method, path, args.requests)
                    p50 = statistics.median(got) * 1000
                    p99 = got[int(len(got) * 0.99)] * 1000
                    print(f"{method} {path}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
