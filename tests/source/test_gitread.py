"""Reading manifests from a git commit: exact bytes, no checkout, hostile trees refused."""

from __future__ import annotations

import os

import pytest

from agentflowd.errors import RevisionNotFound, SourceError
from agentflowd.manifest import Limits
from agentflowd.source import read_commit
from tests.conftest import git
from tests.manifests import named


def test_reads_manifests_of_a_commit_in_path_order(git_repo):
    repo = git_repo(
        {"b.yaml": named("b"), "a/x.yml": named("x"), "notes.txt": "no", ".ci/c.yaml": "x"}
    )
    snap = read_commit(repo, "HEAD")
    assert snap.commit == git(repo, "rev-parse", "HEAD")
    assert [f.path for f in snap.files] == ["b.yaml", "a/x.yml"]
    assert snap.files[0].data == named("b").encode()


def test_symlinks_in_a_commit_are_refused(git_repo, tmp_path):
    repo = git_repo({"a.yaml": named("a")})
    os.symlink("/etc/passwd", repo / "passwd.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evil")
    files = {f.path: f for f in read_commit(repo, "HEAD").files}
    assert files["passwd.yaml"].data is None
    assert files["passwd.yaml"].error == "symlink to '/etc/passwd' is refused"
    assert files["a.yaml"].data is not None


def test_oversized_blobs_are_refused_from_the_header(git_repo):
    repo = git_repo({"big.yaml": b"a: " + b"x" * 5000 + b"\n", "a.yaml": named("a")})
    files = {f.path: f for f in read_commit(repo, "HEAD", limits=Limits(max_bytes=4096)).files}
    assert files["big.yaml"].code == "file-too-large"
    assert "5,004 bytes, over the limit of 4,096" in (files["big.yaml"].error or "")


def test_unknown_ref_and_not_a_repo(git_repo, tmp_path):
    repo = git_repo({"a.yaml": named("a")})
    with pytest.raises(RevisionNotFound) as info:
        read_commit(repo, "v9.9")
    assert isinstance(info.value, LookupError)
    empty = tmp_path / "plain"
    empty.mkdir()
    with pytest.raises(SourceError, match="not inside a git repository"):
        read_commit(empty, "HEAD")


def test_a_named_file_inside_the_commit(git_repo):
    repo = git_repo({"w/a.yaml": named("a"), "w/b.yaml": named("b")})
    assert [f.path for f in read_commit(repo, "HEAD", ["w/b.yaml"]).files] == ["w/b.yaml"]


def test_oversized_trees_are_refused(git_repo):
    repo = git_repo({f"w{i}.yaml": named(f"w{i}") for i in range(12)})
    with pytest.raises(SourceError, match="more than 10 manifest files; refusing the tree"):
        read_commit(repo, "HEAD", limits=Limits(max_files=10))
    with pytest.raises(SourceError, match="bytes of manifests; refusing the tree"):
        read_commit(repo, "HEAD", limits=Limits(max_total_bytes=5000))


def test_tree_entries_cannot_escape(git_repo):
    import pygit2

    repo_dir = git_repo({"a.yaml": named("a")})
    repo = pygit2.Repository(str(repo_dir))
    blob = repo.create_blob(b"kind: x\n")
    builder = repo.TreeBuilder()
    for hostile in ("..", "../x.yaml", "a/b.yaml"):
        with pytest.raises((ValueError, pygit2.GitError)):
            builder.insert(hostile, blob, pygit2.enums.FileMode.BLOB)
