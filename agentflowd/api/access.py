"""Access control at the API's edge: every route declares what it needs, and every mutation
(and every refusal) leaves one audit row.

A route declares its need with ``dependencies=[need(daemon, Permission.RUN, Scope.TARGET)]``:

* the permission its caller's role must reach (:mod:`agentflowd.auth.roles`);
* its :class:`Scope` — what a key limited by a label selector may do there: a route about one
  workflow or one of its executions (``TARGET``) checks that workflow's labels; a listing
  (``LIST``) shows only what the key selects; anything touching every workflow (``GLOBAL``:
  sync, revisions, keys, audit) is refused to a limited key.

The dependency is also how the route appears in the OpenAPI document with the bearer scheme.
:class:`AuditTrail` (ASGI middleware) writes the row before the response leaves, so a client
that got its answer finds the row: ``actor`` from the credentials, ``action`` from the route's
name (``workflow.suspend``), ``target`` from its path, the HTTP status and the client address.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from agentflowd.auth.principal import Principal
from agentflowd.auth.roles import Permission, Role
from agentflowd.errors import Forbidden, NotFound
from agentflowd.store.access import AuditEntry

if TYPE_CHECKING:
    from agentflowd.api.app import DaemonHandle

__all__ = [
    "AuditTrail",
    "Need",
    "Scope",
    "guarded",
    "need",
    "principal_of",
    "role_for",
    "workflow_labels",
]

_bearer = HTTPBearer(auto_error=False, description="An API key (afk_…) or an OIDC token")
_TARGET_PARAMS = ("name", "execution_id", "key")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Scope(StrEnum):
    """What a selector-limited key may do on a route."""

    TARGET = "target"  # one workflow (or one of its executions): its labels must match
    LIST = "list"  # a listing: filtered to what the key selects
    GLOBAL = "global"  # every workflow at once: refused to a limited key


def principal_of(request: Request) -> Principal:
    """The caller, as the route's dependency authenticated it."""
    principal: Principal = request.state.principal
    return principal


class Need:
    """The dependency of a route needing ``permission`` within ``scope`` (FastAPI calls it;
    the OpenAPI document shows both as ``x-agentflow-role`` and ``x-agentflow-scope``)."""

    def __init__(self, daemon: DaemonHandle, permission: Permission, scope: Scope) -> None:
        self.daemon = daemon
        self.permission = permission
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        daemon = self.daemon
        header = request.headers.get("authorization")
        principal = await anyio.to_thread.run_sync(daemon.auth.authenticate, header)
        request.state.principal = principal
        if not principal.may(self.permission):
            raise Forbidden(
                f"{principal.actor} is {principal.role.value}; this needs "
                f"{role_for(self.permission).value} or above"
            )
        if principal.limited:
            if self.scope is Scope.GLOBAL:
                raise Forbidden(
                    f"{principal.actor} is limited to workflows matching "
                    f"{principal.selector}; this touches every workflow"
                )
            if self.scope is Scope.TARGET:
                await anyio.to_thread.run_sync(_check_target, daemon, principal, request)
        return principal


def need(daemon: DaemonHandle, permission: Permission, scope: Scope) -> Need:
    """The dependency of a route needing ``permission`` within ``scope``."""
    return Need(daemon, permission, scope)


def role_for(permission: Permission) -> Role:
    """The weakest role holding ``permission``."""
    return next(r for r in Role if r.permission is permission)


def guarded(daemon: DaemonHandle, permission: Permission, scope: Scope) -> dict[str, Any]:
    """A route decorator's arguments for a route needing ``permission`` within ``scope``: the
    dependency, and the OpenAPI extensions ``x-agentflow-role`` and ``x-agentflow-scope``."""
    return {
        "dependencies": [Depends(Need(daemon, permission, scope))],
        "openapi_extra": {
            "x-agentflow-role": role_for(permission).value,
            "x-agentflow-scope": scope.value,
        },
    }


def _check_target(daemon: DaemonHandle, principal: Principal, request: Request) -> None:
    """Refuse a limited key a workflow its selector does not match (a workflow that does not
    exist is left to the route: a 404, or a deploy whose labels are checked there)."""
    params = request.path_params
    workflow = params.get("name")
    if workflow is None and "execution_id" in params and daemon.journal is not None:
        try:
            workflow = daemon.journal.execution(params["execution_id"]).workflow
        except NotFound:
            return
    if workflow is None:
        return
    try:
        labels = workflow_labels(daemon.store.get_workflow(workflow).spec)
    except NotFound:
        return
    if not principal.selects(labels):
        raise Forbidden(
            f"{principal.actor} is limited to workflows matching {principal.selector}; "
            f"{workflow!r} is not one"
        )


def workflow_labels(spec: Mapping[str, Any]) -> dict[str, str]:
    """The labels of a stored workflow spec."""
    labels = (spec.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


class AuditTrail:
    """ASGI middleware: one audit row per mutating call and per refused call, written before
    the response starts."""

    def __init__(self, app: ASGIApp, daemon: DaemonHandle) -> None:
        self.app = app
        self.daemon = daemon

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        written = False

        async def audited_send(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                written = True
                entry = self._entry(scope, int(message["status"]))
                if entry is not None:
                    await anyio.to_thread.run_sync(self.daemon.store.access.append_audit, entry)
            await send(message)

        await self.app(scope, receive, audited_send)

    def _entry(self, scope: AsgiScope, status: int) -> AuditEntry | None:
        route = scope.get("route")
        name = getattr(route, "name", None)
        if not name or "." not in name:
            return None  # not an API route of ours (docs, a trigger webhook, a 404)
        refused = status in (401, 403)
        if scope["method"] not in _MUTATING and not refused:
            return None  # reads are not audited, refused reads are
        state = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        params = scope.get("path_params") or {}
        target = next((str(params[p]) for p in _TARGET_PARAMS if p in params), None)
        target = state.get("audit_target", target)
        client = scope.get("client")
        return AuditEntry(
            at=self.daemon.reconciler.clock(),
            actor=principal.actor if principal else "anonymous",
            action=name,
            target=target,
            result="ok" if status < 400 else "denied" if refused else "error",
            status=status,
            source=client[0] if client else None,
            detail=state.get("audit_detail") or {},
        )
