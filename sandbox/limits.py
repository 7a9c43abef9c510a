"""The limits of one step, in the sandbox's units (bytes, seconds, counts).

``cpu`` is enforced as **fuel**: a step may burn ``cpu_cores x timeout x FUEL_PER_CORE_SECOND``
units of fuel (wasmtime counts roughly one unit per wasm instruction; Python-in-wasm burns about
3.7e9 a second on this machine kind, measured). So ``cpu: 500m`` with ``timeout: 30s`` buys as
much computation as 15 s of one core at full speed; a step that computes harder runs out of fuel
(CpuLimit) before its wall-clock deadline (Timeout). Why fuel rather than time-slicing: it is
deterministic, costs nothing extra once enabled (the engine has it on for every step anyway), and
needs no scheduler of our own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FUEL_PER_CORE_SECOND", "StepLimits"]

FUEL_PER_CORE_SECOND = 4_000_000_000


@dataclass(frozen=True, kw_only=True)
class StepLimits:
    """What one step may use."""

    memory_bytes: int = 256 * 2**20
    timeout_seconds: float = 60.0
    cpu_millicores: int = 1000
    storage_bytes: int = 64 * 2**20
    llm_calls: int = 100
    network_requests: int = 100
    file_operations: int = 1000
    output_bytes: int = 1 * 2**20
    log_bytes: int = 256 * 2**10

    @property
    def fuel(self) -> int:
        """The fuel budget that ``cpu`` and ``timeout`` amount to."""
        return max(1, int(self.cpu_millicores / 1000 * self.timeout_seconds * FUEL_PER_CORE_SECOND))
