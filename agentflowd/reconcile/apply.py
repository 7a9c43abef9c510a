"""Carrying a plan out: one store transaction per workflow, so a crash between two leaves a
state the next pass converges from (it plans again and finds the applied ones unchanged)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentflowd.manifest import ResolvedImage
from agentflowd.reconcile.plan import Action, Change, Plan
from agentflowd.store import AgentImage, HistoryAction, Origin, Store, WorkflowWrite

__all__ = ["ApplyResult", "apply_plan"]


@dataclass(kw_only=True)
class ApplyResult:
    """What was written, per action."""

    applied: list[Change] = field(default_factory=list)
    reported: list[Change] = field(default_factory=list)


def apply_plan(
    plan: Plan,
    store: Store,
    *,
    revision: str,
    now: datetime,
    read_image: Callable[[ResolvedImage], bytes] | None = None,
) -> ApplyResult:
    """Apply every writing change of ``plan`` from git ``revision``.

    The images of every written version are put in the store first (by content, once), so a
    stored version never names an image the store cannot hand to a runner.
    """
    result = ApplyResult()
    for change in plan.changes:
        if not change.writes:
            result.reported.append(change)
            continue
        if change.action in (Action.CREATE, Action.UPDATE) and change.desired is not None:
            store_images(change.desired.images, store, read_image, now=now)
        _apply_one(change, store, revision=revision, now=now)
        result.applied.append(change)
    return result


def store_images(
    images: Sequence[ResolvedImage],
    store: Store,
    read_image: Callable[[ResolvedImage], bytes] | None,
    *,
    now: datetime,
) -> None:
    """Put the contents of ``images`` the store lacks into it."""
    missing = store.missing_images(i.sha256 for i in images)
    for image in images:
        if image.sha256 not in missing:
            continue
        if read_image is None:
            raise ValueError(f"image {image.ref!r} is not stored and nothing can read it")
        content = read_image(image)
        store.put_image(AgentImage(sha256=image.sha256, kind=image.kind, content=content), now=now)
        missing.discard(image.sha256)


def _write(change: Change, revision: str) -> WorkflowWrite:
    desired = change.desired
    assert desired is not None and desired.spec_hash is not None
    return WorkflowWrite(
        name=change.name,
        origin=Origin.GIT,
        spec=desired.spec,
        spec_hash=desired.spec_hash,
        revision=revision,
        file=desired.file,
        images={i.ref: i.record() for i in desired.images},
    )


def _apply_one(change: Change, store: Store, *, revision: str, now: datetime) -> None:
    if change.action is Action.CREATE:
        store.put_workflow(_write(change, revision), action=HistoryAction.CREATE, now=now)
    elif change.action is Action.UPDATE:
        store.put_workflow(_write(change, revision), action=HistoryAction.UPDATE, now=now)
    elif change.action is Action.DELETE:
        store.delete_workflow(change.name)
    elif change.action is Action.KEEP_INVALID:
        diagnostics: list[dict[str, Any]] = list(
            change.desired.diagnostics if change.desired else ()
        )
        store.set_error(change.name, diagnostics, revision, now=now)
    else:
        if change.clear_error:
            store.set_error(change.name, None, None, now=now)
        if change.moved and change.desired is not None:
            store.set_file(change.name, change.desired.file, now=now)
