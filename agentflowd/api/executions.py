"""The executions API: run a workflow, list and read executions with their steps, cancel, and
follow an execution's events as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from agentflowd.api.access import Scope, guarded, principal_of, workflow_labels
from agentflowd.auth.roles import Permission
from agentflowd.engine import TERMINAL, EventRecord, ExecutionRecord, StepRecord
from agentflowd.errors import NotFound

if TYPE_CHECKING:
    from agentflowd.api.app import DaemonHandle

__all__ = [
    "RunRequest",
    "event_view",
    "execution_view",
    "executions_routes",
    "step_view",
    "unavailable",
]


class RunRequest(BaseModel):
    """A manual run: the execution's input (any JSON)."""

    input: Any = None


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def execution_view(r: ExecutionRecord) -> dict[str, Any]:
    """An execution as the API shows it."""
    return {
        "id": r.id,
        "workflow": r.workflow,
        "generation": r.generation,
        "state": r.state,
        "trigger": r.trigger,
        "input": r.input,
        "output": r.output,
        "error": r.error,
        "created_at": _time(r.created_at),
        "started_at": _time(r.started_at),
        "finished_at": _time(r.finished_at),
        "deadline_at": _time(r.deadline_at),
    }


def step_view(s: StepRecord) -> dict[str, Any]:
    """A step of an execution."""
    return {
        "step": s.step,
        "state": s.state,
        "attempt": s.attempt,
        "image": s.image,
        "image_sha256": s.image_sha256,
        "output": s.output,
        "error": s.error,
        "log": s.log,
        "started_at": _time(s.started_at),
        "finished_at": _time(s.finished_at),
        "next_attempt_at": _time(s.next_attempt_at),
    }


def event_view(e: EventRecord) -> dict[str, Any]:
    """One event of an execution's history."""
    return {
        "seq": e.seq,
        "at": e.at.isoformat(),
        "type": e.type,
        "step": e.step,
        "attempt": e.attempt,
        "data": e.data,
    }


def unavailable() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "not_ready", "message": "the execution engine is not running"}},
        status_code=503,
    )


def executions_routes(daemon: DaemonHandle) -> APIRouter:
    """The routes, bound to ``daemon``."""
    routes = APIRouter(tags=["executions"])

    def guard(permission: Permission, scope: Scope) -> dict[str, Any]:
        return guarded(daemon, permission, scope)

    async def db(fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))

    @routes.post(
        "/api/v1/workflows/{name}/executions",
        status_code=202,
        name="execution.run",
        **guard(Permission.RUN, Scope.TARGET),
    )
    async def run(name: str, body: RunRequest | None = None) -> Any:
        """Start an execution of the workflow's applied version; 202 with the execution."""
        if daemon.engine is None:
            return unavailable()
        record = await daemon.engine.run(name, body.input if body else None)
        view = execution_view(record)
        return JSONResponse(
            view, status_code=202, headers={"Location": f"/api/v1/executions/{record.id}"}
        )

    @routes.get(
        "/api/v1/executions",
        name="execution.list",
        **guard(Permission.READ, Scope.LIST),
    )
    async def list_executions(
        request: Request, workflow: str | None = None, state: str | None = None, limit: int = 50
    ) -> Any:
        """Executions, newest first (of the workflows a limited key selects)."""
        if daemon.journal is None:
            return unavailable()
        limit = max(1, min(limit, 500))
        principal = principal_of(request)
        if not principal.limited:
            records = await db(
                daemon.journal.executions, workflow=workflow, state=state, limit=limit
            )
            return [execution_view(r) for r in records]
        stored = await db(daemon.store.workflows)
        selected = sorted(
            n
            for n, w in stored.items()
            if principal.selects(workflow_labels(w.spec)) and workflow in (None, n)
        )
        found: list[ExecutionRecord] = []
        for name in selected:
            found += await db(daemon.journal.executions, workflow=name, state=state, limit=limit)
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [execution_view(r) for r in found[:limit]]

    @routes.get(
        "/api/v1/executions/{execution_id}",
        name="execution.get",
        **guard(Permission.READ, Scope.TARGET),
    )
    async def get_execution(execution_id: str) -> Any:
        """One execution with its steps and LLM cost."""
        if daemon.journal is None:
            return unavailable()
        record = await db(daemon.journal.execution, execution_id)
        steps = await db(daemon.journal.steps, execution_id)
        costs = await db(daemon.store.llm_costs, by="agent", execution=execution_id)
        view = execution_view(record)
        view["steps"] = [step_view(s) for s in steps]
        view["cost"] = {
            "total_usd": str(sum((c for c, _ in costs.values()), Decimal(0))),
            "by_agent": {k: {"cost_usd": str(c), "calls": n} for k, (c, n) in costs.items()},
        }
        return view

    @routes.post(
        "/api/v1/executions/{execution_id}/cancel",
        name="execution.cancel",
        **guard(Permission.RUN, Scope.TARGET),
    )
    async def cancel(execution_id: str) -> Any:
        """Stop scheduling an execution; running steps end within their timeout."""
        if daemon.engine is None:
            return unavailable()
        try:
            return execution_view(await daemon.engine.cancel(execution_id))
        except NotFound:
            # unfinished, and driven by another node: that node is asked to cancel it
            if not await daemon.forward_cancel(execution_id):
                raise
            record = await db(daemon.engine.log.execution, execution_id)
            return JSONResponse(execution_view(record), status_code=202)

    @routes.get(
        "/api/v1/executions/{execution_id}/events",
        response_model=None,
        name="execution.events",
        **guard(Permission.READ, Scope.TARGET),
    )
    async def events(
        request: Request, execution_id: str, after: int = 0, follow: bool = False
    ) -> Any:
        """The execution's history from ``seq > after``: JSON, or Server-Sent Events with
        ``follow=true`` (or ``Accept: text/event-stream``) until the execution has finished."""
        if daemon.journal is None or daemon.engine is None:
            return unavailable()
        journal, engine = daemon.journal, daemon.engine
        await db(journal.execution, execution_id)  # 404 before streaming
        wants_stream = follow or "text/event-stream" in request.headers.get("accept", "")
        if not wants_stream:
            return [event_view(e) for e in await db(journal.events, execution_id, after=after)]

        async def stream() -> AsyncIterator[bytes]:
            last = after
            quiet = 0.0  # seconds since the last thing sent
            while True:
                waiter = engine.changed()
                batch = await db(journal.events, execution_id, after=last)
                for event in batch:
                    last = event.seq
                    data = json.dumps(event_view(event), default=str)
                    yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()
                if (
                    batch
                    and batch[-1].type.startswith("execution.")
                    and (batch[-1].type.split(".", 1)[1] in TERMINAL)
                ):
                    return
                if await request.is_disconnected():
                    return
                # this node's commits wake the stream; an execution another node drives is
                # looked at 4 times a second (its commits are not this node's)
                wait = 15.0 if engine.drives(execution_id) else 0.25
                try:
                    async with asyncio.timeout(wait):
                        await waiter
                    quiet = 0.0
                except TimeoutError:
                    quiet = 0.0 if batch else quiet + wait
                    if quiet >= 15.0:
                        quiet = 0.0
                        yield b": keep-alive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return routes
