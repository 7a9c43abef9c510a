"""Workflows applied without git: ``POST /api/v1/workflows``, ``DELETE /api/v1/workflows/NAME``.

The body is a Workflow manifest, as YAML (``Content-Type: application/yaml``) or JSON. It is
validated exactly as a file in git would be (errors name the line, or the field). A name that git
manages is refused (409): git stays the source of truth for its workflows, and git never takes
over a name the API owns (the reconciler reports that as a conflict). Agent images cannot come
from a repository here: each ``image`` must be one the store already holds (applied through git
before); its content and SHA-256 are recorded with the version as for git. Nor can it open
the network wider than the daemon's ``api_network_ceiling`` (:mod:`agentflowd.auth.ceiling`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agentflowd.api.access import Scope, guarded, principal_of, workflow_labels
from agentflowd.api.edge import MAX_BODY_BYTES
from agentflowd.auth.ceiling import beyond
from agentflowd.auth.roles import Permission
from agentflowd.errors import Forbidden, NotFound
from agentflowd.manifest import (
    ResolvedImage,
    canonical_dict,
    combined_hash,
    load_sources,
    spec_hash,
)
from agentflowd.manifest.load import SourceFile
from agentflowd.store import HistoryAction, Origin, StoredWorkflow, WorkflowWrite

if TYPE_CHECKING:
    from agentflowd.api.app import DaemonHandle

__all__ = ["deploy_routes"]

#: The largest manifest accepted (enforced by :mod:`agentflowd.api.edge` as it arrives).
MAX_MANIFEST_BYTES = MAX_BODY_BYTES
#: The deploy body as the OpenAPI document shows it (the route reads it raw: YAML or JSON).
_MANIFEST_BODY = {
    "required": True,
    "description": "One Workflow manifest (schemas/workflow.v1.schema.json), as YAML or JSON.",
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def deploy_routes(daemon: DaemonHandle) -> APIRouter:
    """The routes, bound to ``daemon``."""
    routes = APIRouter(tags=["workflows"])

    access = guarded(daemon, Permission.DEPLOY, Scope.TARGET)

    @routes.post(
        "/api/v1/workflows",
        status_code=201,
        name="workflow.deploy",
        dependencies=access["dependencies"],
        openapi_extra={**access["openapi_extra"], "requestBody": _MANIFEST_BODY},
    )
    async def deploy(request: Request) -> Any:
        """Create or update a workflow from a manifest (YAML or JSON body)."""
        body = await request.body()  # at most MAX_MANIFEST_BYTES: the edge counts it
        if "json" in request.headers.get("content-type", ""):
            try:
                body = json.dumps(json.loads(body)).encode()  # JSON is YAML: one loader for both
            except ValueError as exc:
                return _error(400, "bad_request", f"the body is not JSON: {exc}")
            except RecursionError:
                return _error(400, "bad_request", "the body is nested too deeply")
        report = load_sources([SourceFile(path="request", data=body)])
        problems = [d.to_dict() for d in report.errors]  # warnings do not refuse a manifest
        if problems or len(report.manifests) != 1 or report.manifests[0].workflow is None:
            message = (
                str(problems[0]["message"]) if problems else "send exactly one Workflow manifest"
            )
            return _error(422, "invalid_manifest", message, diagnostics=problems)
        workflow = report.manifests[0].workflow
        name = workflow.name
        request.state.audit_target = name
        try:
            existing: StoredWorkflow | None = daemon.store.get_workflow(name)
        except NotFound:
            existing = None
        principal = principal_of(request)
        if principal.limited and not (
            principal.selects(dict(workflow.metadata.labels))
            and (existing is None or principal.selects(workflow_labels(existing.spec)))
        ):
            raise Forbidden(
                f"{principal.actor} is limited to workflows matching {principal.selector}; "
                f"{name!r} is not one"
            )
        if existing is not None and existing.origin is Origin.GIT:
            return _error(409, "conflict", f"workflow {name!r} is managed by git; change it there")
        allows = [(str(a.name), h) for a in workflow.spec.agents for h in a.network.allow]
        wider = beyond(allows, daemon.network_ceiling)
        if wider:
            who, host = wider[0]
            ceiling = ", ".join(daemon.network_ceiling) or "none"
            return _error(
                422,
                "network_ceiling",
                f"agent {who!r} allows {host!r}: a workflow deployed through the API may "
                f"allow only hosts within api_network_ceiling ({ceiling}); put it in git, or "
                "widen the ceiling in the daemon's config",
            )
        known = _known_images(daemon)
        images: dict[str, dict[str, Any]] = {}
        for agent in workflow.spec.agents:
            ref = str(agent.image)
            if ref not in known:
                return _error(
                    422,
                    "unknown_image",
                    f"image {ref!r} is not in the store: apply it through git first",
                )
            images[ref] = known[ref]
        now = daemon.reconciler.clock()
        version = combined_hash(
            spec_hash(workflow),
            [ResolvedImage(ref=ref, **record) for ref, record in images.items()],
        )
        stored = daemon.store.put_workflow(
            WorkflowWrite(
                name=name,
                origin=Origin.API,
                spec=canonical_dict(workflow),
                spec_hash=version,
                images=images,
            ),
            action=HistoryAction.UPDATE if existing else HistoryAction.CREATE,
            now=now,
        )
        daemon.refresh_triggers()
        return JSONResponse(
            {"name": stored.name, "generation": stored.generation, "origin": "api"},
            status_code=200 if existing else 201,
        )

    @routes.delete(
        "/api/v1/workflows/{name}",
        name="workflow.delete",
        **guarded(daemon, Permission.DEPLOY, Scope.TARGET),
    )
    def delete(name: str) -> Any:
        """Delete a workflow applied through the API (git's are deleted in git)."""
        stored = daemon.store.get_workflow(name)
        if stored.origin is Origin.GIT:
            return _error(409, "conflict", f"workflow {name!r} is managed by git; delete it there")
        daemon.store.delete_workflow(name)
        daemon.refresh_triggers()
        return {"name": name, "deleted": True}

    return routes


def _known_images(daemon: DaemonHandle) -> dict[str, dict[str, Any]]:
    """Images (by reference) of the workflows in the store, the newest version's winning."""
    known: dict[str, dict[str, Any]] = {}
    for stored in sorted(daemon.store.workflows().values(), key=lambda w: w.updated_at):
        known.update(stored.images)
    return known
