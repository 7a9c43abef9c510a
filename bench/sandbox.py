"""Benchmark the sandbox (targets from the sandbox issue).

    .venv/bin/python bench/sandbox.py [--runs 1000]

fresh step (store + instantiate + run) of a trivial component (p50 <= 0.5 ms), host-call round
trip (<= 50 us), timeout precision (stop within 50 ms of the deadline).

    .venv/bin/python bench/sandbox.py --deadlines [--runs 5]

only how close to its deadline each kind of step is stopped: the numbers the tests no longer
assert (tests/sandbox check the outcome; a loaded machine makes any step late).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# this file is called sandbox.py: its own folder must not shadow the sandbox package
_here = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != _here]
sys.path.insert(0, str(_here.parent))

from bench.validate import machine  # noqa: E402
from sandbox import HostCallbacks, RunContext, SandboxEngine, StepLimits, run_step  # noqa: E402
from sandbox.isolate import ProcessSandbox  # noqa: E402
from sandbox.runner import prepare_step  # noqa: E402
from tests.sandbox import wat  # noqa: E402


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--deadlines", action="store_true", help="only the deadline measurements (--runs each)"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.deadlines:
        deadlines(args.runs)
        return
    engine = SandboxEngine()
    start = time.perf_counter()
    echo = engine.load(wat.ECHO)
    print(f"compile a WAT component: {(time.perf_counter() - start) * 1e3:.1f} ms")

    steps = []
    for _ in range(args.runs):
        ctx = RunContext(limits=StepLimits())
        t = time.perf_counter()
        report = run_step(engine, echo, '{"task": "x"}', ctx)
        steps.append(time.perf_counter() - t)
        assert report.outcome.ok
    steps.sort()
    print(
        f"fresh step (store + linker + instantiate + run), trivial component: "
        f"p50 {us(statistics.median(steps))}, p90 {us(steps[int(len(steps) * 0.9)])}"
    )

    prepared = []
    for _ in range(args.runs):
        ready = prepare_step(engine, echo, RunContext(limits=StepLimits()))
        t = time.perf_counter()
        report = ready.run('{"task": "x"}')
        prepared.append(time.perf_counter() - t)
        assert report.outcome.ok
    prepared.sort()
    print(
        "step on an instance prepared ahead (run only), trivial component: "
        f"p50 {us(statistics.median(prepared))}, p90 {us(prepared[int(len(prepared) * 0.9)])}"
    )

    calls = 200
    many = engine.load(wat.llm_caller(calls))
    one = engine.load(wat.llm_caller(1))
    cb = HostCallbacks(llm_complete=lambda r: r)
    per_call = []
    for _ in range(50):
        t = time.perf_counter()
        run_step(engine, many, "{}", RunContext(limits=StepLimits(llm_calls=10_000), callbacks=cb))
        t_many = time.perf_counter() - t
        t = time.perf_counter()
        run_step(engine, one, "{}", RunContext(limits=StepLimits(), callbacks=cb))
        t_one = time.perf_counter() - t
        per_call.append((t_many - t_one) / (calls - 1))
    print(
        f"host-call round trip (llm-complete, string in/out): p50 {us(statistics.median(per_call))}"
    )

    loop = engine.load(wat.LOOP_FOREVER)
    for timeout in (0.05, 0.5, 2.0):
        over = []
        for _ in range(5):
            ctx = RunContext(limits=StepLimits(timeout_seconds=timeout, cpu_millicores=1_000_000))
            report = run_step(engine, loop, "{}", ctx)
            assert report.outcome.kind.value == "timeout"
            over.append(report.elapsed_seconds - timeout)
        print(
            f"timeout {timeout:.2f} s: stopped {statistics.median(over) * 1e3:+.1f} ms "
            f"from the deadline (max {max(over) * 1e3:+.1f} ms)"
        )
    isolated(engine)
    python_steps(engine, args.runs)
    engine.close()


def isolated(engine: SandboxEngine) -> None:
    """Components that can block in WASI: worker-process steps and their timeout."""
    processes = ProcessSandbox()
    t = time.perf_counter()
    processes.warm()
    print(f"sandbox worker process start: {(time.perf_counter() - t) * 1e3:.0f} ms")
    caller = wat.isolated_llm_caller(1).encode()
    cb = HostCallbacks(llm_complete=lambda r: r)
    steps = []
    for _ in range(300):
        ctx = RunContext(limits=StepLimits(), callbacks=cb)
        t = time.perf_counter()
        report = processes.run(engine, caller, "{}", ctx)
        steps.append(time.perf_counter() - t)
        assert report.outcome.ok
    steps.sort()
    print(
        "worker-process step (component importing wasi:io/poll, 1 LLM call): "
        f"p50 {us(statistics.median(steps))}, p90 {us(steps[int(len(steps) * 0.9)])}"
    )
    sleeper = wat.sleeper(60).encode()
    over = []
    for _ in range(5):
        processes.warm()
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.2))
        t = time.perf_counter()
        report = processes.run(engine, sleeper, "{}", ctx)
        over.append(time.perf_counter() - t - 0.2)
        assert report.outcome.kind.value == "timeout"
    print(
        f"blocked in a WASI sleep, timeout 0.2 s: stopped {statistics.median(over) * 1e3:+.1f} ms "
        f"from the deadline (max {max(over) * 1e3:+.1f} ms; worker killed)"
    )
    processes.close()


def python_steps(engine: SandboxEngine, runs: int) -> None:
    """The python-runtime: first use (build + compile, timed only when not cached) and steps."""
    import json
    import tempfile

    from sandbox.python import PythonRuntime

    with tempfile.TemporaryDirectory() as tmp:
        cold = SandboxEngine(Path(tmp) / "compiled")
        runtime = PythonRuntime(cold, build_dir=Path(tmp) / "built")
        t = time.perf_counter()
        runtime.component()
        first = time.perf_counter() - t
        print(f"python-runtime first use (build + compile, nothing cached): {first:.1f} s")
        warm = SandboxEngine(Path(tmp) / "compiled")
        t = time.perf_counter()
        PythonRuntime(warm, build_dir=Path(tmp) / "built").component()
        print(f"python-runtime load when cached: {(time.perf_counter() - t) * 1e3:.0f} ms")
        cold.close()
        warm.close()
        source = (
            "from agentflow import llm, log\n"
            "def run(input):\n"
            "    log('step', input['n'])\n"
            "    return {'answer': llm.complete(prompt='q')['text'], 'n': input['n']}\n"
        )
        cb = HostCallbacks(llm_complete=lambda r: json.dumps({"text": "a"}))
        steps = []
        for n in range(min(runs, 300)):
            ctx = RunContext(limits=StepLimits(), callbacks=cb)
            t = time.perf_counter()
            report = runtime.run(source, json.dumps({"n": n}), ctx)
            steps.append(time.perf_counter() - t)
            assert report.outcome.ok, report.outcome
        steps.sort()
        p50, p90 = statistics.median(steps) * 1e3, steps[int(len(steps) * 0.9)] * 1e3
        print(
            "Python agent step (fresh instance, exec source, 1 LLM + 1 log call): "
            f"p50 {p50:.1f} ms, p90 {p90:.1f} ms"
        )
        ahead = []
        for n in range(min(runs, 300)):
            ready = runtime.prepare(RunContext(limits=StepLimits(), callbacks=cb))
            t = time.perf_counter()
            report = ready.run(source, json.dumps({"n": n}))
            ahead.append(time.perf_counter() - t)
            assert report.outcome.ok, report.outcome
        ahead.sort()
        p50, p90 = statistics.median(ahead) * 1e3, ahead[int(len(ahead) * 0.9)] * 1e3
        print(
            "Python agent step on an instance prepared ahead (run only): "
            f"p50 {p50:.1f} ms, p90 {p90:.1f} ms"
        )


def late(over: list[float]) -> str:
    """How far past the deadline: median and max, in ms."""
    return f"{statistics.median(over) * 1e3:+.1f} ms (max {max(over) * 1e3:+.1f} ms)"


def deadlines(runs: int) -> None:
    """How close to its deadline each kind of step is stopped (runs of each, after one warm-up).

    Each line was an assertion in tests/ once; under load a step is late by however long the
    machine keeps it waiting, so the tests assert outcomes and this measures the time."""
    import json
    import threading

    from sandbox import HttpPolicy, make_http_fetch
    from sandbox.context import HostCallError
    from sandbox.pybuild import default_cache_dir
    from sandbox.python import PythonRuntime

    engine = SandboxEngine()
    # in-process: the epoch deadline (tests/sandbox/test_runner.py)
    loop = engine.load(wat.LOOP_FOREVER)
    for timeout in (0.1, 0.3):
        over = []
        for _ in range(runs):
            ctx = RunContext(limits=StepLimits(timeout_seconds=timeout, cpu_millicores=100_000))
            report = run_step(engine, loop, "{}", ctx)
            assert report.outcome.kind.value == "timeout"
            over.append(report.elapsed_seconds - timeout)
        print(f"infinite loop, timeout {timeout} s: stopped {late(over)} from the deadline")
    over = []
    for _ in range(min(runs, 3)):
        while engine._wanted.is_set():  # the ticker falls asleep IDLE_SECONDS after a step
            threading.Event().wait(0.02)
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.1, cpu_millicores=100_000))
        report = run_step(engine, loop, "{}", ctx)
        assert report.outcome.kind.value == "timeout"
        over.append(report.elapsed_seconds - 0.1)
    print(f"infinite loop, timeout 0.1 s, the ticker asleep at its start: stopped {late(over)}")

    # worker processes: killed at the deadline (tests/sandbox/test_isolate.py)
    sleeper = wat.sleeper(60).encode()
    engine.load(sleeper)
    for cold in (False, True):
        over = []
        for _ in range(runs):
            processes = ProcessSandbox()
            if not cold:
                processes.warm()
            ctx = RunContext(limits=StepLimits(timeout_seconds=0.3))
            t = time.perf_counter()
            report = processes.run(engine, sleeper, "{}", ctx)
            over.append(time.perf_counter() - t - 0.3)
            assert report.outcome.kind.value == "timeout"
            processes.close()
        pool = "a cold pool (the worker starts within the step)" if cold else "a warm pool"
        print(f"blocked in a WASI sleep, timeout 0.3 s, {pool}: stopped {late(over)}")

    # Python agents (tests/sandbox/test_python.py)
    cached = SandboxEngine(default_cache_dir() / "compiled")
    runtime = PythonRuntime(cached)
    runtime.component()
    for what, source in (
        ("in an infinite loop", "def run(input):\n    while True:\n        pass\n"),
        ("in time.sleep(60)", "from time import sleep\ndef run(input):\n    sleep(60)\n"),
    ):
        over = []
        for _ in range(runs):
            ctx = RunContext(limits=StepLimits(timeout_seconds=0.5, cpu_millicores=100_000))
            report = runtime.run(source, "{}", ctx)
            assert report.outcome.kind.value == "timeout", report.outcome
            over.append(report.elapsed_seconds - 0.5)
        print(f"Python agent {what}, timeout 0.5 s: stopped {late(over)}")
    cached.close()
    engine.close()

    # HTTP: a server that drips a header line every 0.1 s (tests/sandbox/test_http.py)
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            for i in range(600):
                if stop.wait(0.1):
                    return
                try:
                    self.send_header(f"X-Drip-{i}", "x")
                    self.wfile.flush()
                except OSError:
                    return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    fetch = make_http_fetch(
        HttpPolicy(allow=("127.0.0.1",), timeout_seconds=0.5), remaining_seconds=lambda: 5.0
    )
    over = []
    for _ in range(runs):
        t = time.perf_counter()
        try:
            fetch(json.dumps({"url": f"http://127.0.0.1:{httpd.server_port}/drip"}))
        except HostCallError:
            over.append(time.perf_counter() - t - 0.5)
    assert len(over) == runs
    print(f"HTTP request to a dripping server, budget 0.5 s: abandoned {late(over)}")
    stop.set()
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    main()
