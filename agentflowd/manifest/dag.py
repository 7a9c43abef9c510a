"""The agent DAG of a valid workflow: topological order and levels of parallel steps."""

from __future__ import annotations

from agentflowd.manifest.model import Workflow

__all__ = ["levels", "topological_order"]


def levels(workflow: Workflow) -> list[list[str]]:
    """Agents grouped by depth: every agent of a level depends only on earlier levels.

    Within a level, agents keep the order of the manifest. The workflow must be valid (its
    dependencies acyclic); :mod:`agentflowd.manifest.checks` guarantees that.
    """
    agents = workflow.spec.agents
    remaining = {a.name: set(a.depends_on) for a in agents}
    order = [a.name for a in agents]
    done: set[str] = set()
    out: list[list[str]] = []
    while remaining:
        ready = [n for n in order if n in remaining and remaining[n] <= done]
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        out.append(ready)
        done.update(ready)
        for name in ready:
            del remaining[name]
    return out


def topological_order(workflow: Workflow) -> list[str]:
    """Agent names in an order where each comes after everything it depends on."""
    return [name for level in levels(workflow) for name in level]
