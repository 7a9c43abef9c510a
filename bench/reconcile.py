"""Benchmark the reconciler on this machine (targets from the GitOps issue).

    .venv/bin/python bench/reconcile.py [--files 1000] [--runs 20]

1. commit -> applied -> status written, for a local repo watched by a real `agentflowd serve`
   (target p50 <= 300 ms): a commit is made, and the clock stops when the success note exists.
2. cold reconcile of N manifests into an empty SQLite store (<= 5 s)
3. a no-op pass: the branch did not move (<= 50 ms)
4. one changed file among N (<= 300 ms)
5. idle RSS of the daemon serving N workflows (<= 120 MB)
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pygit2

sys.path.insert(0, str(Path(__file__).parent))
from validate import machine, manifest

from agentflowd.reconcile import GitNotesSink, Reconciler
from agentflowd.source.git import GitSource
from agentflowd.store import open_store

SIG = pygit2.Signature("bench", "bench@example.com")


def commit(repo: pygit2.Repository, workdir: Path, message: str) -> str:
    repo.index.add_all()
    repo.index.write()
    tree = repo.index.write_tree()
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return str(repo.create_commit("HEAD", SIG, SIG, message, tree, parents))


def make_repo(root: Path, files: int) -> tuple[pygit2.Repository, Path]:
    workdir = root / "repo"
    workdir.mkdir(parents=True)
    repo = pygit2.init_repository(str(workdir), initial_head="main")
    rnd = random.Random(7)
    for i in range(files):  # files=0: an empty repository with no commit yet
        (workdir / f"wf-{i:04d}.yaml").write_text(manifest(i, rnd), encoding="utf-8")
    if files:
        for a in range(8):  # the images the corpus uses: agents/step-A:v1.A
            agent = workdir / "agents" / f"step-{a}" / f"v1.{a}" / "agent.py"
            agent.parent.mkdir(parents=True)
            agent.write_text(f"def run(input):\n    return {{'step': {a}}}\n", encoding="utf-8")
        commit(repo, workdir, "corpus")
    return repo, workdir


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def in_process(root: Path, files: int, runs: int) -> None:
    repo, workdir = make_repo(root / "inproc", files)
    store = open_store(str(root / "inproc" / "state.db"))
    reconciler = Reconciler(
        source=GitSource(str(workdir), state_dir=root / "inproc" / "state"),
        store=store,
        sinks=[GitNotesSink(workdir)],
        clock=lambda: datetime.now(UTC),
    )
    start = time.perf_counter()
    outcome = reconciler.sync()
    cold = time.perf_counter() - start
    assert outcome.plan is not None and outcome.plan.counts() == {"create": files}, outcome.plan
    print(f"cold reconcile of {files} manifests (SQLite): {cold:.2f} s")

    noop = []
    for _ in range(runs):
        start = time.perf_counter()
        assert reconciler.sync().noop
        noop.append(time.perf_counter() - start)
    print(f"no-op pass: p50 {ms(statistics.median(noop))}, max {ms(max(noop))}")

    one = []
    for n in range(runs):
        path = workdir / f"wf-{n:04d}.yaml"
        path.write_text(
            path.read_text().replace(
                "maxConcurrentExecutions: 5", f"maxConcurrentExecutions: {6 + n}", 1
            )
        )
        commit(repo, workdir, f"change {n}")
        start = time.perf_counter()
        outcome = reconciler.sync()
        one.append(time.perf_counter() - start)
        assert outcome.plan is not None and outcome.plan.counts().get("update") == 1, (
            outcome.plan.counts()
        )
    print(f"one changed file among {files}: p50 {ms(statistics.median(one))}, max {ms(max(one))}")
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_daemon(workdir: Path, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`agentflowd serve` on ``workdir``; returns the process and its API URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            Path(sys.executable).parent / "agentflowd",
            "serve",
            "--repo",
            str(workdir),
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_applied(url: str, count: int, timeout: float) -> None:
    """Poll the API until ``count`` workflows are applied."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(httpx.get(f"{url}/api/v1/workflows", timeout=5).json()) == count:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not apply {count} workflows in {timeout:.0f} s")
        time.sleep(0.05)


def idle_small(root: Path) -> None:
    """Idle RSS of a daemon following the four bundled examples."""
    repo, workdir = make_repo(root / "small", 0)
    examples = Path(__file__).parents[1] / "examples"
    for path in sorted((examples / "workflows").glob("*.yaml")):
        (workdir / path.name).write_text(path.read_text(), encoding="utf-8")
    shutil.copytree(examples / "agents", workdir / "agents")
    commit(repo, workdir, "examples")
    proc, url = start_daemon(workdir, root / "small" / "state")
    try:
        wait_applied(url, 4, 60)
        time.sleep(2)  # let it settle before measuring idle memory
        print(f"daemon idle RSS with the 4 example workflows: {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def daemon(root: Path, files: int, runs: int) -> None:
    repo, workdir = make_repo(root / "daemon", files)
    proc, url = start_daemon(workdir, root / "daemon" / "state")
    notes = GitNotesSink(workdir)
    try:
        wait_applied(url, files, 120)
        time.sleep(2)  # let it settle before measuring idle memory
        print(f"daemon idle RSS with {files} workflows: {rss_mb(proc.pid):.0f} MB")
        latencies = []
        for n in range(runs):
            path = workdir / f"wf-{n:04d}.yaml"
            text = path.read_text()
            path.write_text(
                text.replace("maxConcurrentExecutions: 5", f"maxConcurrentExecutions: {30 + n}", 1)
            )
            start = time.perf_counter()
            sha = commit(repo, workdir, f"latency {n}")
            while not any(x.get("state") == "success" for x in notes.read(sha)):
                if time.perf_counter() - start > 30:
                    raise SystemExit(f"no success note for {sha} in 30 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - start)
        print(
            f"commit -> applied -> status written (watched local repo, {files} files): "
            f"p50 {ms(statistics.median(latencies))}, max {ms(max(latencies))}"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        in_process(Path(tmp), args.files, args.runs)
        idle_small(Path(tmp))
        daemon(Path(tmp), args.files, args.runs)


if __name__ == "__main__":
    main()
