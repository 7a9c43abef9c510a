"""The planner, table-driven: (desired, actual, options) -> one action per workflow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentflowd.reconcile.plan import Action, Actual, Desired, plan


def want(name: str, h: str = "h1", *, file: str = "a.yaml", invalid: bool = False) -> Desired:
    if invalid:
        return Desired(name=name, file=file, diagnostics=({"message": "bad"},))
    return Desired(name=name, file=file, spec_json=f'{{"h": "{h}"}}', spec_hash=h)


def have(
    name: str,
    h: str = "h1",
    *,
    origin: str = "git",
    file: str = "a.yaml",
    pin: str | None = None,
    error: bool = False,
) -> Actual:
    return Actual(
        name=name, origin=origin, spec_hash=h, file=file, pinned_revision=pin, has_error=error
    )


CASES = [
    pytest.param([want("a")], {}, {}, Action.CREATE, id="new"),
    pytest.param([want("a")], {"a": have("a")}, {}, Action.UNCHANGED, id="same-hash"),
    pytest.param([want("a", "h2")], {"a": have("a")}, {}, Action.UPDATE, id="changed"),
    pytest.param([], {"a": have("a")}, {}, Action.DELETE, id="removed-prune"),
    pytest.param([], {"a": have("a")}, {"prune": False}, Action.ORPHAN, id="removed-no-prune"),
    pytest.param(
        [want("a", invalid=True)],
        {"a": have("a")},
        {},
        Action.KEEP_INVALID,
        id="invalid-keeps-last-good",
    ),
    pytest.param([want("a", invalid=True)], {}, {}, Action.REJECT_INVALID, id="invalid-new"),
    pytest.param(
        [],
        {"a": have("a", file="x.yaml")},
        {"broken_files": frozenset({"x.yaml"})},
        Action.KEEP_BROKEN_FILE,
        id="file-unreadable",
    ),
    pytest.param(
        [],
        {"a": have("a", file="y.yaml")},
        {"broken_files": frozenset({"x.yaml"})},
        Action.DELETE,
        id="other-file-unreadable",
    ),
    pytest.param(
        [want("a", "h2")],
        {"a": have("a", pin="c" * 40)},
        {},
        Action.SKIP_PINNED,
        id="pinned-ignores-change",
    ),
    pytest.param(
        [want("a")], {"a": have("a", pin="c" * 40)}, {}, Action.UNCHANGED, id="pinned-same"
    ),
    pytest.param(
        [want("a", invalid=True)],
        {"a": have("a", pin="c" * 40)},
        {},
        Action.SKIP_PINNED,
        id="pinned-ignores-invalid",
    ),
    pytest.param(
        [want("a", file="b.yaml")], {"a": have("a")}, {}, Action.UNCHANGED, id="moved-file"
    ),
    pytest.param(
        [], {"a": have("a", pin="c" * 40)}, {}, Action.SKIP_PINNED, id="pinned-not-pruned"
    ),
    pytest.param(
        [want("a")], {"a": have("a", origin="api")}, {}, Action.CONFLICT, id="api-owned-name"
    ),
    pytest.param(
        [], {"a": have("a", origin="api")}, {}, Action.UNCHANGED, id="api-workflow-untouched"
    ),
    pytest.param(
        [want("a", "h1"), want("a", "h1", file="b.yaml")],
        {"a": have("a")},
        {},
        Action.KEEP_INVALID,
        id="duplicate-names",
    ),
]


@pytest.mark.parametrize(("desired", "actual", "options", "action"), CASES)
def test_one_workflow(desired, actual, options, action):
    result = plan(desired, actual, **options)
    assert [(c.name, c.action) for c in result.changes] == [("a", action)]


def test_unchanged_but_erroring_workflow_gets_its_error_cleared():
    (change,) = plan([want("a")], {"a": have("a", error=True)}).changes
    assert change.action is Action.UNCHANGED and change.clear_error and change.writes


def test_plan_summary():
    result = plan(
        [want("new"), want("same"), want("changed", "h2"), want("bad", invalid=True)],
        {
            "same": have("same"),
            "changed": have("changed"),
            "gone": have("gone"),
            "bad": have("bad"),
        },
    )
    assert [c.name for c in result.changes] == ["bad", "changed", "gone", "new", "same"]
    assert result.counts() == {
        "create": 1,
        "delete": 1,
        "keep-invalid": 1,
        "unchanged": 1,
        "update": 1,
    }
    assert result.writes and result.failed


def test_no_change_plan_writes_nothing():
    result = plan([want("a"), want("b")], {"a": have("a"), "b": have("b")})
    assert not result.writes and not result.failed


names = st.lists(st.sampled_from("abcdef"), unique=True)


@given(names, names, st.booleans())
def test_planning_the_applied_state_again_is_a_no_op(wanted, existing, prune):
    desired = [want(n, f"h-{n}") for n in wanted]
    actual = {n: have(n, "old") for n in existing}
    first = plan(desired, actual, prune=prune)
    # what the store holds after applying `first`
    after = dict(actual)
    for change in first.changes:
        if change.action in (Action.CREATE, Action.UPDATE):
            after[change.name] = have(change.name, f"h-{change.name}")
        elif change.action is Action.DELETE:
            del after[change.name]
    second = plan(desired, after, prune=prune)
    assert not second.writes
    assert {c.name for c in first.changes} == set(wanted) | set(existing)
