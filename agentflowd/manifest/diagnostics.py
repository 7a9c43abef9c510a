"""Diagnostics: one problem found in a manifest, pinned to file:line:col and a field path.

Every check of the manifest package reports through this one value type, so the CLI, the
reconciler's commit statuses and the API all print the same line for the same problem:
``workflows/a.yaml:12:7: error: spec.agents[1].dependsOn[0]: unknown agent 'fetch'``.
Lines and columns are 1-based, as editors show them; ``line`` is 0 when the problem concerns
the whole file (unreadable, too large).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Diagnostic", "Severity", "format_path"]

PathElem = str | int


class Severity(enum.StrEnum):
    """How bad a diagnostic is: an error makes the manifest invalid, a warning does not."""

    ERROR = "error"
    WARNING = "warning"


def format_path(path: Sequence[PathElem]) -> str:
    """Render a field path as users write it: ``spec.agents[1].dependsOn[0]``."""
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            out += f".{elem}" if out else elem
    return out


@dataclass(frozen=True, kw_only=True, order=True)
class Diagnostic:
    """One problem in one file; ordered by file, line and column for stable reports."""

    file: str
    line: int = 0
    col: int = 0
    path: str = ""
    message: str
    code: str
    severity: Severity = Severity.ERROR

    def location(self) -> str:
        """``file:line:col``, or ``file`` alone when the problem concerns the whole file."""
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"

    def format(self) -> str:
        """The one-line human form used by the CLI and in commit status descriptions."""
        where = f"{self.path}: " if self.path else ""
        return f"{self.location()}: {self.severity.value}: {where}{self.message}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``agentflow validate --format json``, the API)."""
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "code": self.code,
            "severity": self.severity.value,
        }
