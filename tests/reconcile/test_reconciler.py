"""The reconcile loop on a real git repository, with statuses written as git notes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentflowd.reconcile import GitNotesSink, MemorySink, Reconciler
from agentflowd.source.git import GitSource
from agentflowd.store import MemoryStore, RevisionState, Store
from tests.conftest import commit, git, init_repo
from tests.manifests import VALID, named


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    init_repo(path)
    return path


def make(
    repo: Path, tmp_path: Path, store: Store | None = None, **kw
) -> tuple[Reconciler, MemorySink]:
    sink = MemorySink()
    reconciler = Reconciler(
        source=GitSource(str(repo), branch="main", state_dir=tmp_path / "state"),
        store=store or MemoryStore(),
        sinks=[sink, GitNotesSink(repo)],
        clock=Clock(),
        api_url="http://127.0.0.1:8080",
        **kw,
    )
    return reconciler, sink


def test_first_sync_creates_and_reports_success(repo, tmp_path):
    sha = commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    reconciler, sink = make(repo, tmp_path)
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.SUCCESS
    assert sorted(reconciler.store.workflows()) == ["a", "b"]
    assert [(s.state.value, s.description) for s in sink.posted] == [
        ("pending", f"reconciling {sha[:12]}"),
        ("success", "2 workflows: 2 create"),
    ]
    assert (
        sink.posted[-1].target_url == f"http://127.0.0.1:8080/api/v1/revisions/{outcome.record.id}"
    )
    notes = GitNotesSink(repo).read(sha)
    assert [n["state"] for n in notes] == ["pending", "success"]
    assert notes[0]["context"] == "agentflow/sync"
    # users read them with plain git
    assert '"state":"success"' in git(repo, "log", "-1", "--notes=agentflow", "--format=%N")


def test_unchanged_commit_does_nothing(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, sink = make(repo, tmp_path)
    reconciler.sync()
    posted = len(sink.posted)
    outcome = reconciler.sync()
    assert outcome.noop and len(sink.posted) == posted
    assert len(reconciler.store.revisions()) == 1


def test_invalid_new_version_keeps_the_last_good_one(repo, tmp_path):
    commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    reconciler, sink = make(repo, tmp_path)
    reconciler.sync()
    good = reconciler.store.get_workflow("a")
    bad = named("a").replace("dependsOn: [respond]", "dependsOn: [nobody]")
    sha = commit(repo, {"a.yaml": bad, "b.yaml": named("b").replace("gpt-4", "gpt-4o")})
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.FAILURE
    kept = reconciler.store.get_workflow("a")
    assert kept.spec_hash == good.spec_hash and kept.generation == 1
    assert kept.error_revision == sha and kept.last_error[0]["line"] == 28
    assert reconciler.store.get_workflow("b").generation == 2  # the valid one still applied
    assert sink.posted[-1].state is RevisionState.FAILURE
    assert sink.posted[-1].description.startswith("a.yaml:28: unknown agent 'nobody'")
    # fixing it clears the error
    commit(repo, {"a.yaml": named("a")})
    assert reconciler.sync().state is RevisionState.SUCCESS
    assert reconciler.store.get_workflow("a").last_error is None


def test_removed_workflows_are_pruned_but_unreadable_files_keep_theirs(repo, tmp_path):
    commit(repo, {"a.yaml": named("a"), "b.yaml": named("b"), "c.yaml": named("c")})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    commit(repo, {"a.yaml": None, "b.yaml": "apiVersion: [unclosed\n"})
    outcome = reconciler.sync()
    assert sorted(reconciler.store.workflows()) == ["b", "c"]
    assert outcome.plan.counts() == {"delete": 1, "keep-broken-file": 1, "unchanged": 1}
    assert outcome.state is RevisionState.FAILURE


def test_prune_off_keeps_removed_workflows(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, _ = make(repo, tmp_path, prune=False)
    reconciler.sync()
    commit(repo, {"a.yaml": None, "b.yaml": named("b")})
    outcome = reconciler.sync()
    assert sorted(reconciler.store.workflows()) == ["a", "b"]
    assert outcome.plan.counts() == {"create": 1, "orphan": 1}


def test_hostile_repository_fails_cleanly(repo, tmp_path):
    import os

    commit(repo, {"a.yaml": named("a")})
    os.symlink("/etc/passwd", repo / "passwd.yaml")
    (repo / "big.yaml").write_bytes(b"a: " + b"x" * 2_000_000)
    (repo / "laughs.yaml").write_text(
        "a0: &a0 [x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile")
    reconciler, sink = make(repo, tmp_path)
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.FAILURE
    assert sorted(reconciler.store.workflows()) == ["a"]
    codes = sorted(d.code for d in outcome.diagnostics)
    assert codes == ["file-too-large", "symlink", "yaml-alias-bomb"]


def test_missing_sub_path_is_a_failure_not_a_crash(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    sink = MemorySink()
    reconciler = Reconciler(
        source=GitSource(str(repo), path="workflows", state_dir=tmp_path),
        store=MemoryStore(),
        sinks=[sink],
        clock=Clock(),
    )
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.FAILURE
    assert "path 'workflows' does not exist" in sink.posted[-1].description


def test_a_crash_mid_apply_converges_on_the_next_pass(repo, tmp_path):
    commit(repo, {f"w{i}.yaml": named(f"w{i}") for i in range(5)})

    class Crashing(MemoryStore):
        writes = 0

        def put_workflow(self, *args, **kw):
            Crashing.writes += 1
            if Crashing.writes == 3:
                raise KeyboardInterrupt("kill -9")  # not an AgentFlowError: nothing catches it
            return super().put_workflow(*args, **kw)

    store = Crashing()
    reconciler, _ = make(repo, tmp_path, store=store)
    with pytest.raises(KeyboardInterrupt):
        reconciler.sync()
    assert len(store.workflows()) == 2
    outcome = reconciler.sync()  # the same commit again: not recorded as applied
    assert outcome.state is RevisionState.SUCCESS
    assert sorted(store.workflows()) == [f"w{i}" for i in range(5)]
    assert outcome.plan.counts() == {"create": 3, "unchanged": 2}


def test_an_outcome_carries_the_error_that_ended_its_revision(repo, tmp_path):
    from agentflowd.errors import StoreUnavailable

    commit(repo, {"a.yaml": named("a")})

    class Blip(MemoryStore):
        gone = True

        def put_workflow(self, *args, **kw):
            if self.gone:
                self.gone = False
                raise StoreUnavailable("database unavailable: terminating connection")
            return super().put_workflow(*args, **kw)

    reconciler, _ = make(repo, tmp_path, store=Blip())
    outcome = reconciler.sync()  # the database came back in time to record the revision
    assert outcome.state is RevisionState.ERROR
    assert isinstance(outcome.error, StoreUnavailable)  # readiness does not count this pass
    commit(repo, {"b.yaml": "{"})
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.FAILURE and outcome.error is None  # b.yaml is broken
    assert sorted(reconciler.store.workflows()) == ["a"]


def test_git_notes_keep_one_line_per_state_across_rereconciles(repo, tmp_path):
    sha = commit(repo, {"a.yaml": VALID})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    reconciler.sync(force=True)  # (or a new leader doing a pass its predecessor began)
    states = [n["state"] for n in GitNotesSink(repo).read(sha)]
    assert states == ["pending", "success"]
    bad = commit(repo, {"a.yaml": VALID, "b.yaml": "kind: [unclosed"})
    reconciler.sync()
    assert [n["state"] for n in GitNotesSink(repo).read(bad)] == ["pending", "failure"]


def test_rollback_pins_and_unpin_follows_git_again(repo, tmp_path):
    first = commit(repo, {"a.yaml": named("a")})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    commit(repo, {"a.yaml": named("a").replace("gpt-4", "gpt-4o")})
    reconciler.sync()
    v2 = reconciler.store.get_workflow("a")
    rolled = reconciler.rollback("a", first[:8])
    assert rolled.pinned_revision == first and rolled.generation == 3
    assert rolled.spec_hash == reconciler.store.history("a")[2].spec_hash != v2.spec_hash
    # a new commit does not move a pinned workflow
    commit(repo, {"a.yaml": named("a").replace("gpt-4", "gpt-5")})
    outcome = reconciler.sync()
    assert outcome.plan.counts() == {"skip-pinned": 1}
    assert reconciler.store.get_workflow("a").spec_hash == rolled.spec_hash
    # unpin: git wins again
    outcome = reconciler.unpin("a")
    assert outcome.plan.counts() == {"update": 1}
    assert not reconciler.store.get_workflow("a").pinned


def test_rollback_by_generation_and_to_commits_older_than_the_history(repo, tmp_path):
    from agentflowd.errors import NotFound

    shas = [commit(repo, {"a.yaml": named("a").replace("gpt-4", f"gpt-{n}")}) for n in range(12)]
    reconciler, _ = make(repo, tmp_path)
    for n in range(12):
        reconciler.reconcile(shas[n])
    assert len(reconciler.store.history("a")) == 10
    assert reconciler.rollback("a", "gen:5").pinned_revision == shas[4]
    old = reconciler.rollback("a", shas[0])  # gone from the history: read from git
    assert "gpt-0" in str(old.spec)
    with pytest.raises(NotFound):
        reconciler.rollback("a", "gen:99")


def test_preview_plans_without_applying(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    git(repo, "checkout", "-q", "-b", "feature")
    sha = commit(repo, {"b.yaml": named("b"), "a.yaml": None})
    commit_id, report, the_plan = reconciler.preview("feature")
    assert commit_id == sha and report.valid
    assert the_plan.counts() == {"create": 1, "delete": 1}
    assert sorted(reconciler.store.workflows()) == ["a"]


def test_pull_request_refs_are_validated_never_applied(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, sink = make(repo, tmp_path)
    reconciler.sync()
    git(repo, "checkout", "-q", "-b", "good")
    good = commit(repo, {"b.yaml": named("b")})
    git(repo, "checkout", "-q", "-b", "bad")
    bad = commit(repo, {"c.yaml": named("c").replace("memory: 512Mi", "memory: 512m")})
    git(repo, "checkout", "-q", "main")
    outcomes = reconciler.validate_refs(["refs/heads/*"])
    assert [(o.sha, o.state.value) for o in outcomes] == [(bad, "failure"), (good, "success")]
    assert sorted(reconciler.store.workflows()) == ["a"]  # nothing applied
    validate = [s for s in sink.posted if s.context == "agentflow/validate"]
    assert [(s.sha, s.state.value) for s in validate] == [
        (bad, "pending"),
        (bad, "failure"),
        (good, "pending"),
        (good, "success"),
    ]
    assert validate[1].description.startswith("c.yaml:16: '512m' is not a memory size")
    assert validate[3].description == "valid; would 1 create against the deployed state"
    assert reconciler.validate_refs(["refs/heads/*"]) == []  # each commit once
    notes = GitNotesSink(repo).read(bad)
    assert [(n["context"], n["state"]) for n in notes] == [
        ("agentflow/validate", "pending"),
        ("agentflow/validate", "failure"),
    ]


def test_a_moved_workflow_keeps_its_new_file_and_survives_that_file_breaking(repo, tmp_path):
    both = named("alpha") + "---\n" + named("beta")
    commit(repo, {"a.yaml": both})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    outcome = (
        commit(repo, {"a.yaml": named("alpha"), "b.yaml": named("beta")}),
        reconciler.sync(),
    )[1]
    assert outcome.plan.counts() == {"unchanged": 2}
    assert reconciler.store.get_workflow("beta").file == "b.yaml"
    commit(repo, {"b.yaml": "metadata: {name: beta\n"})
    outcome = reconciler.sync()
    assert outcome.plan.counts() == {"keep-broken-file": 1, "unchanged": 1}
    assert sorted(reconciler.store.workflows()) == ["alpha", "beta"]


def test_recover_closes_interrupted_revisions_and_tells_git(repo, tmp_path):
    from agentflowd.store import RevisionKind

    sha = commit(repo, {"a.yaml": named("a")})
    store = MemoryStore()
    store.begin_revision(
        source="default", sha=sha, ref="refs/heads/main", kind=RevisionKind.SYNC, now=Clock()()
    )
    reconciler, sink = make(repo, tmp_path, store=store)
    (closed,) = reconciler.recover()
    assert closed.state is RevisionState.ERROR
    assert [(s.sha, s.context, s.state.value) for s in sink.posted] == [
        (sha, "agentflow/sync", "error")
    ]
    assert reconciler.sync().state is RevisionState.SUCCESS  # and it is reconciled again


def test_a_state_directory_follows_one_repository(repo, tmp_path):
    from agentflowd.daemon import _refuse_another_repository
    from agentflowd.errors import UsageError

    commit(repo, {"a.yaml": named("a")})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    _refuse_another_repository(reconciler.store, reconciler.source)  # same repo: fine
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    with pytest.raises(UsageError, match="this state directory follows"):
        _refuse_another_repository(
            reconciler.store, GitSource(str(other), state_dir=tmp_path / "s")
        )


def test_images_are_resolved_recorded_and_stored_by_content(repo, tmp_path):
    commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    reconciler, _ = make(repo, tmp_path)
    assert reconciler.sync().state is RevisionState.SUCCESS
    stored = reconciler.store.get_workflow("a")
    qa = stored.images["agents/qa:v0.8"]
    content = (repo / "agents/qa/v0.8/agent.py").read_bytes()
    assert qa["path"] == "agents/qa/v0.8/agent.py" and qa["kind"] == "python"
    assert qa["sha256"] == hashlib.sha256(content).hexdigest() and qa["size"] == len(content)
    assert reconciler.store.get_image(qa["sha256"]).content == content
    assert sorted(stored.images) == [
        "agents/classifier:v1.2",
        "agents/qa:v0.8",
        "agents/responder:v1.0",
    ]

    # new code under the same tag is a new version of every workflow that uses it
    commit(repo, {"agents/qa/v0.8/agent.py": "def run(input):\n    return {'ok': True}\n"})
    outcome = reconciler.sync()
    assert outcome.plan.counts() == {"update": 2}
    after = reconciler.store.get_workflow("a")
    assert after.generation == 2 and after.spec == stored.spec
    assert after.images["agents/qa:v0.8"]["sha256"] != qa["sha256"]
    # a built component beside it takes over
    commit(repo, {"agents/qa/v0.8/agent.wasm": "\0asm"})
    reconciler.sync()
    assert reconciler.store.get_workflow("a").images["agents/qa:v0.8"]["kind"] == "wasm"
    # rolling back restores the images of that version
    reconciler.rollback("a", "gen:1")
    assert reconciler.store.get_workflow("a").images == stored.images


def test_a_missing_image_is_a_validation_error_at_reconcile_time(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, sink = make(repo, tmp_path)
    reconciler.sync()
    commit(repo, {"agents/qa/v0.8/agent.py": None})
    outcome = reconciler.sync()
    assert outcome.state is RevisionState.FAILURE
    assert outcome.plan.counts() == {"keep-invalid": 1}
    assert sink.posted[-1].description.startswith(
        "a.yaml:27: image 'agents/qa:v0.8' not found: expected agents/qa/v0.8/agent.wasm"
    )
    kept = reconciler.store.get_workflow("a")
    assert kept.generation == 1 and kept.last_error[0]["code"] == "image-not-found"
    # a new workflow with a missing image is never applied
    commit(repo, {"c.yaml": named("c").replace("agents/qa:v0.8", "agents/nope")})
    outcome = reconciler.sync()
    assert "c" not in reconciler.store.workflows()
    assert any("agents/nope/latest/agent.py" in d.message for d in outcome.diagnostics)


def test_pull_request_validation_checks_images(repo, tmp_path):
    commit(repo, {"a.yaml": named("a")})
    reconciler, sink = make(repo, tmp_path)
    reconciler.sync()
    git(repo, "checkout", "-q", "-b", "feature")
    sha = commit(repo, {"b.yaml": named("b").replace("agents/qa:v0.8", "agents/qa:v0.9")})
    git(repo, "checkout", "-q", "main")
    [outcome] = reconciler.validate_refs(["refs/heads/feature"])
    assert outcome.sha == sha and outcome.state is RevisionState.FAILURE
    assert "image 'agents/qa:v0.9' not found" in sink.posted[-1].description


def test_changes_applied_from_git_are_audited_as_the_commit_and_its_author(repo, tmp_path):
    first = commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    reconciler, _ = make(repo, tmp_path)
    reconciler.sync()
    second = commit(repo, {"a.yaml": named("a").replace("team: cs", "team: ops"), "b.yaml": None})
    reconciler.sync()
    reconciler.sync()  # nothing changed: no row
    author = git(repo, "log", "-1", "--format=git:%an <%ae>")
    rows = list(reversed(reconciler.store.access.audit()))
    assert [(r.action, r.target, r.detail["commit"]) for r in rows] == [
        ("workflow.create", "a", first),
        ("workflow.create", "b", first),
        ("workflow.update", "a", second),
        ("workflow.delete", "b", second),
    ]
    assert {(r.actor, r.source, r.result) for r in rows} == {(author, "git", "ok")}
    assert rows[0].detail["file"] == "a.yaml"
