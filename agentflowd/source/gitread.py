"""Manifests of one git commit, read straight from its tree (no checkout), with pygit2.

This is what ``agentflow validate --git REF`` and the reconciler read: the exact bytes committed,
whatever the working tree holds. Symlinks are refused (a link to ``/etc/passwd`` must never be
read), sizes are checked from the object header before a blob is loaded, and paths cannot leave
the requested sub-directory because they are walked from the tree, never joined from strings.

pygit2 objects are not thread-safe: call this from one thread per repository.
"""

from __future__ import annotations

import posixpath
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType

from agentflowd.errors import RevisionNotFound, SourceError
from agentflowd.manifest import Limits, SourceFile
from agentflowd.source.files import MANIFEST_SUFFIXES
from agentflowd.source.images import GitImages

__all__ = ["GitSnapshot", "read_commit"]

# Blobs are read once per content and their results cached by the caller (the reconciler's
# intake): libgit2 keeping them too would only hold memory.
pygit2.settings.cache_object_limit(ObjectType.BLOB, 0)


@dataclass(frozen=True, kw_only=True)
class GitSnapshot:
    """The manifests of one commit."""

    commit: str
    ref: str
    files: list[SourceFile]
    images: GitImages
    author: str = ""  # "Name <email>" of the commit's author (the audit log's actor)


def read_commit(
    repo_dir: Path,
    ref: str,
    subpaths: Sequence[str] = (),
    limits: Limits | None = None,
    *,
    unchanged: Container[tuple[str, str]] = frozenset(),
    digests: dict[str, tuple[str, int]] | None = None,
) -> GitSnapshot:
    """Read the manifest files of ``ref`` (a branch, tag, sha or ``HEAD~1``) in ``repo_dir``.

    Every file carries its blob id as ``key``; ``(path, blob id)`` pairs listed in
    ``unchanged`` are not read (``code="unchanged"``, no data): the caller has them already.
    The snapshot's ``images`` finds agent images in the whole commit (``digests`` remembers
    image hashes by blob id between calls).
    """
    limits = limits or Limits()
    found = pygit2.discover_repository(str(repo_dir))
    if found is None:
        raise SourceError(f"{repo_dir} is not inside a git repository", revision=ref)
    repo = pygit2.Repository(found)
    try:
        commit = repo.revparse_single(ref).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RevisionNotFound(ref, str(repo_dir)) from exc
    files: list[SourceFile] = []
    seen: set[str] = set()
    total = 0
    for root in _roots(subpaths, ref):
        tree: pygit2.Object = commit.tree
        if root:
            try:
                tree = commit.tree[root]
            except KeyError as exc:
                raise SourceError(f"path {root!r} does not exist at {ref}", revision=ref) from exc
        if tree.type == ObjectType.BLOB or tree.filemode == FileMode.LINK:
            read = [_blob(repo, tree, root, limits, unchanged)]
        elif isinstance(tree, pygit2.Tree):
            read = []
            _walk(repo, tree, root, limits, read, unchanged)
        else:
            raise SourceError(f"path {root!r} is a submodule, not part of {ref}", revision=ref)
        for source in read:
            if source.path not in seen:
                seen.add(source.path)
                files.append(source)
                total += len(source.data or b"")
        if len(files) > limits.max_files:
            raise SourceError(
                f"{ref} has more than {limits.max_files:,} manifest files; refusing the tree",
                revision=ref,
            )
        if total > limits.max_total_bytes:
            raise SourceError(
                f"{ref} has more than {limits.max_total_bytes:,} bytes of manifests; "
                "refusing the tree",
                revision=ref,
            )
    images = GitImages(repo, commit.tree, digests=digests)
    author = f"{commit.author.name} <{commit.author.email}>"
    return GitSnapshot(commit=str(commit.id), ref=ref, files=files, images=images, author=author)


def _roots(subpaths: Sequence[str], ref: str) -> list[str]:
    """Sub-paths as tree paths: ``.``, ``./a`` and ``a/`` work; nothing may leave the tree."""
    roots: list[str] = []
    for raw in subpaths or [""]:
        if raw.startswith("/"):
            raise SourceError(f"path {raw!r} must be relative to the repository root", revision=ref)
        norm = posixpath.normpath(raw) if raw else "."
        if norm == ".." or norm.startswith("../"):
            raise SourceError(f"path {raw!r} leaves the repository", revision=ref)
        roots.append("" if norm == "." else norm)
    return roots


def _walk(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    prefix: str,
    limits: Limits,
    out: list[SourceFile],
    unchanged: Container[tuple[str, str]] = frozenset(),
) -> None:
    stack = [(tree, prefix)]
    while stack:
        current, base = stack.pop()
        entries = sorted(current, key=lambda e: e.name or "")
        subtrees = []
        for entry in entries:
            name = entry.name or ""
            path = f"{base}/{name}" if base else name
            if name.startswith("."):
                continue
            if entry.filemode == FileMode.TREE:
                subtrees.append((repo[entry.id], path))
            elif name.endswith(MANIFEST_SUFFIXES):
                out.append(_blob(repo, entry, path, limits, unchanged))
        stack.extend(reversed(subtrees))  # type: ignore[arg-type]


def _blob(
    repo: pygit2.Repository,
    entry: pygit2.Object,
    path: str,
    limits: Limits,
    unchanged: Container[tuple[str, str]] = frozenset(),
) -> SourceFile:
    if entry.filemode == FileMode.LINK:
        target = repo[entry.id].data.decode("utf-8", "replace")  # type: ignore[attr-defined]
        return SourceFile(path=path, error=f"symlink to {target!r} is refused", code="symlink")
    if entry.filemode == FileMode.COMMIT:
        return SourceFile(path=path, error="a submodule is not a manifest", code="submodule")
    key = str(entry.id)
    if (path, key) in unchanged:
        return SourceFile(path=path, key=key, code="unchanged")
    _type, size = repo.odb.read_header(entry.id)
    if size > limits.max_bytes:
        return SourceFile(
            path=path,
            error=f"file is {size:,} bytes, over the limit of {limits.max_bytes:,} bytes",
            code="file-too-large",
            key=key,
        )
    blob = repo[entry.id]
    assert isinstance(blob, pygit2.Blob)
    return SourceFile(path=path, data=blob.data, key=key)
