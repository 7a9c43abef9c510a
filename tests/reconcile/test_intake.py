"""The incremental intake: only changed blobs are read and validated; repo checks still see all."""

from __future__ import annotations

from agentflowd.reconcile.intake import Intake
from agentflowd.source.gitread import read_commit
from tests.conftest import commit, git, write_agents
from tests.manifests import named


def test_only_changed_files_are_read_and_validated(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, {f"w{i}.yaml": named(f"w{i}") for i in range(5)})
    intake = Intake()
    result = intake.load(read_commit(repo, first, unchanged=intake.known()).files)
    assert (result.loaded, len(result.desired), result.valid) == (5, 5, True)

    second = commit(repo, {"w1.yaml": named("w1").replace("gpt-4", "gpt-4o")})
    snapshot = read_commit(repo, second, unchanged=intake.known())
    assert sorted(f.path for f in snapshot.files if f.data is not None) == ["w1.yaml"]
    result = intake.load(snapshot.files)
    assert result.loaded == 1 and len(result.desired) == 5
    assert {d.name for d in result.desired} == {f"w{i}" for i in range(5)}

    # a new file that collides with a cached one: both become invalid
    third = commit(repo, {"dup.yaml": named("w2", hook="/elsewhere")})
    result = intake.load(read_commit(repo, third, unchanged=intake.known()).files)
    assert result.loaded == 1
    invalid = sorted((d.file, d.valid) for d in result.desired if d.name == "w2")
    assert invalid == [("dup.yaml", False), ("w2.yaml", False)]
    assert {e.code for e in result.errors} == {"duplicate-workflow"}

    # removing it heals the cached one, without reading anything
    fourth = commit(repo, {"dup.yaml": None})
    result = intake.load(read_commit(repo, fourth, unchanged=intake.known()).files)
    assert result.loaded == 0 and result.valid


def test_files_of_other_revisions_are_evicted(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    intake = Intake()
    intake.load(read_commit(repo, first).files)
    second = commit(repo, {"b.yaml": None})
    intake.load(read_commit(repo, second, unchanged=intake.known()).files)
    assert len(intake.known()) == 1


def test_invalid_and_broken_files_are_cached_with_their_errors(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    sha = commit(
        repo, {"bad.yaml": named("bad").replace("cpu: 200m", "cpu: x"), "broken.yaml": "a: ["}
    )
    intake = Intake()
    first = intake.load(read_commit(repo, sha).files)
    again = intake.load(read_commit(repo, sha, unchanged=intake.known()).files)
    assert again.loaded == 0
    assert [e.format() for e in again.errors] == [e.format() for e in first.errors]
    assert again.broken_files == frozenset({"broken.yaml"})
    assert [d.valid for d in again.desired] == [False]


def test_renamed_and_copied_files_are_read_again(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    intake = Intake()
    first = commit(repo, {"a.yaml": named("a"), "b.yaml": named("b")})
    intake.load(read_commit(repo, first).files)
    git(repo, "mv", "a.yaml", "a2.yaml")
    (repo / "copy.yaml").write_text(named("b"), encoding="utf-8")  # same blob as b.yaml
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "rename and copy")
    result = intake.load(read_commit(repo, "HEAD", unchanged=intake.known()).files)
    assert result.loaded == 2  # a2.yaml and copy.yaml: known blobs at new paths
    assert sorted(d.file for d in result.desired if d.name == "a") == ["a2.yaml"]
    assert {e.code for e in result.errors} == {"duplicate-workflow", "duplicate-webhook"}


def test_version_hashes_are_kept_until_an_image_changes(tmp_path):
    repo = write_agents(tmp_path / "r")
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, {f"w{i}.yaml": named(f"w{i}") for i in range(3)})
    intake = Intake()
    snapshot = read_commit(repo, first, unchanged=intake.known())
    before = intake.load(snapshot.files, images=snapshot.images).desired
    assert all(d.images and d.valid for d in before)

    second = commit(repo, {"w1.yaml": named("w1").replace("gpt-4", "gpt-4o")})
    snapshot = read_commit(repo, second, unchanged=intake.known())
    after = intake.load(snapshot.files, images=snapshot.images).desired
    assert [a is b for a, b in zip(before, after, strict=True)] == [True, False, True]

    third = commit(repo, {"agents/qa/v0.8/agent.py": "def run(input):\n    return {'v': 2}\n"})
    snapshot = read_commit(repo, third, unchanged=intake.known())
    changed = intake.load(snapshot.files, images=snapshot.images).desired
    assert all(c.spec_hash != a.spec_hash for a, c in zip(after, changed, strict=True))
    assert [c.spec_json == a.spec_json for a, c in zip(after, changed, strict=True)] == [True] * 3
