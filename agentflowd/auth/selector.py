"""Label selectors, as Kubernetes writes them: which workflows a key may touch.

``team=support``, ``team==support``, ``env!=prod``, ``tier in (web, api)``,
``tier notin (batch)``, ``canary`` (the label exists), ``!canary`` (it does not); requirements
joined by commas must all hold. The grammar and meaning are Kubernetes' own
(``k8s.io/apimachinery/pkg/labels``), so a selector an operator already writes for
``kubectl get -l`` means the same here. An empty selector matches everything; a key with no
selector is not limited.

Parsing is pure and strict: a selector that does not parse is refused when the key is made,
naming the position, never read leniently later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agentflowd.errors import UsageError

__all__ = ["Operator", "Requirement", "Selector"]

_KEY = r"(?:[a-z0-9A-Z.-]{1,253}/)?[a-z0-9A-Z](?:[a-z0-9A-Z_.-]{0,61}[a-z0-9A-Z])?"
_VALUE = r"(?:[a-z0-9A-Z](?:[a-z0-9A-Z_.-]{0,61}[a-z0-9A-Z])?)?"
_SET = re.compile(rf"\s*({_KEY})\s+(in|notin)\s*\(\s*([^)]*)\)\s*")
_EQ = re.compile(rf"\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*")
_EXISTS = re.compile(rf"\s*(!?)\s*({_KEY})\s*")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


class Operator(StrEnum):
    """How a requirement compares a label."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """One condition on one label."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` meet it (Kubernetes' rules: ``!=`` and ``notin`` hold for a
        missing label)."""
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case Operator.EQUALS | Operator.IN:
                return present and value in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or value not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present


@dataclass(frozen=True, kw_only=True)
class Selector:
    """Requirements that must all hold; ``text`` is the selector as given."""

    text: str
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``text``; :class:`UsageError` names the requirement that does not parse."""
        requirements = []
        for part in _split(text):
            if not part.strip():
                if text.strip():
                    raise UsageError(f"selector {text!r}: an empty requirement")
                continue
            requirements.append(_requirement(part, text))
        return cls(text=text.strip(), requirements=tuple(requirements))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a workflow with ``labels`` is selected."""
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


def _split(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _requirement(part: str, text: str) -> Requirement:
    if found := _SET.fullmatch(part):
        key, op, inside = found.groups()
        values = [v.strip() for v in inside.split(",")]
        if not values or any(not v or not _VALUE_ONLY.match(v) for v in values):
            raise UsageError(f"selector {text!r}: bad value list in {part.strip()!r}")
        return Requirement(key=key, operator=Operator(op), values=frozenset(values))
    if found := _EQ.fullmatch(part):
        key, op, value = found.groups()
        operator = Operator.NOT_EQUALS if op == "!=" else Operator.EQUALS
        return Requirement(key=key, operator=operator, values=frozenset({value}))
    if found := _EXISTS.fullmatch(part):
        bang, key = found.groups()
        operator = Operator.DOES_NOT_EXIST if bang else Operator.EXISTS
        return Requirement(key=key, operator=operator)
    raise UsageError(f"selector {text!r}: cannot read {part.strip()!r}")
