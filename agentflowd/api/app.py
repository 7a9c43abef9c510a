"""The REST API (FastAPI): workflows, revisions, sync and diff, operator actions, git push
webhooks, health and metrics.

Every error has one shape, ``{"error": {"code": ..., "message": ...}}``, with 404 for unknown
names, 409 for conflicts, 400/422 for bad requests. ``/readyz`` adds its report to that shape
when it says 503 (``ready``, ``reasons``, ``role``, as its 200 does), so a probe reads one body
whatever the answer, and a client that knows only the error shape still reads the reasons.
Store reads run in FastAPI's thread pool; anything touching git goes through the daemon's
single git thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentflowd._version import __version__
from agentflowd.api.access import (
    AuditTrail,
    Scope,
    guarded,
    principal_of,
    workflow_labels,
)
from agentflowd.api.admin import admin_routes
from agentflowd.api.deploy import deploy_routes
from agentflowd.api.edge import BodyLimit
from agentflowd.api.executions import executions_routes
from agentflowd.api.triggers import webhook_trigger_routes
from agentflowd.api.webhooks import PushEvent, WebhookError, parse_push
from agentflowd.auth.authenticate import Authenticator
from agentflowd.auth.oidc import OidcSettings
from agentflowd.auth.roles import Permission
from agentflowd.engine import Engine, Journal
from agentflowd.engine.triggers import TriggerTable
from agentflowd.errors import (
    AgentFlowError,
    ConflictError,
    Forbidden,
    NotFound,
    Unauthenticated,
    UsageError,
)
from agentflowd.manifest import Workflow
from agentflowd.node import NodeRole, Readiness
from agentflowd.observability import Metrics
from agentflowd.reconcile import Plan, Reconciler, SyncOutcome
from agentflowd.store import RevisionRecord, Store, StoredWorkflow, WorkflowHead

__all__ = ["DaemonHandle", "ErrorBody", "NotReadyBody", "ReadinessView", "create_app"]


class DaemonHandle(Protocol):
    """What the API needs from the running daemon."""

    store: Store
    reconciler: Reconciler
    metrics: Metrics
    webhook_secret: str | None
    engine: Engine | None
    journal: Journal | None
    triggers: TriggerTable
    #: who a request is (API keys, OIDC tokens)
    auth: Authenticator
    #: whether /metrics asks for a viewer's credentials
    metrics_auth: bool
    #: hosts a workflow deployed through the API may allow (api_network_ceiling)
    network_ceiling: tuple[str, ...]
    #: the identity provider, if any (the CLI asks which one to sign in with)
    oidc: OidcSettings | None

    def settings(self) -> dict[str, Any]:
        """The daemon's settings as an admin may read them (secrets masked)."""
        ...

    @property
    def role(self) -> NodeRole:
        """This node's role in a fleet (``/readyz`` reports it)."""

    #: Whether this node can take traffic (``/readyz``).
    readiness: Readiness

    def refresh_triggers(self) -> None:
        """Rebuild the triggers from the store (after suspend, resume, rollback...)."""
        ...

    def run_git(self, fn: Callable[[], Any]) -> Awaitable[Any]:
        """Run ``fn`` on the git thread."""
        ...

    def request_sync(self, noticed_at: float | None = None) -> None:
        """Ask the reconcile loop for a pass now."""
        ...

    async def forward_cancel(self, execution_id: str) -> bool:
        """Ask the node that drives ``execution_id`` to cancel it (several nodes); False
        when there is no other node to ask."""
        ...


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ReadinessView(BaseModel):
    """Whether this node takes traffic, why not, and its role."""

    ready: bool
    reasons: list[str] = Field(
        description="why not ready: 'first reconcile pending', 'database unreachable: ...'"
    )
    role: NodeRole


class NotReadyBody(ErrorBody, ReadinessView):
    """``/readyz``'s 503: the error shape and the readiness report."""


class RollbackRequest(BaseModel):
    """Where to roll back to: a commit (sha or ref) or ``gen:N`` from the history."""

    to: str = Field(min_length=1, max_length=200)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def head_summary(h: WorkflowHead) -> dict[str, Any]:
    """The list view of a workflow."""
    return {
        "name": h.name,
        "origin": h.origin.value,
        "phase": "failing" if h.failing else "suspended" if h.suspended else "active",
        "revision": h.revision,
        "generation": h.generation,
        "suspended": h.suspended,
        "pinned_revision": h.pinned_revision,
        "file": h.file,
        "agents": h.agents,
        "updated_at": h.updated_at.isoformat() if h.updated_at else None,
    }


def workflow_summary(w: StoredWorkflow) -> dict[str, Any]:
    """The list view of a workflow read whole."""
    return head_summary(w.head(listing=True))


def _next_fire_times(spec: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    try:
        workflow = Workflow.model_validate(spec)
    except ValueError:  # pragma: no cover - stored specs were valid when applied
        return []
    out = []
    for trigger in workflow.spec.triggers:
        if trigger.schedule is not None:
            times = trigger.schedule.compile().next_fire_times(now, 3)
            out.append(
                {
                    "cron": trigger.schedule.cron,
                    "timezone": trigger.schedule.timezone,
                    "next": [t.isoformat() for t in times],
                }
            )
    return out


def revision_view(r: RevisionRecord) -> dict[str, Any]:
    """A revision record as JSON."""
    data = asdict(r)
    data["kind"], data["state"] = r.kind.value, r.state.value
    data["started_at"] = r.started_at.isoformat()
    data["finished_at"] = r.finished_at.isoformat() if r.finished_at else None
    return data


def plan_view(commit: str, the_plan: Plan, diagnostics: list[dict[str, Any]]) -> dict[str, Any]:
    """A plan as JSON (``agentflow diff``, ``POST /sync``)."""
    return {
        "commit": commit,
        "counts": the_plan.counts(),
        "changes": [
            {"name": c.name, "action": c.action.value, "reason": c.reason} for c in the_plan.changes
        ],
        "diagnostics": diagnostics,
    }


def outcome_view(outcome: SyncOutcome) -> dict[str, Any]:
    """What a sync did."""
    if outcome.noop:
        return {"commit": outcome.sha, "state": "unchanged", "counts": {}, "changes": []}
    view: dict[str, Any] = {
        "commit": outcome.sha,
        "state": outcome.state.value if outcome.state else None,
        "revision": revision_view(outcome.record) if outcome.record else None,
    }
    if outcome.plan is not None:
        view.update(
            plan_view(outcome.sha, outcome.plan, [d.to_dict() for d in outcome.diagnostics])
        )
        view["state"] = outcome.state.value if outcome.state else None
    return view


def create_app(daemon: DaemonHandle) -> FastAPI:
    """The API of one daemon."""
    app = FastAPI(
        title="AgentFlow",
        version=__version__,
        description="GitOps reconciler for AI agent workflows.",
        responses={
            400: {"model": ErrorBody},
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            404: {"model": ErrorBody},
            409: {"model": ErrorBody},
            422: {"model": ErrorBody},
        },
    )

    app.add_middleware(AuditTrail, daemon=daemon)
    app.add_middleware(BodyLimit)  # added last: runs first, before the audit trail

    def guard(permission: Permission, scope: Scope) -> dict[str, Any]:
        return guarded(daemon, permission, scope)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_request: Request, exc: Unauthenticated) -> JSONResponse:
        response = _error(401, "unauthorized", str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="agentflow"'
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, "forbidden", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
        return _error(409, "conflict", str(exc))

    @app.exception_handler(UsageError)
    async def _usage(_request: Request, exc: UsageError) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(AgentFlowError)
    async def _other(_request: Request, exc: AgentFlowError) -> JSONResponse:
        return _error(503 if not isinstance(exc, UsageError) else 400, "unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(422, "invalid_request", f"{where}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405's Allow, 401's WWW-Authenticate
        return response

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive and serving."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadinessView,
        responses={503: {"model": NotReadyBody}},
    )
    async def readyz() -> Response:
        """Ready to take traffic: the first reconcile pass is done and the database answers
        (checked at most once a second). 503 says why not."""
        report = await daemon.readiness.report(daemon.role)
        view = ReadinessView(ready=report.ready, reasons=list(report.reasons), role=report.role)
        if report.ready:
            return JSONResponse(view.model_dump(mode="json"))
        error = {"code": "not_ready", "message": "; ".join(report.reasons)}
        return JSONResponse({"error": error, **view.model_dump(mode="json")}, status_code=503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        name="metrics.read",
        **(guard(Permission.READ, Scope.GLOBAL) if daemon.metrics_auth else {}),
    )
    def metrics() -> Response:
        """Prometheus metrics (a viewer's key is needed when ``metrics_auth`` is set)."""
        return Response(
            daemon.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get(
        "/api/v1/workflows",
        tags=["workflows"],
        name="workflow.list",
        **guard(Permission.READ, Scope.LIST),
    )
    def list_workflows(request: Request) -> list[dict[str, Any]]:
        """Every workflow with its phase, revision and operator state (those a limited key
        selects)."""
        heads = daemon.store.workflow_heads(listing=True)
        principal = principal_of(request)
        if principal.limited:
            stored = daemon.store.workflows()
            heads = {
                n: h
                for n, h in heads.items()
                if n in stored and principal.selects(workflow_labels(stored[n].spec))
            }
        return [head_summary(h) for h in heads.values()]

    @app.get(
        "/api/v1/workflows/{name}",
        tags=["workflows"],
        name="workflow.get",
        **guard(Permission.READ, Scope.TARGET),
    )
    def get_workflow(name: str) -> dict[str, Any]:
        """One workflow: spec, last error, history, next fire times."""
        w = daemon.store.get_workflow(name)
        view = workflow_summary(w)
        view.update(
            spec=w.spec,
            spec_hash=w.spec_hash,
            images=w.images,
            last_error=w.last_error,
            error_revision=w.error_revision,
            created_at=w.created_at.isoformat(),
            schedules=_next_fire_times(w.spec, datetime.now(UTC)),
            history=[
                {
                    "generation": h.generation,
                    "revision": h.revision,
                    "action": h.action.value,
                    "spec_hash": h.spec_hash,
                    "applied_at": h.applied_at.isoformat(),
                }
                for h in daemon.store.history(name)
            ],
        )
        return view

    @app.post(
        "/api/v1/workflows/{name}/suspend",
        tags=["workflows"],
        name="workflow.suspend",
        **guard(Permission.DEPLOY, Scope.TARGET),
    )
    def suspend(name: str) -> dict[str, Any]:
        """Stop triggers from starting executions of this workflow."""
        now = daemon.reconciler.clock()
        stored = daemon.store.set_suspended(name, True, now=now)
        daemon.refresh_triggers()
        return workflow_summary(stored)

    @app.post(
        "/api/v1/workflows/{name}/resume",
        tags=["workflows"],
        name="workflow.resume",
        **guard(Permission.DEPLOY, Scope.TARGET),
    )
    def resume(name: str) -> dict[str, Any]:
        """Let triggers start executions again."""
        now = daemon.reconciler.clock()
        stored = daemon.store.set_suspended(name, False, now=now)
        daemon.refresh_triggers()
        return workflow_summary(stored)

    @app.post(
        "/api/v1/workflows/{name}/rollback",
        tags=["workflows"],
        name="workflow.rollback",
        **guard(Permission.DEPLOY, Scope.TARGET),
    )
    async def rollback(name: str, body: RollbackRequest) -> dict[str, Any]:
        """Activate an earlier version and pin it; auto-sync leaves it until unpinned."""
        stored = await daemon.run_git(lambda: daemon.reconciler.rollback(name, body.to))
        daemon.refresh_triggers()
        return workflow_summary(stored)

    @app.post(
        "/api/v1/workflows/{name}/unpin",
        tags=["workflows"],
        name="workflow.unpin",
        **guard(Permission.DEPLOY, Scope.TARGET),
    )
    async def unpin(name: str) -> dict[str, Any]:
        """Follow git again (re-applies the branch's newest commit)."""
        daemon.store.get_workflow(name)
        outcome = await daemon.run_git(lambda: daemon.reconciler.unpin(name))
        daemon.refresh_triggers()
        return outcome_view(outcome)

    @app.get(
        "/api/v1/revisions",
        tags=["revisions"],
        name="revision.list",
        **guard(Permission.READ, Scope.GLOBAL),
    )
    def list_revisions(limit: int = 50) -> list[dict[str, Any]]:
        """Revisions picked up, newest first."""
        return [revision_view(r) for r in daemon.store.revisions(limit=max(1, min(limit, 500)))]

    @app.get(
        "/api/v1/revisions/{revision_id}",
        tags=["revisions"],
        name="revision.get",
        **guard(Permission.READ, Scope.GLOBAL),
    )
    def get_revision(revision_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
        """One revision: state, summary, counts and every diagnostic."""
        return revision_view(daemon.store.get_revision(revision_id))

    @app.get(
        "/api/v1/costs",
        tags=["costs"],
        name="cost.summary",
        **guard(Permission.READ, Scope.GLOBAL),
    )
    def costs(
        by: Literal[
            "provider", "kind", "model", "workflow", "agent", "execution", "state"
        ] = "provider",
        workflow: str | None = None,
        execution: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """LLM spend from the cost ledger, summed by provider, model, workflow, agent,
        execution or state (exact USD as strings), with the number of attempts. A call still
        ``reserved`` (in flight, or in flight when a daemon died) counts at its worst case."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise RequestValidationError(
                    [{"loc": ("query", name), "msg": "give a time zone (e.g. Z)", "type": "value"}]
                )
        totals = daemon.store.llm_costs(
            by=by, workflow=workflow, execution=execution, since=since, until=until
        )
        return {
            "by": by,
            "totals": {k: {"cost_usd": str(c), "calls": n} for k, (c, n) in totals.items()},
            "total_usd": str(sum((c for c, _ in totals.values()), Decimal(0))),
        }

    @app.post(
        "/api/v1/sync",
        tags=["revisions"],
        name="revision.sync",
        **guard(Permission.DEPLOY, Scope.GLOBAL),
    )
    async def sync(force: bool = False) -> dict[str, Any]:
        """Fetch and reconcile now; returns what happened."""
        outcome = await daemon.run_git(lambda: daemon.reconciler.sync(force=force))
        return outcome_view(outcome)

    @app.get(
        "/api/v1/diff",
        tags=["revisions"],
        name="revision.diff",
        **guard(Permission.READ, Scope.GLOBAL),
    )
    async def diff(ref: str | None = None) -> dict[str, Any]:
        """What applying ``ref`` (default: the followed branch) would change."""
        target = ref or daemon.reconciler.source.ref
        commit, report, the_plan = await daemon.run_git(lambda: daemon.reconciler.preview(target))
        return plan_view(commit, the_plan, [d.to_dict() for d in report.errors])

    @app.post(
        "/api/v1/git/webhook",
        tags=["git"],
        status_code=202,
        responses={401: {"model": ErrorBody}},
    )
    async def git_webhook(request: Request) -> Response:
        """GitHub, GitLab and Gitea push events: verified, then an immediate fetch."""
        body = await request.body()
        try:
            event: PushEvent = parse_push(request.headers, body, daemon.webhook_secret)
        except WebhookError as exc:
            return _error(exc.status, exc.code, str(exc))
        if event.ignored:
            return JSONResponse({"status": "ignored", "reason": event.ignored}, status_code=202)
        daemon.request_sync()
        return JSONResponse(
            {"status": "accepted", "forge": event.forge, "ref": event.ref}, status_code=202
        )

    app.include_router(executions_routes(daemon))
    app.include_router(deploy_routes(daemon))
    app.include_router(admin_routes(daemon))

    app.include_router(webhook_trigger_routes(daemon))  # last: its path matches anything
    return app
