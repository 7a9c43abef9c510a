"""Manifest files in a working tree: the paths a user names, directories walked recursively.

A directory contributes its ``*.yaml`` and ``*.yml`` files, in sorted order, skipping hidden
entries (``.git``, ``.github``), symlinked directories and submodule checkouts. A symlinked
manifest met during a walk is reported, not followed: the daemon refuses it in git too, so a
local ``validate`` predicts what the daemon will do. Paths named on the command line are
followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentflowd.manifest import Limits, SourceFile

__all__ = ["MANIFEST_SUFFIXES", "discover_files"]

MANIFEST_SUFFIXES = (".yaml", ".yml")


def discover_files(paths: Sequence[Path], limits: Limits | None = None) -> list[SourceFile]:
    """Every manifest file named by ``paths`` (files, or directories walked recursively).

    A file reached twice (named and inside a named directory) is read once.
    """
    limits = limits or Limits()
    out: list[SourceFile] = []
    seen: set[Path] = set()
    for path in paths:
        found = _walk(path) if path.is_dir() else iter([path])
        for item in found:
            key = item.resolve() if not item.is_symlink() else item.absolute()
            if key in seen:
                continue
            seen.add(key)
            out.append(_read(item, limits, named=item == path))
    return out


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        # hidden directories, symlinked directories (git stores those as links, which the
        # daemon never follows) and submodule checkouts (not part of this repository's tree)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and not (base / d).is_symlink()
            and not (base / d / ".git").exists()
        )
        names = [f for f in filenames if not f.startswith(".") and f.endswith(MANIFEST_SUFFIXES)]
        for name in sorted(names):
            yield base / name


def _read(path: Path, limits: Limits, *, named: bool = False) -> SourceFile:
    shown = str(path)
    if path.is_symlink() and not named:
        target = os.readlink(path)
        return SourceFile(
            path=shown, error=f"symlink to {target!r} is not followed", code="symlink"
        )
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return SourceFile(path=shown, error="not a regular file", code="unreadable")
        if info.st_size > limits.max_bytes:
            return SourceFile(
                path=shown,
                error=f"file is {info.st_size:,} bytes, "
                f"over the limit of {limits.max_bytes:,} bytes",
                code="file-too-large",
            )
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        return SourceFile(path=shown, error=f"cannot read file: {exc.strerror}", code="unreadable")
    if len(data) > limits.max_bytes:  # grew since stat
        return SourceFile(
            path=shown,
            error=f"file is over the limit of {limits.max_bytes:,} bytes",
            code="file-too-large",
        )
    return SourceFile(path=shown, data=data)
