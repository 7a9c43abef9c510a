"""Deciding what to change: ``plan(desired, actual) -> Plan``, a pure function.

Desired state is what the git revision says (every named manifest, valid or not); actual state
is what the store holds. Workflows are compared by canonical hash, so only a change of meaning
is a change. The planner decides, per workflow name, exactly one :class:`Action`; an executor
(:mod:`agentflowd.reconcile.apply`) carries the plan out. No I/O, no clock, no logging here
(kopf's ``detect_changing_cause`` is the model), which is what makes it table-testable.

The rules that protect a running system:

* an invalid new version never replaces a good one: the last good version stays active and the
  error is recorded on it (``KEEP_INVALID``);
* a workflow whose file cannot be read at all (syntax error, too large, a symlink) is kept, not
  pruned: its name cannot be known, so its absence means nothing (``KEEP_BROKEN_FILE``);
* a pinned workflow (after a rollback) is left alone until unpinned (``SKIP_PINNED``);
* a name owned by the API is never taken over by git (``CONFLICT``);
* removal happens only with pruning on (``DELETE``), else it is reported (``ORPHAN``).
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentflowd.manifest.images import ResolvedImage

__all__ = ["Action", "Actual", "Change", "Desired", "Plan", "plan"]


class Action(enum.StrEnum):
    """What happens to one workflow."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    KEEP_INVALID = "keep-invalid"
    REJECT_INVALID = "reject-invalid"
    KEEP_BROKEN_FILE = "keep-broken-file"
    SKIP_PINNED = "skip-pinned"
    CONFLICT = "conflict"
    ORPHAN = "orphan"


#: Actions that write to the store (the others only report).
WRITES = frozenset({Action.CREATE, Action.UPDATE, Action.DELETE, Action.KEEP_INVALID})
#: Actions that make a revision's sync result a failure.
FAILS = frozenset({Action.KEEP_INVALID, Action.REJECT_INVALID, Action.CONFLICT})


@dataclass(frozen=True, kw_only=True)
class Desired:
    """A named manifest of the revision; ``spec_json`` is None when it is invalid.

    The canonical spec is kept as its JSON text: compact enough to cache for thousands of
    workflows, parsed only for the few that are written.
    """

    name: str
    file: str
    line: int = 0
    spec_json: str | None = None
    spec_hash: str | None = None  # the version hash: spec and image contents
    diagnostics: tuple[dict[str, Any], ...] = ()
    images: tuple[ResolvedImage, ...] = ()

    @property
    def valid(self) -> bool:
        """True when this manifest can be applied."""
        return self.spec_json is not None and self.spec_hash is not None and not self.diagnostics

    @property
    def spec(self) -> dict[str, Any]:
        """The canonical spec (parsed from ``spec_json``)."""
        if self.spec_json is None:
            raise ValueError(f"workflow {self.name!r} is invalid: it has no spec")
        value: dict[str, Any] = json.loads(self.spec_json)
        return value


@dataclass(frozen=True, kw_only=True)
class Actual:
    """What the planner needs to know of a stored workflow."""

    name: str
    origin: str  # "git" | "api"
    spec_hash: str
    file: str | None = None
    pinned_revision: str | None = None
    has_error: bool = False


@dataclass(frozen=True, kw_only=True)
class Change:
    """The decision for one workflow, with the reason a person would want to read."""

    action: Action
    name: str
    reason: str
    desired: Desired | None = None
    actual: Actual | None = None
    clear_error: bool = False
    moved: bool = False  # same meaning, now in another file: record the new file

    @property
    def writes(self) -> bool:
        """True when carrying this change out touches the store."""
        return self.action in WRITES or self.clear_error or self.moved


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every workflow's change, sorted by name."""

    changes: tuple[Change, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        """How many workflows got each action (only actions that occur)."""
        return dict(sorted(Counter(c.action.value for c in self.changes).items()))

    @property
    def writes(self) -> bool:
        """True when applying the plan changes anything."""
        return any(c.writes for c in self.changes)

    @property
    def failed(self) -> bool:
        """True when some workflow of the revision could not be applied as written."""
        return any(c.action in FAILS for c in self.changes)

    def by_action(self, action: Action) -> list[Change]:
        """The changes with ``action``."""
        return [c for c in self.changes if c.action is action]


def _merge(named: Sequence[Desired]) -> Desired:
    """One desired entry per name; several manifests of one name are one invalid entry."""
    if len(named) == 1:
        return named[0]
    diagnostics = tuple(d for entry in named for d in entry.diagnostics)
    return Desired(
        name=named[0].name, file=named[0].file, line=named[0].line, diagnostics=diagnostics
    )


def plan(
    desired: Sequence[Desired],
    actual: Mapping[str, Actual],
    *,
    broken_files: frozenset[str] = frozenset(),
    prune: bool = True,
) -> Plan:
    """Decide the change of every workflow named in ``desired`` or ``actual``."""
    grouped: dict[str, list[Desired]] = {}
    for entry in desired:
        grouped.setdefault(entry.name, []).append(entry)
    changes: list[Change] = []
    for name in sorted(set(grouped) | set(actual)):
        have = actual.get(name)
        if name in grouped:
            changes.append(_decide(_merge(grouped[name]), have))
        elif have is not None:
            changes.append(_absent(have, broken_files, prune))
    return Plan(changes=tuple(changes))


def _decide(want: Desired, have: Actual | None) -> Change:
    if have is not None and have.origin != "git":
        return Change(
            action=Action.CONFLICT,
            name=want.name,
            desired=want,
            actual=have,
            reason=f"workflow {want.name!r} was applied through the API; delete it there first",
        )
    if have is not None and have.pinned_revision is not None:
        if not want.valid or have.spec_hash != want.spec_hash:
            return Change(
                action=Action.SKIP_PINNED,
                name=want.name,
                desired=want,
                actual=have,
                reason=f"pinned at {have.pinned_revision[:12]} by a rollback; "
                "`unpin` to follow git",
            )
    if not want.valid:
        if have is None:
            return Change(
                action=Action.REJECT_INVALID,
                name=want.name,
                desired=want,
                reason="invalid, and no earlier version to keep",
            )
        return Change(
            action=Action.KEEP_INVALID,
            name=want.name,
            desired=want,
            actual=have,
            reason="invalid; the last good version stays active",
        )
    if have is None:
        return Change(action=Action.CREATE, name=want.name, desired=want, reason="new")
    if have.spec_hash == want.spec_hash:
        moved = have.file != want.file
        return Change(
            action=Action.UNCHANGED,
            name=want.name,
            desired=want,
            actual=have,
            reason=f"unchanged; moved from {have.file}" if moved else "unchanged",
            clear_error=have.has_error,
            moved=moved,
        )
    return Change(action=Action.UPDATE, name=want.name, desired=want, actual=have, reason="changed")


def _absent(have: Actual, broken_files: frozenset[str], prune: bool) -> Change:
    if have.origin != "git":
        return Change(
            action=Action.UNCHANGED, name=have.name, actual=have, reason="applied through the API"
        )
    if have.pinned_revision is not None:
        return Change(
            action=Action.SKIP_PINNED,
            name=have.name,
            actual=have,
            reason=f"removed from git, but pinned at {have.pinned_revision[:12]}; `unpin` first",
        )
    if have.file is not None and have.file in broken_files:
        return Change(
            action=Action.KEEP_BROKEN_FILE,
            name=have.name,
            actual=have,
            reason=f"its file {have.file} cannot be read; the last good version stays active",
        )
    if not prune:
        return Change(
            action=Action.ORPHAN,
            name=have.name,
            actual=have,
            reason="removed from git; kept because pruning is off",
        )
    return Change(action=Action.DELETE, name=have.name, actual=have, reason="removed from git")
