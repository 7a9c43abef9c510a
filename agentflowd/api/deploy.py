"""Workflows applied without git: ``POST /api/v1/workflows``, ``DELETE /api/v1/workflows/NAME``.

The body is a Workflow manifest, as YAML (``Content-Type: application/yaml``) or JSON. It is
validated exactly as a file in git would be (errors name the line, or the field). A name that git
manages is refused (409): git stays the source of truth for its workflows, and git never takes
over a name the API owns (the reconciler reports that as a conflict). Agent images cannot come
from a repository here: each ``image`` must be one the store already holds (applied through git
before); its content and SHA-256 are recorded with the version as for git.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agentflowd.errors import NotFound
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

MAX_MANIFEST_BYTES = 1024 * 1024


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def deploy_routes(daemon: DaemonHandle) -> APIRouter:
    """The routes, bound to ``daemon``."""
    routes = APIRouter(tags=["workflows"])

    @routes.post("/api/v1/workflows", status_code=201)
    async def deploy(request: Request) -> Any:
        """Create or update a workflow from a manifest (YAML or JSON body)."""
        body = await request.body()
        if len(body) > MAX_MANIFEST_BYTES:
            return _error(413, "too_large", "a manifest is at most 1 MiB")
        if "json" in request.headers.get("content-type", ""):
            try:
                body = json.dumps(json.loads(body)).encode()  # JSON is YAML: one loader for both
            except ValueError as exc:
                return _error(400, "bad_request", f"the body is not JSON: {exc}")
        report = load_sources([SourceFile(path="request", data=body)])
        problems = [d.to_dict() for d in report.diagnostics]
        if problems or len(report.manifests) != 1 or report.manifests[0].workflow is None:
            message = (
                str(problems[0]["message"]) if problems else "send exactly one Workflow manifest"
            )
            return _error(422, "invalid_manifest", message, diagnostics=problems)
        workflow = report.manifests[0].workflow
        name = workflow.name
        try:
            existing: StoredWorkflow | None = daemon.store.get_workflow(name)
        except NotFound:
            existing = None
        if existing is not None and existing.origin is Origin.GIT:
            return _error(409, "conflict", f"workflow {name!r} is managed by git; change it there")
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

    @routes.delete("/api/v1/workflows/{name}")
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
