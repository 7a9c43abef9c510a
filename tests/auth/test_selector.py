"""Label selectors mean what they mean to kubectl."""

from __future__ import annotations

import pytest

from agentflowd.auth.selector import Operator, Selector
from agentflowd.errors import UsageError

LABELS = {"team": "support", "env": "prod", "canary": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("team=support", True),
        ("team==support", True),
        ("team=sales", False),
        ("team!=sales", True),
        ("owner!=bob", True),  # a missing label is != anything
        ("env in (prod, staging)", True),
        ("env in (staging)", False),
        ("env notin (prod)", False),
        ("owner notin (bob)", True),
        ("canary", True),
        ("!canary", False),
        ("!owner", True),
        ("owner", False),
        ("team=support,env=prod", True),
        ("team=support, env in (dev,qa)", False),
        ("example.com/tier in (a,b),team=support", False),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert Selector.parse(text).matches(LABELS) is expected


def test_parsed_form() -> None:
    selector = Selector.parse(" tier in (web, api) , !canary ")
    assert [r.operator for r in selector.requirements] == [Operator.IN, Operator.DOES_NOT_EXIST]
    assert selector.requirements[0].values == {"web", "api"}
    assert str(selector) == "tier in (web, api) , !canary"


@pytest.mark.parametrize(
    "text", ["team=", "=support", "team=a b", "env in ()", "env in (a,,b)", ",", "team=x,", "a b"]
)
def test_refused(text: str) -> None:
    if text == "team=":  # an empty value is valid in Kubernetes (the label is set to "")
        assert Selector.parse(text).matches({"team": ""})
        return
    with pytest.raises(UsageError, match="selector"):
        Selector.parse(text)
