"""Webhook triggers: the paths the workflows declare, answered after every API route.

What a request must carry to start an execution is :mod:`agentflowd.engine.deliveries`'s
decision; this is the HTTP around it: the route, the secret, the replay guard, the answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agentflowd.api.edge import allowed_methods, method_not_allowed
from agentflowd.api.executions import unavailable
from agentflowd.engine.deliveries import (
    ReplayGuard,
    WebhookRefusal,
    resolve_secret,
    verify_delivery,
)

if TYPE_CHECKING:
    from agentflowd.api.app import DaemonHandle

__all__ = ["webhook_trigger_routes"]


def webhook_trigger_routes(daemon: DaemonHandle) -> APIRouter:
    """Webhook triggers at the paths the workflows declare (matched after every API route).

    The body arrives within the edge's limits (:mod:`agentflowd.api.edge`); whether it may start
    an execution, and under which trigger key, is :func:`verify_delivery`'s decision. A
    delivery already accepted (the same signature, or the same delivery id) answers 409 and
    starts nothing. A path of the API with another method answers 405 with ``Allow``."""
    routes = APIRouter(tags=["triggers"])
    guard = ReplayGuard(clock=lambda: daemon.reconciler.clock())

    def _refused(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
        error = {"code": code, "message": message, **extra}
        return JSONResponse({"error": error}, status_code=status)

    @routes.api_route(
        "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def trigger(request: Request, path: str) -> Any:
        route = daemon.triggers.webhooks.get((request.method, "/" + path))
        if route is None:
            allowed = allowed_methods(request.app, request.scope, besides=routes)
            if allowed:
                return method_not_allowed(request.method, allowed)
            return _refused(404, "not_found", f"no route {request.method} /{path}")
        if daemon.engine is None:
            return unavailable()
        engine = daemon.engine
        body = await request.body()  # at most the edge's limit
        secret = None
        if route.secret is not None:
            secret = resolve_secret(route.secret)
            if secret is None:
                return _refused(503, "not_ready", f"the secret {route.secret!r} is not configured")
        verdict = verify_delivery(
            route, secret, body, request.headers, now=daemon.reconciler.clock()
        )
        if isinstance(verdict, WebhookRefusal):
            return _refused(verdict.status, verdict.code, verdict.message)
        try:
            payload: Any = json.loads(body) if body else None
        except RecursionError:
            return _refused(400, "bad_request", "the body is nested too deeply")
        except ValueError:
            payload = {"body": body.decode("utf-8", "replace")}
        key = verdict.key
        if key is not None:
            prior = guard.claim(key, verdict.until)
            if prior is None:
                # not seen lately by this node: the database knows every delivery ever started
                try:
                    found = await asyncio.get_running_loop().run_in_executor(
                        None, engine.log.by_trigger_key, key
                    )
                except BaseException:
                    guard.release(key)
                    raise
                if found is not None:
                    guard.settle(key, found.id)
                    prior = found.id
            if prior is not None:
                return _refused(
                    409,
                    "duplicate_delivery",
                    "this delivery was accepted before"
                    + (f" (execution {prior})" if prior else "")
                    + "; it starts nothing again",
                    **({"execution": prior} if prior else {}),
                )
        try:
            record = await engine.run(route.workflow, payload, trigger="webhook", key=key)
        except BaseException:
            if key is not None:
                guard.release(key)
            raise
        if key is not None:
            guard.settle(key, record.id)
        return JSONResponse(
            {"execution": record.id, "state": record.state, "workflow": route.workflow},
            status_code=202,
            headers={"Location": f"/api/v1/executions/{record.id}"},
        )

    return routes
