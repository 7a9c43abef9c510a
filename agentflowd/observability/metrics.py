"""The daemon's Prometheus metrics: one ``agentflow_`` prefix, base units, bounded labels.

Each :class:`Metrics` has its own registry (tests make many daemons in one process), and
``_created`` series are off, as the house rules ask.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from agentflowd._version import __version__

__all__ = ["Metrics"]

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


#: Buckets for whole executions and queue waits (seconds).
_SLOW = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("agentflow_build", "Version of agentflowd.", registry=r)
        self.build_info.info({"version": __version__})
        self.reconcile_total = Counter(
            "agentflow_reconcile_total",
            "Reconciled revisions by result (success, failure, error).",
            ["result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "agentflow_reconcile_duration_seconds",
            "Time to reconcile one revision: load, plan, apply, report.",
            buckets=_FAST,
            registry=r,
        )
        self.fetch_duration = Histogram(
            "agentflow_source_fetch_duration_seconds",
            "Time to fetch the git source (a local repository: reading the ref).",
            buckets=_FAST,
            registry=r,
        )
        self.push_to_reconciled = Histogram(
            "agentflow_push_to_reconciled_seconds",
            "From the moment a new commit was noticed (watch, poll, webhook) to its final status.",
            buckets=_FAST,
            registry=r,
        )
        self.workflows = Gauge(
            "agentflow_workflows",
            "Workflows by phase (active, failing, suspended, pinned).",
            ["phase"],
            registry=r,
        )
        self.status_writes = Counter(
            "agentflow_status_writes_total",
            "Commit statuses written, by backend and result (ok, error).",
            ["backend", "result"],
            registry=r,
        )
        self.last_sync = Gauge(
            "agentflow_last_reconcile_timestamp_seconds",
            "Unix time of the last completed reconcile pass.",
            registry=r,
        )

        # executions
        self.executions_total = Counter(
            "agentflow_executions_total",
            "Finished executions by trigger and result.",
            ["trigger", "result"],
            registry=r,
        )
        self.executions_started = Counter(
            "agentflow_executions_started_total",
            "Executions started, by trigger (manual, schedule, webhook).",
            ["trigger"],
            registry=r,
        )
        self.execution_duration = Histogram(
            "agentflow_execution_duration_seconds",
            "From an execution's start to its end, by result.",
            ["result"],
            buckets=_SLOW,
            registry=r,
        )
        self.queue_wait = Histogram(
            "agentflow_execution_queue_wait_seconds",
            "How long executions waited for a slot (maxConcurrentExecutions).",
            buckets=_SLOW,
            registry=r,
        )
        self.executions_active = Gauge(
            "agentflow_executions_in_progress",
            "Executions in progress, by state (running, queued).",
            ["state"],
            registry=r,
        )
        self.steps_total = Counter(
            "agentflow_steps_total",
            "Step attempts by result (succeeded, failed, retrying).",
            ["result"],
            registry=r,
        )
        self.step_duration = Histogram(
            "agentflow_step_duration_seconds",
            "Time of a step attempt in the sandbox.",
            buckets=_FAST,
            registry=r,
        )
        self.workers_busy = Gauge(
            "agentflow_workers_busy", "Step worker threads running a step.", registry=r
        )
        self.llm_tokens = Counter(
            "agentflow_llm_tokens_total",
            "LLM tokens by provider, model and direction (input, output).",
            ["provider", "model", "direction"],
            registry=r,
        )
        self.llm_cost = Counter(
            "agentflow_llm_cost_usd_total",
            "LLM spend in USD by provider and model (from the cost ledger).",
            ["provider", "model"],
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return prometheus_client.generate_latest(self.registry)
