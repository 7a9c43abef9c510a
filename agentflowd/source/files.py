"""Manifest files in a working tree: the paths a user names, directories walked recursively.

A directory contributes its ``*.yaml`` and ``*.yml`` files, in sorted order, skipping hidden
entries (``.git``, ``.github``). Symlinks met during a walk are reported, not followed: the
daemon refuses them in git too, so a local ``validate`` predicts what the daemon will do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentflowd.manifest import Limits, SourceFile

__all__ = ["MANIFEST_SUFFIXES", "discover_files"]

MANIFEST_SUFFIXES = (".yaml", ".yml")


def discover_files(paths: Sequence[Path], limits: Limits | None = None) -> list[SourceFile]:
    """Every manifest file named by ``paths`` (files, or directories walked recursively)."""
    limits = limits or Limits()
    out: list[SourceFile] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            out.extend(_read(p, limits) for p in _walk(path))
        else:
            out.append(_read(path, limits, named=True))
    return out


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        symlinked_dirs = [d for d in dirnames if (base / d).is_symlink()]
        for name in symlinked_dirs:
            dirnames.remove(name)
        names = [f for f in filenames if not f.startswith(".") and f.endswith(MANIFEST_SUFFIXES)]
        for name in sorted(names + symlinked_dirs):
            yield base / name


def _read(path: Path, limits: Limits, *, named: bool = False) -> SourceFile:
    shown = str(path)
    if path.is_symlink() and not named:
        target = os.readlink(path)
        return SourceFile(
            path=shown, error=f"symlink to {target!r} is not followed", code="symlink"
        )
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return SourceFile(
                path=shown,
                error=f"file is {size:,} bytes, over the limit of {limits.max_bytes:,} bytes",
                code="file-too-large",
            )
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        return SourceFile(path=shown, error=f"cannot read file: {exc.strerror}", code="unreadable")
    return SourceFile(path=shown, data=data)
