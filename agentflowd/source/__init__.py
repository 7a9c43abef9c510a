"""Where manifests come from: files on disk and commits of a git repository.

Each reader turns its source into :class:`agentflowd.manifest.SourceFile` values, refusing what
the daemon must never follow (symlinks, oversized files) with a per-file diagnostic, so the
manifest package stays free of I/O.
"""

from __future__ import annotations

from agentflowd.source.files import discover_files
from agentflowd.source.gitread import GitSnapshot, read_commit
from agentflowd.source.images import DirectoryImages, GitImages

__all__ = ["DirectoryImages", "GitImages", "GitSnapshot", "discover_files", "read_commit"]
