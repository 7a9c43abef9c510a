"""Agents written in Python: ``agent.py`` with ``def run(input: dict) -> dict``, run by the
prebuilt python-runtime component (built and compiled on first use, then cached).

    engine = SandboxEngine(cache_dir)
    runtime = PythonRuntime(engine, progress=print)
    report = runtime.run(Path("agent.py").read_text(), '{"ticket": "..."}', RunContext(...))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wasmtime.component import Component

from sandbox.context import RunContext
from sandbox.engine import SandboxEngine
from sandbox.outcome import StepReport
from sandbox.pybuild import build_runtime
from sandbox.runner import PreparedStep, prepare_step, run_step

__all__ = ["MIN_MEMORY_BYTES", "PythonRuntime"]

#: The runtime's initial memory is ~12.4 MiB (199 pages): smaller limits cannot instantiate it.
MIN_MEMORY_BYTES = 16 * 2**20


class PythonRuntime:
    """The python-runtime component of one engine."""

    def __init__(
        self,
        engine: SandboxEngine,
        *,
        build_dir: Path | None = None,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.engine = engine
        self.build_dir = build_dir
        self.progress = progress
        self._component: Component | None = None

    def component(self) -> Component:
        """Build (first use), compile (first use per wasmtime version) and load the runtime."""
        if self._component is None:
            wasm = build_runtime(self.build_dir, self.progress).read_bytes()
            if not self.engine.is_cached(wasm):
                self.progress("compiling the Python agent runtime (first use, ~20 s)")
            self._component = self.engine.load(wasm)
        return self._component

    def prepare(self, ctx: RunContext) -> PreparedStep:
        """A fresh instance for one step, made ahead; run it with ``.run(source, input)``."""
        return prepare_step(self.engine, self.component(), ctx)

    def run(self, source: str, input_json: str, ctx: RunContext) -> StepReport:
        """Run ``source``'s ``run(input)`` in a fresh instance under ``ctx.limits``."""
        return run_step(self.engine, self.component(), input_json, ctx, args=(source, input_json))
