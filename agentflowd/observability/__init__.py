"""Metrics (Prometheus) and logging."""

from __future__ import annotations

from agentflowd.observability.metrics import Metrics

__all__ = ["Metrics"]
