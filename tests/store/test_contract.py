"""The store contract, run against every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agentflowd.errors import LlmCallNotFound, NotFound, RevisionRecordNotFound, WorkflowNotFound
from agentflowd.llm import budget_seed
from agentflowd.store import (
    HISTORY_LIMIT,
    AgentImage,
    HistoryAction,
    LlmCall,
    LlmCallState,
    Origin,
    RevisionKind,
    RevisionState,
    SourceState,
    Store,
    WorkflowWrite,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def write(name: str = "wf", n: int = 1, **kw) -> WorkflowWrite:
    spec = {"metadata": {"name": name}, "spec": {"agents": [{"name": f"a{n}"}]}, "n": n}
    return WorkflowWrite(
        name=name,
        origin=kw.pop("origin", Origin.GIT),
        spec=spec,
        spec_hash=f"{n:064x}",
        revision=kw.pop("revision", f"{n:040x}"),
        file=kw.pop("file", f"{name}.yaml"),
    )


def test_create_then_read(store: Store):
    stored = store.put_workflow(write(), action=HistoryAction.CREATE, now=T0)
    assert (stored.name, stored.generation, stored.origin) == ("wf", 1, Origin.GIT)
    assert stored.spec == write().spec
    assert stored.created_at == stored.updated_at == T0
    assert stored.created_at.tzinfo is not None
    assert not stored.suspended and not stored.pinned
    assert store.get_workflow("wf") == stored
    assert store.workflows() == {"wf": stored}


def test_update_bumps_generation_and_keeps_operator_state(store: Store):
    store.put_workflow(write(n=1), action=HistoryAction.CREATE, now=T0)
    store.set_suspended("wf", True, now=T0)
    store.set_error("wf", [{"message": "bad"}], "abc", now=T0)
    later = T0 + timedelta(minutes=1)
    stored = store.put_workflow(write(n=2), action=HistoryAction.UPDATE, now=later)
    assert (stored.generation, stored.spec_hash, stored.suspended) == (2, f"{2:064x}", True)
    assert stored.last_error is None and stored.error_revision is None  # cleared by a good version
    assert (stored.created_at, stored.updated_at) == (T0, later)


def test_history_keeps_the_last_ten_newest_first(store: Store):
    for n in range(1, HISTORY_LIMIT + 4):
        action = HistoryAction.CREATE if n == 1 else HistoryAction.UPDATE
        store.put_workflow(write(n=n), action=action, now=T0 + timedelta(seconds=n))
    entries = store.history("wf")
    assert [e.generation for e in entries] == list(range(HISTORY_LIMIT + 3, 3, -1))
    assert entries[0].spec == write(n=HISTORY_LIMIT + 3).spec
    assert entries[0].applied_at == T0 + timedelta(seconds=HISTORY_LIMIT + 3)
    assert store.history("other") == []


def test_errors_suspend_and_pin(store: Store):
    store.put_workflow(write(), action=HistoryAction.CREATE, now=T0)
    store.set_error("wf", [{"file": "wf.yaml", "line": 3}], "f" * 40, now=T0)
    got = store.get_workflow("wf")
    assert got.last_error == [{"file": "wf.yaml", "line": 3}] and got.error_revision == "f" * 40
    store.set_error("wf", None, None, now=T0)
    assert store.get_workflow("wf").last_error is None
    assert store.set_suspended("wf", True, now=T0).suspended
    assert not store.set_suspended("wf", False, now=T0).suspended
    assert store.set_pin("wf", "a" * 40, now=T0).pinned_revision == "a" * 40
    assert store.set_pin("wf", None, now=T0).pinned is False


def test_missing_workflows_raise_lookup_errors(store: Store):
    for call in (
        lambda: store.get_workflow("nope"),
        lambda: store.delete_workflow("nope"),
        lambda: store.set_suspended("nope", True, now=T0),
        lambda: store.set_pin("nope", None, now=T0),
        lambda: store.set_error("nope", None, None, now=T0),
    ):
        with pytest.raises(WorkflowNotFound, match="workflow 'nope' not found"):
            call()
    assert issubclass(WorkflowNotFound, LookupError)


def test_delete_removes_workflow_and_history(store: Store):
    store.put_workflow(write(), action=HistoryAction.CREATE, now=T0)
    store.delete_workflow("wf")
    assert store.workflows() == {}
    assert store.history("wf") == []
    # a new workflow of the same name starts again at generation 1
    assert store.put_workflow(write(), action=HistoryAction.CREATE, now=T0).generation == 1


def test_revisions_lifecycle(store: Store):
    first = store.begin_revision(
        source="main", sha="a" * 40, ref="refs/heads/main", kind=RevisionKind.SYNC, now=T0
    )
    assert first.state is RevisionState.PENDING and first.finished_at is None
    second = store.begin_revision(
        source="main", sha="b" * 40, ref="refs/pull/1/head", kind=RevisionKind.VALIDATE, now=T0
    )
    done = store.finish_revision(
        first.id,
        state=RevisionState.FAILURE,
        summary="1 invalid",
        diagnostics=[{"file": "a.yaml", "line": 1}],
        counts={"created": 2, "invalid": 1},
        now=T0 + timedelta(seconds=1),
    )
    assert done.state is RevisionState.FAILURE and done.counts == {"created": 2, "invalid": 1}
    assert store.get_revision(first.id) == done
    assert [r.id for r in store.revisions()] == [second.id, first.id]
    assert [r.id for r in store.revisions(kind=RevisionKind.VALIDATE)] == [second.id]
    assert [r.id for r in store.revisions(limit=1)] == [second.id]
    with pytest.raises(RevisionRecordNotFound):
        store.get_revision(999)
    with pytest.raises(RevisionRecordNotFound):
        store.finish_revision(
            999, state=RevisionState.ERROR, summary="", diagnostics=[], counts={}, now=T0
        )


def test_source_state_upsert(store: Store):
    assert store.source_state("main") is None
    state = SourceState(
        name="main",
        url="/repo",
        branch="main",
        path="",
        last_seen_sha="a" * 40,
        last_applied_sha=None,
        updated_at=T0,
    )
    store.save_source_state(state)
    assert store.source_state("main") == state
    moved = SourceState(
        name="main",
        url="/repo",
        branch="main",
        path="",
        last_seen_sha="b" * 40,
        last_applied_sha="b" * 40,
        updated_at=T0,
    )
    store.save_source_state(moved)
    assert store.source_state("main") == moved


def test_returned_values_are_copies(store: Store):
    stored = store.put_workflow(write(), action=HistoryAction.CREATE, now=T0)
    stored.spec["spec"]["agents"].append({"name": "sneaky"})
    assert store.get_workflow("wf").spec == write().spec


def test_naive_datetimes_are_refused(store: Store):
    with pytest.raises(Exception, match="naive datetime"):
        store.put_workflow(write(), action=HistoryAction.CREATE, now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_heads_list_without_specs(store: Store):
    store.put_workflow(write("a"), action=HistoryAction.CREATE, now=T0)
    store.put_workflow(write("b", 2), action=HistoryAction.CREATE, now=T0)
    store.set_error("b", [{"m": 1}], "x", now=T0)
    store.set_pin("a", "c" * 40, now=T0)
    assert all(h.agents is None for h in store.workflow_heads().values())  # not counted
    heads = store.workflow_heads(listing=True)
    assert list(heads) == ["a", "b"]
    assert (heads["a"].pinned_revision, heads["a"].failing, heads["a"].generation) == (
        "c" * 40,
        False,
        1,
    )
    assert (
        heads["b"].failing and heads["b"].spec_hash == f"{2:064x}" and heads["b"].file == "b.yaml"
    )
    # what the API's list shows, counted without reading specs: they agree with the full rows
    for name, head in heads.items():
        assert head == store.get_workflow(name).head(listing=True)
    assert (heads["a"].agents, heads["a"].revision, heads["a"].updated_at) == (1, f"{1:040x}", T0)
    many = write("c", 3)
    many.spec["spec"]["agents"] = [{"name": f"x{i}"} for i in range(7)]
    store.put_workflow(many, action=HistoryAction.CREATE, now=T0)
    none = write("d", 4)
    del none.spec["spec"]["agents"]
    store.put_workflow(none, action=HistoryAction.CREATE, now=T0)
    heads = store.workflow_heads(listing=True)
    assert (heads["c"].agents, heads["d"].agents) == (7, 0)


def test_set_file(store: Store):
    store.put_workflow(write(), action=HistoryAction.CREATE, now=T0)
    moved = store.set_file("wf", "elsewhere.yaml", now=T0)
    assert moved.file == "elsewhere.yaml" and moved.generation == 1


def test_agent_images_are_kept_by_content(store: Store):
    content = bytes(range(256)) * 40  # binary, with NULs
    digest = hashlib.sha256(content).hexdigest()
    assert store.missing_images([digest, "0" * 64]) == {digest, "0" * 64}
    store.put_image(AgentImage(sha256=digest, kind="wasm", content=content), now=T0)
    store.put_image(AgentImage(sha256=digest, kind="wasm", content=content), now=T0)  # no-op
    assert store.missing_images([digest, "0" * 64]) == {"0" * 64}
    assert store.missing_images([]) == set()
    got = store.get_image(digest)
    assert (got.kind, got.content) == ("wasm", content)
    with pytest.raises(NotFound, match="not in the store"):
        store.get_image("0" * 64)


def test_versions_carry_their_images(store: Store):
    images = {"agents/a:v1": {"path": "agents/a/v1/agent.py", "kind": "python", "sha256": "ab"}}
    first = store.put_workflow(replace(write(), images=images), action=HistoryAction.CREATE, now=T0)
    assert first.images == images
    second = store.put_workflow(write(n=2), action=HistoryAction.UPDATE, now=T0)
    assert second.images == {}
    assert [h.images for h in store.history("wf")] == [{}, images]


def call(**kw: Any) -> LlmCall:
    values: dict[str, Any] = {
        "at": T0,
        "workflow": "wf",
        "agent": "a",
        "execution": "e1",
        "step": "s1",
        "provider": "openai",
        "kind": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_read_tokens": 400,
        "cache_write_tokens": 0,
        "estimated": False,
        "cost": Decimal("0.0025"),
        "price_source": "genai-prices 0.2.3",
        "latency_ms": 12.5,
        "cache_hit": False,
        "fallback_depth": 0,
        "attempt": 1,
        "outcome": "ok",
    }
    values.update(kw)
    return LlmCall(**values)


def test_the_cost_ledger_sums_exactly(store: Store):
    tiny = Decimal("0.000000037500")  # 37.5 nano-dollars: kept exactly
    store.record_llm_call(call(cost=tiny))
    store.record_llm_call(call(cost=Decimal("0.0025"), agent="b", execution="e2"))
    store.record_llm_call(
        call(cost=Decimal(0), provider="anthropic", kind="anthropic", outcome="server")
    )
    store.record_llm_call(
        call(cost=Decimal("1.5"), at=T0 + timedelta(days=1), workflow="other", execution="e3")
    )
    assert store.llm_costs(by="provider", workflow="wf") == {
        "anthropic": (Decimal(0), 1),
        "openai": (tiny + Decimal("0.0025"), 2),
    }
    assert store.llm_costs(by="execution", execution="e1")["e1"] == (tiny, 2)
    day = store.llm_costs(by="workflow", since=T0, until=T0 + timedelta(days=1))
    assert set(day) == {"wf"}
    with pytest.raises(ValueError, match="cannot group costs by 'secret'"):
        store.llm_costs(by="secret")


WORST = Decimal("0.0100000375")  # a reservation: the call's worst case


def reserved(**kw: Any) -> LlmCall:
    """An attempt as journaled before its request leaves."""
    values: dict[str, Any] = {
        "cost": WORST,
        "reserved": WORST,
        "state": LlmCallState.RESERVED,
        "outcome": "pending",
        "input_tokens": 2000,
        "output_tokens": 1000,
        "cache_read_tokens": 0,
        "estimated": True,
        "latency_ms": 0.0,
    }
    values.update(kw)
    return call(**values)


def by_state(store: Store, **kw: Any) -> dict[str, tuple[Decimal, int]]:
    return store.llm_costs(by="state", **kw)


def test_a_reserved_llm_call_is_settled_at_what_it_cost(store: Store):
    first = store.record_llm_call(reserved())
    second = store.record_llm_call(reserved(attempt=2))
    assert first != second
    assert by_state(store) == {"reserved": (WORST * 2, 2)}
    store.settle_llm_call(first, call(cost=Decimal("0.0025"), state=LlmCallState.SETTLED))
    store.settle_llm_call(
        second, call(cost=Decimal(0), state=LlmCallState.RELEASED, outcome="connection")
    )
    assert by_state(store) == {
        "released": (Decimal(0), 1),
        "settled": (Decimal("0.0025"), 1),
    }
    assert store.llm_costs(by="execution")["e1"] == (Decimal("0.0025"), 2)
    # settling is once, of a reserved row, to an end state
    with pytest.raises(LlmCallNotFound, match=f"no reserved LLM call {first} in the cost ledger"):
        store.settle_llm_call(first, call(state=LlmCallState.SETTLED))
    with pytest.raises(LlmCallNotFound):
        store.settle_llm_call(second + 1000, call(state=LlmCallState.SETTLED))
    third = store.record_llm_call(reserved())
    with pytest.raises(ValueError, match="not reserved again"):
        store.settle_llm_call(third, reserved())
    assert by_state(store)["reserved"] == (WORST, 1)


def test_settling_keeps_the_time_and_identity_journaled(store: Store):
    key = store.record_llm_call(reserved(at=T0, workflow="wf", execution="e1"))
    later = call(
        at=T0 + timedelta(days=1),  # the answer came after midnight: the call stays in its day
        workflow="other",
        execution="e9",
        cost=Decimal("0.003"),
        state=LlmCallState.SETTLED,
    )
    store.settle_llm_call(key, later)
    assert store.llm_costs(by="workflow", since=T0, until=T0 + timedelta(days=1)) == {
        "wf": (Decimal("0.003"), 1)
    }
    assert store.llm_costs(by="execution") == {"e1": (Decimal("0.003"), 1)}


def test_a_reserved_llm_call_never_settled_counts_at_its_reservation(store: Store):
    store.record_llm_call(reserved())  # the process died with this call in flight
    key = store.record_llm_call(reserved(execution="e2"))
    store.settle_llm_call(key, call(execution="e2", state=LlmCallState.SETTLED))
    assert store.llm_costs(by="execution") == {
        "e1": (WORST, 1),
        "e2": (Decimal("0.0025"), 1),
    }
    assert store.llm_costs(by="provider", workflow="wf") == {
        "openai": (WORST + Decimal("0.0025"), 2)
    }


def test_budgets_are_seeded_with_reserved_calls_at_their_reservation(store: Store):
    store.record_llm_call(reserved(execution="e1"))  # in flight at a kill -9
    settled = store.record_llm_call(reserved(execution="e1"))
    store.settle_llm_call(settled, call(cost=Decimal("0.002"), state=LlmCallState.SETTLED))
    released = store.record_llm_call(reserved(execution="e2"))
    store.settle_llm_call(released, call(cost=Decimal(0), state=LlmCallState.RELEASED))
    store.record_llm_call(call(cost=Decimal(0), cache_hit=True, execution="e2"))
    store.record_llm_call(reserved(at=T0 + timedelta(days=1), execution="e3"))  # the next day
    spent = budget_seed(store)
    assert spent("execution:e1") == WORST + Decimal("0.002")
    assert spent("execution:e2") == Decimal(0)
    assert spent("workflow:wf:day:2026-11-24") == WORST + Decimal("0.002")
    assert spent("workflow:wf:day:2026-11-25") == WORST
    assert spent("workflow:wf:month:2026-11") == WORST * 2 + Decimal("0.002")
    assert spent("workflow:other:day:2026-11-24") == Decimal(0)


def test_the_workflows_epoch_moves_with_every_change_to_a_workflow(store: Store):
    seen = [store.workflows_epoch]

    def moved() -> None:
        assert store.workflows_epoch != seen[-1]
        seen.append(store.workflows_epoch)

    store.put_workflow(write(n=1), action=HistoryAction.CREATE, now=T0)
    moved()
    store.put_workflow(write(n=2), action=HistoryAction.UPDATE, now=T0)
    moved()
    store.set_suspended("wf", True, now=T0)
    moved()
    store.set_pin("wf", "abc", now=T0)
    moved()
    store.get_workflow("wf")
    store.workflows()
    assert store.workflows_epoch == seen[-1]  # reads leave it alone
    store.delete_workflow("wf")
    moved()


def test_ping_answers(store: Store):
    store.ping()
    store.ping()  # and gives its connection back (the fixture checks for leaks)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://nobody@127.0.0.1:1/none", "connection"),
        ("/nonexistent/dir/state.db", "unable to open database file"),
    ],
)
def test_ping_says_in_one_line_why_a_database_does_not_answer(url: str, why: str):
    from agentflowd.errors import StoreUnavailable
    from agentflowd.store import SqlStore

    store = SqlStore.open(url)
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.ping()
    finally:
        store.close()
    assert why in str(info.value) and "\n" not in str(info.value)
