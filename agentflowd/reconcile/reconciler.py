"""The reconcile loop body: fetch, load, plan, apply, report — for one revision.

:meth:`Reconciler.sync` is called by the daemon whenever the source may have moved (a watched
ref changed, a poll, a push webhook, a manual ``agentflow sync``). It does nothing when the
branch still points at the last applied commit. Otherwise it records the revision as pending,
posts ``pending``, loads every manifest of the commit, plans against the store, applies the plan
one workflow per transaction, records the outcome, posts ``success`` or ``failure``, and only
then moves ``last_applied_sha``. A crash anywhere before that last step makes the next start
reconcile the same commit again, which converges (applied workflows plan as unchanged).

Blocking: run it on the git worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentflowd.errors import AgentFlowError, ConflictError, NotFound, PermanentError
from agentflowd.manifest import (
    Diagnostic,
    canonical_dict,
    combined_hash,
    load_sources,
    spec_hash,
)
from agentflowd.reconcile.apply import apply_plan, store_images
from agentflowd.reconcile.desired import actual_from_store
from agentflowd.reconcile.intake import Intake, IntakeResult
from agentflowd.reconcile.plan import Action, Plan, plan
from agentflowd.reconcile.status import (
    CONTEXT_SYNC,
    CONTEXT_VALIDATE,
    CommitStatus,
    StatusSink,
    describe,
)
from agentflowd.source.git import GitSource
from agentflowd.source.gitread import GitSnapshot
from agentflowd.store import (
    AuditEntry,
    HistoryAction,
    Origin,
    RevisionKind,
    RevisionRecord,
    RevisionState,
    SourceState,
    Store,
    StoredWorkflow,
    WorkflowWrite,
)

__all__ = ["Reconciler", "SyncOutcome"]

log = logging.getLogger(__name__)
#: Plan actions that change what runs: each leaves an audit row.
_AUDITED = frozenset({Action.CREATE, Action.UPDATE, Action.DELETE})


@dataclass(kw_only=True)
class SyncOutcome:
    """What one call to :meth:`Reconciler.sync` did."""

    sha: str
    state: RevisionState | None = None  # None: nothing to do (already applied)
    record: RevisionRecord | None = None
    plan: Plan | None = None
    report: IntakeResult | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: The error that ended the revision early (e.g. the database went away while applying):
    #: readiness does not count a pass the database stopped.
    error: AgentFlowError | None = None

    @property
    def noop(self) -> bool:
        """True when the commit was already applied and nothing ran."""
        return self.state is None


class Reconciler:
    """Keeps the store in step with one git source, and tells git how it went."""

    def __init__(
        self,
        *,
        source: GitSource,
        store: Store,
        sinks: Sequence[StatusSink] = (),
        clock: Callable[[], datetime],
        name: str = "default",
        prune: bool = True,
        api_url: str | None = None,
        observe_fetch: Callable[[float], None] = lambda _seconds: None,
        push_notes: bool = False,
    ) -> None:
        self.source = source
        self.store = store
        self.sinks = list(sinks)
        self.clock = clock
        self.name = name
        self.prune = prune
        self.api_url = api_url.rstrip("/") if api_url else None
        self.observe_fetch = observe_fetch
        self.push_notes = push_notes
        self.intake = Intake(source.limits)
        # commits already validated, oldest first (a dict as an ordered, bounded set)
        self._validated: dict[str, None] = dict.fromkeys(
            reversed([r.sha for r in store.revisions(limit=500, kind=RevisionKind.VALIDATE)])
        )

    def recover(self) -> list[RevisionRecord]:
        """Close revisions a crash left pending, and tell git: a commit must not stay yellow.

        Their commits are reconciled (or validated) again on the next pass anyway.
        """
        closed = []
        for record in self.store.revisions(limit=100):
            if record.state is not RevisionState.PENDING:
                continue
            summary = "interrupted (agentflowd stopped before finishing); will retry"
            done = self.store.finish_revision(
                record.id,
                state=RevisionState.ERROR,
                summary=summary,
                diagnostics=[],
                counts={},
                now=self.clock(),
            )
            context = CONTEXT_VALIDATE if record.kind is RevisionKind.VALIDATE else CONTEXT_SYNC
            self._post(record.sha, RevisionState.ERROR, summary, done, context)
            self._validated.pop(record.sha, None)
            closed.append(done)
        return closed

    def sync(self, *, force: bool = False) -> SyncOutcome:
        """Reconcile the branch's newest commit (if not applied yet, or ``force``)."""
        state = self.store.source_state(self.name)
        started = time.perf_counter()
        if self.source.remote and not force and state is not None:
            # ask the remote for its tip first: an unchanged remote costs no fetch
            tip = self.source.remote_tip()
            if tip is not None and tip == state.last_applied_sha:
                self.observe_fetch(time.perf_counter() - started)
                return SyncOutcome(sha=tip)
        sha = self.source.fetch()
        self.observe_fetch(time.perf_counter() - started)
        self._save_state(state, last_seen=sha)
        if not force and state is not None and state.last_applied_sha == sha:
            return SyncOutcome(sha=sha)
        return self.reconcile(sha)

    def reconcile(self, sha: str) -> SyncOutcome:
        """Apply commit ``sha`` and report the result."""
        self._fetch_notes()
        record = self.store.begin_revision(
            source=self.name, sha=sha, ref=self.source.ref, kind=RevisionKind.SYNC, now=self.clock()
        )
        self._post(sha, RevisionState.PENDING, f"reconciling {sha[:12]}", record)
        outcome = SyncOutcome(sha=sha, record=record)
        try:
            snapshot, report, the_plan = self._plan(sha, keep_only_these=True)
            apply_plan(
                the_plan,
                self.store,
                revision=sha,
                now=self.clock(),
                read_image=snapshot.images.read,
            )
            self._audit(the_plan, snapshot)
        except PermanentError as exc:
            outcome.error = exc
            return self._finish(outcome, RevisionState.FAILURE, str(exc), [], {})
        except AgentFlowError as exc:
            outcome.error = exc
            return self._finish(outcome, RevisionState.ERROR, str(exc), [], {})
        outcome.plan, outcome.report = the_plan, report
        outcome.diagnostics = report.errors
        failed = bool(report.errors) or the_plan.failed
        state = RevisionState.FAILURE if failed else RevisionState.SUCCESS
        summary = _summary(the_plan, report)
        counts = the_plan.counts()
        result = self._finish(outcome, state, summary, [d.to_dict() for d in report.errors], counts)
        current = self.store.source_state(self.name)
        self._save_state(current, last_seen=sha, last_applied=sha)
        return result

    def _audit(self, the_plan: Plan, snapshot: GitSnapshot) -> None:
        """One audit row per workflow the commit created, changed or deleted, attributed to
        the commit and its author (all of a pass's rows in one transaction)."""
        now = self.clock()
        actor = f"git:{snapshot.author}" if snapshot.author else "git"
        self.store.access.append_audit(
            *(
                AuditEntry(
                    at=now,
                    actor=actor,
                    action=f"workflow.{change.action.value}",
                    target=change.name,
                    result="ok",
                    source="git",
                    detail={
                        "commit": snapshot.commit,
                        "file": change.desired.file if change.desired else None,
                    },
                )
                for change in the_plan.changes
                if change.action in _AUDITED
            )
        )

    def preview(self, revision: str) -> tuple[str, IntakeResult, Plan]:
        """What applying ``revision`` (any ref or sha) would change, without changing it."""
        snapshot, report, the_plan = self._plan(revision, keep_only_these=False)
        return snapshot.commit, report, the_plan

    def _plan(
        self, revision: str, *, keep_only_these: bool
    ) -> tuple[GitSnapshot, IntakeResult, Plan]:
        snapshot = self.source.snapshot(revision, unchanged=self.intake.known())
        report = self.intake.load(
            snapshot.files, keep_only_these=keep_only_these, images=snapshot.images
        )
        the_plan = plan(
            report.desired,
            actual_from_store(self.store.workflow_heads()),
            broken_files=report.broken_files,
            prune=self.prune,
        )
        return snapshot, report, the_plan

    def validate_refs(self, patterns: Sequence[str]) -> list[SyncOutcome]:
        """Validate (never apply) the newest commit of every ref matching ``patterns``.

        Each commit validated once gets ``agentflow/validate``: ``success`` with a summary of
        what applying it would change against the deployed state, or ``failure`` naming the
        first error's file:line. The followed branch itself is synced, not validated.
        """
        outcomes: list[SyncOutcome] = []
        for ref, sha in self.source.matching_refs(patterns):
            if ref == self.source.ref or sha in self._validated:
                continue
            self._validated[sha] = None
            while len(self._validated) > 10_000:
                del self._validated[next(iter(self._validated))]
            outcomes.append(self._validate(ref, sha))
        return outcomes

    def _validate(self, ref: str, sha: str) -> SyncOutcome:
        self._fetch_notes()
        record = self.store.begin_revision(
            source=self.name, sha=sha, ref=ref, kind=RevisionKind.VALIDATE, now=self.clock()
        )
        outcome = SyncOutcome(sha=sha, record=record)
        self._post(sha, RevisionState.PENDING, f"validating {ref}", record, CONTEXT_VALIDATE)
        try:
            _commit, report, the_plan = self.preview(sha)
        except PermanentError as exc:
            return self._finish(outcome, RevisionState.FAILURE, str(exc), [], {}, CONTEXT_VALIDATE)
        outcome.plan, outcome.report, outcome.diagnostics = the_plan, report, report.errors
        failed = bool(report.errors) or the_plan.failed
        if failed:
            summary = _summary(the_plan, report)
        else:
            changes = {k: v for k, v in the_plan.counts().items() if k != "unchanged"}
            would = ", ".join(f"{n} {a}" for a, n in changes.items()) or "no change"
            summary = f"valid; would {would} against the deployed state"
        return self._finish(
            outcome,
            RevisionState.FAILURE if failed else RevisionState.SUCCESS,
            summary,
            [d.to_dict() for d in report.errors],
            the_plan.counts(),
            CONTEXT_VALIDATE,
        )

    def rollback(self, name: str, to: str) -> StoredWorkflow:
        """Make an earlier version of ``name`` active and pin it there.

        ``to`` is a commit (full or abbreviated sha, or any ref) or a history generation
        (``gen:3``). The store's history (last 10 versions) is searched first; any older
        commit is read from git. Auto-sync leaves the workflow pinned until :meth:`unpin`.
        """
        current = self.store.get_workflow(name)
        if current.origin is not Origin.GIT:
            raise ConflictError(f"workflow {name!r} is not managed by git", workflow=name)
        spec, version_hash, revision, images = self._find_version(name, to)
        self.store.put_workflow(
            WorkflowWrite(
                name=name,
                origin=Origin.GIT,
                spec=spec,
                spec_hash=version_hash,
                revision=revision,
                file=current.file,
                images=images,
            ),
            action=HistoryAction.ROLLBACK,
            now=self.clock(),
        )
        return self.store.set_pin(name, revision or to, now=self.clock())

    def _find_version(
        self, name: str, to: str
    ) -> tuple[dict[str, Any], str, str | None, dict[str, dict[str, Any]]]:
        for entry in self.store.history(name):
            if (to.startswith("gen:") and to[4:] == str(entry.generation)) or (
                entry.revision is not None and len(to) >= 7 and entry.revision.startswith(to)
            ):
                return entry.spec, entry.spec_hash, entry.revision, entry.images
        if to.startswith("gen:"):
            raise NotFound(f"workflow {name!r} has no generation {to[4:]} in its history")
        snapshot = self.source.snapshot(to)
        report = load_sources(snapshot.files, self.source.limits, images=snapshot.images)
        for manifest in report.manifests:
            if manifest.name == name:
                if not manifest.valid or manifest.workflow is None:
                    raise ConflictError(
                        f"workflow {name!r} is invalid at {to}; cannot roll back to it",
                        workflow=name,
                    )
                wf = manifest.workflow
                store_images(manifest.images, self.store, snapshot.images.read, now=self.clock())
                images = {i.ref: i.record() for i in manifest.images}
                version = combined_hash(spec_hash(wf), manifest.images)
                return canonical_dict(wf), version, snapshot.commit, images
        raise NotFound(f"workflow {name!r} does not exist at {to}")

    def unpin(self, name: str) -> SyncOutcome:
        """Let auto-sync manage ``name`` again, and re-apply the branch's newest commit."""
        self.store.set_pin(name, None, now=self.clock())
        return self.sync(force=True)

    def _fetch_notes(self) -> None:
        if self.push_notes and self.source.remote:
            try:
                self.source.fetch_notes()
            except AgentFlowError as exc:
                log.warning("cannot fetch status notes: %s", exc)

    def _finish(
        self,
        outcome: SyncOutcome,
        state: RevisionState,
        summary: str,
        diagnostics: list[dict[str, object]],
        counts: dict[str, int],
        context: str = CONTEXT_SYNC,
    ) -> SyncOutcome:
        assert outcome.record is not None
        outcome.state = state
        outcome.record = self.store.finish_revision(
            outcome.record.id,
            state=state,
            summary=summary,
            diagnostics=diagnostics,
            counts=counts,
            now=self.clock(),
        )
        self._post(outcome.sha, state, summary, outcome.record, context)
        if self.push_notes and self.source.remote:
            try:
                self.source.push_notes()
            except AgentFlowError as exc:
                log.warning("cannot push status notes: %s", exc)
        return outcome

    def _save_state(
        self, state: SourceState | None, *, last_seen: str, last_applied: str | None = None
    ) -> None:
        applied = last_applied or (state.last_applied_sha if state else None)
        if (
            state is not None
            and state.last_seen_sha == last_seen
            and state.last_applied_sha == applied
        ):
            return
        self.store.save_source_state(
            SourceState(
                name=self.name,
                url=self.source.display_url,
                branch=self.source.branch,
                path=self.source.path,
                last_seen_sha=last_seen,
                last_applied_sha=applied,
                updated_at=self.clock(),
            )
        )

    def _post(
        self,
        sha: str,
        state: RevisionState,
        summary: str,
        record: RevisionRecord,
        context: str = CONTEXT_SYNC,
    ) -> None:
        status = CommitStatus(
            sha=sha,
            context=context,
            state=state,
            description=describe(summary),
            at=self.clock(),
            target_url=f"{self.api_url}/api/v1/revisions/{record.id}" if self.api_url else None,
        )
        for sink in self.sinks:
            try:
                sink.post(status)
            except Exception:  # a status sink must never stop reconciling
                log.exception("status sink %s failed for %s", sink.name, sha[:12])


def _summary(the_plan: Plan, report: IntakeResult) -> str:
    """One line for the commit status: the first error's place, or what changed."""
    errors = report.errors
    if errors:
        first = errors[0]
        where = first.location().rsplit(":", 1)[0] if first.line else first.file
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where}: {first.message}{more}"
    for change in the_plan.changes:
        if change.action is Action.CONFLICT:
            return f"{change.name}: {change.reason}"
    counts = the_plan.counts()
    parts = [f"{n} {action}" for action, n in counts.items()]
    total = len(the_plan.changes)
    return (
        f"{total} workflow{'s' if total != 1 else ''}: " + ", ".join(parts)
        if parts
        else "no workflows"
    )
