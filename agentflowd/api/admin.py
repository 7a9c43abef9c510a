"""Administration and identity: API keys, the audit log, and who the caller is.

Keys made here are the same as ``agentflowd keys create`` makes on the daemon's host: the
token is in the 201 answer and nowhere else, ever.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agentflowd.api.access import Scope, guarded, principal_of
from agentflowd.auth import keys
from agentflowd.auth.keys import key_view
from agentflowd.auth.roles import Permission, Role
from agentflowd.errors import UsageError
from agentflowd.store.access import AuditEntry, AuditQuery

if TYPE_CHECKING:
    from agentflowd.api.app import DaemonHandle

__all__ = ["KeyRequest", "admin_routes", "audit_view"]


class KeyRequest(BaseModel):
    """A key to make."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Role
    workflows: str | None = Field(
        default=None, max_length=1000, description="a label selector, e.g. team=support"
    )
    expires: str | None = Field(default=None, max_length=20, description="e.g. 90d, 12h")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    """An audit row as JSON."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "result": entry.result,
        "status": entry.status,
        "source": entry.source,
        "detail": entry.detail,
    }


def admin_routes(daemon: DaemonHandle) -> APIRouter:
    """The routes, bound to ``daemon``."""
    routes = APIRouter()
    admin = guarded(daemon, Permission.ADMIN, Scope.GLOBAL)
    anyone = guarded(daemon, Permission.READ, Scope.LIST)

    @routes.post("/api/v1/keys", status_code=201, tags=["keys"], name="key.create", **admin)
    async def create_key(request: Request, body: KeyRequest) -> Any:
        """Make an API key; the answer holds its token, shown this once."""
        request.state.audit_target = body.name
        token, key = await anyio.to_thread.run_sync(
            lambda: keys.issue(
                daemon.store.access,
                name=body.name,
                role=body.role.value,
                selector=body.workflows,
                expires=body.expires,
                created_by=principal_of(request).actor,
                now=daemon.reconciler.clock(),
            )
        )
        request.state.audit_detail = {"role": key.role, "workflows": key.selector, "id": key.id}
        return JSONResponse({**key_view(key), "token": token}, status_code=201)

    @routes.get("/api/v1/keys", tags=["keys"], name="key.list", **admin)
    async def list_keys(include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key (not their tokens), oldest first."""
        found = await anyio.to_thread.run_sync(
            lambda: daemon.store.access.keys(include_revoked=include_revoked)
        )
        return [key_view(k) for k in found]

    @routes.delete("/api/v1/keys/{key}", tags=["keys"], name="key.revoke", **admin)
    async def revoke_key(key: str) -> dict[str, Any]:
        """Revoke a key by name or id; every node refuses it from now on."""
        now = daemon.reconciler.clock()
        revoked = await anyio.to_thread.run_sync(
            lambda: daemon.store.access.revoke_key(key, now=now)
        )
        return key_view(revoked)

    @routes.get("/api/v1/audit", tags=["audit"], name="audit.list", **admin)
    async def audit(
        since: datetime | None = None,
        until: datetime | None = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        target: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> list[dict[str, Any]]:
        """The audit log, newest first; ``before`` pages back from a row id."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise UsageError(f"{name}: give a time zone (e.g. Z)")
        rows = await anyio.to_thread.run_sync(
            lambda: daemon.store.access.audit(
                AuditQuery(
                    since=since,
                    until=until,
                    actor=actor,
                    action=action,
                    target=target,
                    limit=limit,
                    before_id=before,
                )
            )
        )
        return [audit_view(r) for r in rows]

    @routes.get("/api/v1/settings", tags=["settings"], name="settings.read", **admin)
    def settings() -> dict[str, Any]:
        """The daemon's running configuration (passwords and secret values masked; secrets are
        only ever named in it, by file or variable)."""
        return daemon.settings()

    @routes.get("/api/v1/auth/oidc", tags=["auth"], name="auth_oidc")
    def oidc() -> Any:
        """Which identity provider and client the CLI signs in with (open: a client needs it
        before it has credentials); 404 when the daemon has no ``oidc`` configured."""
        settings = daemon.oidc
        if settings is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no OIDC provider is configured"}},
                status_code=404,
            )
        return {
            "issuer": settings.issuer,
            "client_id": settings.client_id or settings.audience,
            "scope": settings.cli_scope,
        }

    @routes.get("/api/v1/whoami", tags=["auth"], name="auth_whoami", **anyone)
    def whoami(request: Request) -> dict[str, Any]:
        """Who the credentials say the caller is, and what it may do."""
        return _identity(request)

    @routes.post("/api/v1/auth/login", tags=["auth"], name="auth.login", **anyone)
    def login(request: Request) -> dict[str, Any]:
        """Check credentials and record the sign-in (``agentflow auth login`` calls it)."""
        return _identity(request)

    return routes


def _identity(request: Request) -> dict[str, Any]:
    principal = principal_of(request)
    return {
        "actor": principal.actor,
        "kind": principal.kind.value,
        "name": principal.name,
        "role": principal.role.value,
        "workflows": str(principal.selector) if principal.limited else None,
    }
