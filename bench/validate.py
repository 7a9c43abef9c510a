"""Benchmark: validate 1,000 generated manifest files (target: under 2 s on 2 cores).

Run with `make bench` (or `.venv/bin/python bench/validate.py [--files N] [--runs R]`).
Prints the machine, then the median wall time of: the whole CLI (`agentflow validate DIR`,
interpreter start-up included), the in-process load, and the hostile-input refusals.
Numbers go into bench/RESULTS.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentflowd.manifest import SourceFile, load_sources
from agentflowd.manifest.load import gc_paused
from agentflowd.manifest.yamlread import read_yaml
from agentflowd.source import discover_files

PROVIDERS = [("openai", "gpt-4o"), ("anthropic", "claude-3-haiku"), ("local", "llama-3-8b")]


def manifest(i: int, rnd: random.Random) -> str:
    """A realistic manifest: 2-8 agents in a DAG, resources, triggers, sometimes routing."""
    n = rnd.randint(2, 8)
    lines = [
        "# yaml-language-server: $schema=../schemas/workflow.v1.schema.json",
        "apiVersion: agentflow.io/v1",
        "kind: Workflow",
        "metadata:",
        f"  name: bench-workflow-{i}",
        "  labels:",
        f"    team: team-{i % 17}",
        "spec:",
        "  agents:",
    ]
    for a in range(n):
        provider, model = rnd.choice(PROVIDERS)
        lines += [
            f"    - name: agent-{a}",
            f"      image: agents/step-{a}:v1.{a}",
            "      llm:",
            f"        provider: {provider}",
            f"        model: {model}",
            f"        temperature: {rnd.choice([0, 0.1, 0.7])}",
            "      resources:",
            f"        memory: {rnd.choice(['128Mi', '512Mi', '1Gi'])}",
            f"        cpu: {rnd.choice(['100m', '500m', '1'])}",
            f"        timeout: {rnd.choice(['30s', '2m', '10m'])}",
        ]
        if a:
            deps = sorted(rnd.sample(range(a), k=min(a, rnd.randint(1, 2))))
            lines.append("      dependsOn: [" + ", ".join(f"agent-{d}" for d in deps) + "]")
    lines += [
        "  triggers:",
        "    - webhook:",
        f"        path: /hooks/bench/{i}",
        "        method: POST",
        f'    - schedule: "{rnd.randint(0, 59)} {rnd.randint(0, 23)} * * 1-5"',
        "  config:",
        "    maxConcurrentExecutions: 5",
        "    defaultTimeout: 30m",
        "    retryPolicy: exponential",
    ]
    if i % 3 == 0:
        lines += [
            "  llmRouting:",
            "    strategy: cost-optimized",
            "    fallbacks:",
            "      - provider: openai",
            "        model: gpt-4o",
            "        conditions: [{complexity: high}]",
            "      - provider: local",
            "        model: llama-3-8b",
            "        conditions: {data_sensitivity: high}",
            "  budget:",
            "    perExecution: 0.5",
            "    perDay: 20",
        ]
    return "\n".join(lines) + "\n"


def timed(fn, runs: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rnd = random.Random(42)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "workflows"
        root.mkdir()
        total = 0
        for i in range(args.files):
            text = manifest(i, rnd)
            total += len(text)
            (root / f"wf-{i:04d}.yaml").write_text(text, encoding="utf-8")
        print(f"corpus: {args.files} files, {total / 1024:.0f} KiB")

        cli = Path(sys.executable).parent / "agentflow"

        def run_cli() -> None:
            done = subprocess.run(
                [cli, "validate", root], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])

        med, samples = timed(run_cli, args.runs)
        runs = [round(s, 3) for s in samples]
        print(f"agentflow validate DIR (whole CLI):  median {med:.3f} s  runs {runs}")

        def in_process() -> None:
            report = load_sources(discover_files([root]))
            assert report.valid and len(report.manifests) == args.files

        med, _ = timed(in_process, args.runs)
        per_file = med / args.files * 1e3
        print(f"in-process discover + load + checks: median {med:.3f} s ({per_file:.3f} ms/file)")

        data = [p.read_bytes() for p in sorted(root.iterdir())]

        def read_all() -> None:
            with gc_paused():
                for d in data:
                    read_yaml(d, "x")

        med, _ = timed(read_all, args.runs)
        print(f"  of which YAML reading:            median {med:.3f} s")
        med, _ = timed(
            lambda: subprocess.run([cli, "version"], capture_output=True, check=True), args.runs
        )
        print(f"CLI start-up alone (agentflow version): median {med:.3f} s")

    bomb = (
        "a0: &a0 ["
        + ", ".join(["lol"] * 9)
        + "]\n"
        + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    )
    deep = "a: " + "[" * 400_000 + "]" * 400_000 + "\n"
    for name, text in [("billion laughs", bomb), ("400,000-deep nesting (800 KB)", deep)]:
        med, _ = timed(
            lambda t=text: load_sources([SourceFile(path="x", data=t.encode())]), args.runs
        )
        print(f"refuse {name}: median {med * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
