"""The canonical form of a workflow and its hash: equal exactly when two manifests mean the same.

The reconciler diffs desired against actual state by this hash, so it must ignore everything
that does not change meaning: key order, comments, YAML style, defaults written out or left
implicit, quantity spellings (``1024Mi`` = ``1Gi``), cron spellings (``@daily`` =
``0 0 * * *``), a budget with no limit, and the order of lists that are sets in
meaning (agents, which run in dependency order, not list order; triggers; ``dependsOn``;
``network.allow``). Lists whose order matters (``llmRouting.fallbacks``) keep it.

The form is the JSON of the validated model (camelCase keys, defaults materialized, ``null``
fields dropped), with keys sorted and no whitespace; the hash is its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agentflowd.manifest.cron import normalize_cron
from agentflowd.manifest.model import Workflow

__all__ = ["canonical_dict", "canonical_json", "spec_hash"]


def canonical_dict(workflow: Workflow) -> dict[str, Any]:
    """The workflow as plain JSON data in canonical form."""
    data: dict[str, Any] = workflow.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec = data["spec"]
    spec["agents"] = sorted(spec["agents"], key=lambda agent: agent["name"])
    for trigger in spec["triggers"]:
        if "schedule" in trigger:  # `@daily` = `0 0 * * *`, `mon-fri` = `1-5`
            trigger["schedule"]["cron"] = normalize_cron(trigger["schedule"]["cron"])
    spec["triggers"] = sorted(spec["triggers"], key=_dumps)
    budget = spec.get("budget")
    if budget is not None and not any(k.startswith("per") for k in budget):
        del spec["budget"]  # a budget without a limit limits nothing
    return data


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(workflow: Workflow) -> str:
    """The canonical form as compact JSON text with sorted keys."""
    return _dumps(canonical_dict(workflow))


def spec_hash(workflow: Workflow) -> str:
    """SHA-256 (hex) of the canonical JSON: the identity of what a workflow means."""
    return hashlib.sha256(canonical_json(workflow).encode()).hexdigest()
