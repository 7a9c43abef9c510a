"""The planner's view of the store's workflows."""

from __future__ import annotations

from collections.abc import Mapping

from agentflowd.reconcile.plan import Actual
from agentflowd.store import WorkflowHead

__all__ = ["actual_from_store"]


def actual_from_store(stored: Mapping[str, WorkflowHead]) -> dict[str, Actual]:
    """The planner's view of the stored workflows."""
    return {
        name: Actual(
            name=name,
            origin=w.origin.value,
            spec_hash=w.spec_hash,
            file=w.file,
            pinned_revision=w.pinned_revision,
            has_error=w.failing,
        )
        for name, w in stored.items()
    }
