"""What a request is like: declared features, and inferred ones where none were declared.

Routing conditions match on these (``complexity``, ``accuracy``, ``cost``, ``data_sensitivity``,
``needs_json``, ``needs_tools``). Declared values win over inferred ones. Inference is cheap on
purpose (the routing decision targets 50 µs): plain substring tests over the prompt's first
1.5 KB and last 0.5 KB (where instructions and the question sit), lower-cased; no regular
expressions (alternations measured 10x slower). Token counts are estimated as ``len(text) / 4``
(measured median error +2 % against o200k) for ranking and context windows; budgets reserve
against a true bound instead (byte-level BPE makes at most one token per UTF-8 byte), and billing
never uses estimates. A ``data_sensitivity`` value that cannot be read counts as ``high``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router.types import ChatRequest

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OUTPUT_TOKENS",
    "FEATURE_VALUES",
    "Features",
    "estimate_tokens",
    "extract",
]

#: The values each feature can take (as the manifest's conditions spell them).
FEATURE_VALUES: dict[str, tuple[Any, ...]] = {
    "complexity": ("low", "medium", "high"),
    "accuracy": ("standard", "high", "critical"),
    "cost": ("minimal", "normal", "priority"),
    "data_sensitivity": ("low", "medium", "high"),
    "needs_json": (True, False),
    "needs_tools": (True, False),
}
_DEFAULTS = {"accuracy": "standard", "cost": "normal", "data_sensitivity": "low"}
#: Output assumed for ranking when a request sets no max_tokens.
DEFAULT_OUTPUT_TOKENS = 500
#: The output cap sent when a request sets none, so every call's cost has a bound.
DEFAULT_MAX_TOKENS = 4096
#: Markers are looked for in the prompt's head and tail, where instructions and questions sit.
_HEAD, _TAIL = 1536, 512
_CODE = ("```", "def ", "function ", "class ", "#include")
_REASONING = (
    "prove",
    "step by step",
    "derive",
    "analy",
    "explain why",
    "compare",
    "optimi",
    "calculate",
)


@dataclass(frozen=True, slots=True)
class Features:
    """A request's features, each declared or inferred (``declared`` names the former)."""

    complexity: str
    accuracy: str
    cost: str
    data_sensitivity: str
    needs_json: bool
    needs_tools: bool
    input_tokens: int  # estimated (len / 4), for ranking and the context window
    max_input_tokens: int  # a bound (UTF-8 bytes, tools, per-message overhead), for budgets
    output_tokens: int  # max_tokens, or a default for ranking
    max_output_tokens: int  # the cap sent: max_tokens, or DEFAULT_MAX_TOKENS
    declared: frozenset[str] = frozenset()

    def get(self, name: str) -> Any:
        """A feature by its condition key."""
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        """For decision traces."""
        return {
            "complexity": self.complexity,
            "accuracy": self.accuracy,
            "cost": self.cost,
            "data_sensitivity": self.data_sensitivity,
            "needs_json": self.needs_json,
            "needs_tools": self.needs_tools,
            "estimated_input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "max_output_tokens": self.max_output_tokens,
            "declared": sorted(self.declared),
        }


def estimate_tokens(text: str) -> int:
    """``len / 4``, at least 1 for non-empty text."""
    return (len(text) + 3) // 4


def _complexity(text: str, turns: int, tools: int, tokens: int) -> str:
    sample = (text if len(text) <= _HEAD + _TAIL else text[:_HEAD] + text[-_TAIL:]).lower()
    score = 0
    score += sum(1 for marker in _CODE if marker in sample)
    score += sum(1 for word in _REASONING if word in sample)
    score += 1 if turns > 4 else 0
    score += 1 if tools else 0
    score += 2 if tokens > 2000 else 1 if tokens > 400 else 0
    if score >= 4:
        return "high"
    return "medium" if score >= 2 else "low"


def extract(request: ChatRequest, declared: Mapping[str, Any] | None = None) -> Features:
    """The features of ``request``: what the workflow declares (``declared``) wins over what
    the agent's call declares, which wins over inference; ``data_sensitivity`` takes the higher
    of the two declarations."""
    given = {**request.features, **(declared or {})}
    text = request.text()
    tokens = estimate_tokens(text)
    values: dict[str, Any] = {}
    for name, allowed in FEATURE_VALUES.items():
        if name in given and given[name] in allowed:
            values[name] = given[name]
    # sensitivity only ever goes up: an agent cannot lower what its manifest declares; a value
    # that cannot be read fails closed
    order = FEATURE_VALUES["data_sensitivity"]
    said = (request.features.get("data_sensitivity"), (declared or {}).get("data_sensitivity"))
    levels = [v if v in order else "high" for v in said if v is not None]
    if levels:
        values["data_sensitivity"] = max(levels, key=order.index)
    if "complexity" not in values:
        values["complexity"] = _complexity(text, len(request.messages), len(request.tools), tokens)
    values.setdefault("needs_json", request.json)
    values.setdefault("needs_tools", bool(request.tools))
    for name, default in _DEFAULTS.items():
        values.setdefault(name, default)
    bound = sum(len(m.content.encode("utf-8")) + 8 for m in request.messages) + 16
    if request.tools:
        bound += len(json.dumps(list(request.tools)).encode("utf-8"))
    return Features(
        **values,
        input_tokens=tokens,
        max_input_tokens=bound,
        output_tokens=min(request.max_tokens or DEFAULT_OUTPUT_TOKENS, DEFAULT_OUTPUT_TOKENS),
        max_output_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
        declared=frozenset(k for k in given if k in FEATURE_VALUES),
    )
