"""The journal's group commit under threads: lazy changes, commits on step threads, callbacks
that fail, posts after close (SQLite; the engine tests run the journal on PostgreSQL too)."""

from __future__ import annotations

import threading

from agentflowd.engine import Journal, LogEntry
from agentflowd.store import SqlStore, migrate
from tests.engine.conftest import NOW, created
from tests.waiting import wait_for


def note(kind: str) -> LogEntry:
    return LogEntry(execution_id="e1", type=kind, at=NOW)


def types(journal: Journal) -> list[str]:
    return [e.type for e in journal.events("e1")][1:]


def test_a_lazy_post_after_a_commit_on_another_thread_still_goes_within_its_time(journal):
    gate = threading.Event()
    real = journal._transaction

    def held(changes: list[LogEntry]) -> None:  # a commit that takes as long as the test says
        assert gate.wait(10)
        real(changes)

    journal._transaction = held
    journal.post([note("lazy.1")], lazy=True)  # the writer starts its 10 ms timer
    here = threading.Thread(target=journal.commit_here, args=([note("here.2")], lambda _e: None))
    here.start()
    wait_for(lambda: journal._committing, what="the step thread to commit")
    # the writer's timer ends while the step thread commits: it must wait to be woken again
    wait_for(lambda: journal._idle, what="the writer to wait for the commit")
    gate.set()
    here.join(10)
    journal._transaction = real
    committed = threading.Event()
    journal.post([note("lazy.3")], lambda _e: committed.set(), lazy=True)  # nothing else comes
    assert committed.wait(10), "a lazy post was left behind"
    assert types(journal) == ["lazy.1", "here.2", "lazy.3"]


def test_a_failing_callback_does_not_stop_the_journal(journal):
    def broken(_error: BaseException | None) -> None:
        raise RuntimeError("a bug after the commit")

    journal.post([note("a")], broken)
    journal.write([note("b")]).result(timeout=10)  # the writer is alive
    done = threading.Event()

    def hook(thens: list[object]) -> None:
        done.set()
        raise RuntimeError("the hook's own bug")

    journal.on_commit = hook
    journal.commit_here([note("c")], broken)  # when committed here, it must not raise either
    assert done.wait(10)
    journal.write([note("d")]).result(timeout=10)
    assert types(journal) == ["a", "b", "c", "d"]


def test_what_is_posted_after_close_is_still_committed(journal):
    journal.close()
    committed = threading.Event()
    journal.post([note("late")], lambda error: committed.set() if error is None else None)
    assert committed.is_set()  # committed on the posting thread: no writer is left
    assert types(journal) == ["late"]


def test_posts_racing_close_are_all_committed(journal):
    counts = {"called": 0}
    lock = threading.Lock()

    def called(_error: BaseException | None) -> None:
        with lock:
            counts["called"] += 1

    def poster(n: int) -> None:
        for i in range(n):
            journal.post([note(f"n{i}")], called, lazy=i % 2 == 0)
            if i % 50 == 0:
                journal.commit_here([note(f"h{i}")], called)

    threads = [threading.Thread(target=poster, args=(600,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    journal.close()  # while they post: the writer ends, then they commit themselves
    for thread in threads:
        thread.join()
    expected = 3 * (600 + 12)
    wait_for(lambda: counts["called"] == expected, what="every post's callback")
    assert len(types(journal)) == expected and not journal._pending


def test_a_post_made_while_another_commits_after_close_is_committed_by_that_thread(journal):
    journal.close()
    entered, release = threading.Event(), threading.Event()
    real = journal._transaction

    def slow(changes: list[LogEntry]) -> None:
        if any(c.type == "first" for c in changes):
            entered.set()
            release.wait(10)
        real(changes)

    journal._transaction = slow
    got: list[str] = []
    first = threading.Thread(target=journal.post, args=([note("first")], lambda e: got.append("1")))
    first.start()
    assert entered.wait(10)
    journal.post([note("second")], lambda e: got.append("2"))  # appended: "first" holds the slot
    assert got == []
    release.set()
    first.join()
    assert got == ["1", "2"] and types(journal) == ["first", "second"]


def test_a_post_held_back_after_the_writer_ended_is_committed_when_released(journal):
    with journal._cond:  # the first half of close(): the writer ends
        journal._stopping = True
        journal._cond.notify()
    journal._thread.join(10)
    got: list[BaseException | None] = []
    with journal._paused():  # a checkpoint holding commits back, as the last one may
        journal.post([note("late")], got.append)
        assert got == []
    assert got == [None] and types(journal) == ["late"]


def test_the_prefix_rule_holds_across_the_chunks_of_a_batch(tmp_path):
    store = SqlStore.open(str(tmp_path / "chunks.db"))
    migrate.upgrade(store.engine)
    journal = Journal(store.engine, max_batch=2)
    try:
        journal.write([created("e1")]).result(timeout=10)
        bad = LogEntry(execution_id="e1", type="bad", at=NOW, steps={"s": {"no_such_column": 1}})
        with journal._paused():  # one batch of three, committed in chunks of two
            results = [journal.write([note("before")]), journal.write([bad])]
            results.append(journal.write([note("after")]))
        errors = [f.exception(timeout=10) for f in results]
        assert errors[0] is None and errors[2] is errors[1] is not None
        assert types(journal) == ["before"]
    finally:
        journal.close()
        store.close()


def test_an_executions_later_changes_are_not_recorded_without_its_earlier_ones(journal):
    bad = LogEntry(execution_id="e1", type="bad", at=NOW, steps={"s": {"no_such_column": 1}})
    with journal._paused():  # all four go in one batch, which fails and is retried one by one
        results = [
            journal.write([note("before")]),
            journal.write([bad]),
            journal.write([note("after")]),
            journal.write([created("e2")]),
        ]
    errors = [f.exception(timeout=10) for f in results]
    assert errors[0] is None and errors[3] is None  # others are not held up
    assert errors[1] is not None and errors[2] is errors[1]  # "after" is not recorded alone
    assert types(journal) == ["before"]
    assert [e.type for e in journal.events("e2")] == ["execution.running"]
