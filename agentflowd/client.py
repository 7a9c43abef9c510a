"""A Python client of the agentflowd API (used by the ``agentflow`` CLI).

    client = AgentFlowClient("http://127.0.0.1:8080")
    for workflow in client.list_workflows():
        print(workflow["name"], workflow["phase"])

Errors come back as the package's own exceptions: a 404 is :class:`NotFound`, a 409
:class:`ConflictError`, a 400/413/422 :class:`UsageError`, a 401 :class:`Unauthenticated`, a
403 :class:`Forbidden`, an unreachable server :class:`ServerUnavailable`. The API key is
``api_key``, else ``$AGENTFLOW_API_KEY``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx

from agentflowd.errors import (
    ConflictError,
    Forbidden,
    NotFound,
    TransientError,
    Unauthenticated,
    UsageError,
)
from agentflowd.sdk import Execution, ExecutionEvent, Workflow

__all__ = ["DEFAULT_URL", "AgentFlowClient", "ServerUnavailable"]

DEFAULT_URL = "http://127.0.0.1:8080"


class ServerUnavailable(TransientError):
    """agentflowd cannot be reached, or answered with a server error."""


class AgentFlowClient:
    """Talks to one agentflowd over HTTP."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("AGENTFLOW_API_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key or os.environ.get("AGENTFLOW_API_KEY")  # as the CLI reads it
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AgentFlowClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach agentflowd at {self.base_url}: {exc}") from exc
        if response.status_code < 400:
            return response.json()
        self._raise(response)

    def _raise(self, response: httpx.Response) -> NoReturn:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        if response.status_code == 404:
            raise NotFound(message)
        if response.status_code == 409:
            raise ConflictError(message)
        if response.status_code == 401:
            raise Unauthenticated(message)
        if response.status_code == 403:
            raise Forbidden(message)
        if response.status_code in (400, 413, 422):
            raise UsageError(message)
        raise ServerUnavailable(f"agentflowd answered {response.status_code}: {message}")

    # -- identity and administration ---------------------------------------------------------

    def oidc_provider(self) -> dict[str, Any]:
        """The identity provider and client to sign in with (no credentials needed)."""
        result: dict[str, Any] = self._call("GET", "/api/v1/auth/oidc")
        return result

    def settings(self) -> dict[str, Any]:
        """The daemon's running configuration, secrets masked (admin)."""
        result: dict[str, Any] = self._call("GET", "/api/v1/settings")
        return result

    def whoami(self) -> dict[str, Any]:
        """Who the credentials say the caller is: actor, role, workflows it is limited to."""
        result: dict[str, Any] = self._call("GET", "/api/v1/whoami")
        return result

    def login(self) -> dict[str, Any]:
        """Check the credentials and record the sign-in in the audit log."""
        result: dict[str, Any] = self._call("POST", "/api/v1/auth/login")
        return result

    def create_key(
        self,
        name: str,
        role: str,
        *,
        workflows: str | None = None,
        expires: str | None = None,
    ) -> dict[str, Any]:
        """Make an API key (admin); ``token`` in the answer is shown this once."""
        body = {"name": name, "role": role, "workflows": workflows, "expires": expires}
        result: dict[str, Any] = self._call("POST", "/api/v1/keys", json=body)
        return result

    def list_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key (admin), never their tokens."""
        params = {"include_revoked": "true"} if include_revoked else {}
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/keys", params=params)
        return result

    def revoke_key(self, key: str) -> dict[str, Any]:
        """Revoke a key by name or id (admin)."""
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/keys/{key}")
        return result

    def audit(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The audit log, newest first (admin)."""
        params: dict[str, Any] = {
            k: v
            for k, v in {
                "since": since,
                "until": until,
                "actor": actor,
                "action": action,
                "target": target,
                "limit": limit,
            }.items()
            if v is not None
        }
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/audit", params=params)
        return result

    # -- workflows -----------------------------------------------------------------------------

    def list_workflows(self) -> list[dict[str, Any]]:
        """Every workflow with its phase and revision."""
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/workflows")
        return result

    def get_workflow(self, name: str) -> dict[str, Any]:
        """One workflow in full."""
        result: dict[str, Any] = self._call("GET", f"/api/v1/workflows/{name}")
        return result

    def list_revisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent revisions, newest first."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/api/v1/revisions", params={"limit": limit}
        )
        return result

    def sync(self, *, force: bool = False) -> dict[str, Any]:
        """Fetch and reconcile now."""
        result: dict[str, Any] = self._call(
            "POST", "/api/v1/sync", params={"force": str(force).lower()}
        )
        return result

    def diff(self, ref: str | None = None) -> dict[str, Any]:
        """What applying ``ref`` would change."""
        params = {"ref": ref} if ref else {}
        result: dict[str, Any] = self._call("GET", "/api/v1/diff", params=params)
        return result

    def suspend(self, name: str) -> dict[str, Any]:
        """Stop a workflow's triggers."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/workflows/{name}/suspend")
        return result

    def resume(self, name: str) -> dict[str, Any]:
        """Start a workflow's triggers again."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/workflows/{name}/resume")
        return result

    def rollback(self, name: str, to: str) -> dict[str, Any]:
        """Activate an earlier version and pin it."""
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/workflows/{name}/rollback", json={"to": to}
        )
        return result

    def unpin(self, name: str) -> dict[str, Any]:
        """Follow git again."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/workflows/{name}/unpin")
        return result

    # -- executions ----------------------------------------------------------------------------

    def run(self, workflow: str, input: Any = None) -> dict[str, Any]:
        """Start an execution of ``workflow``; returns it (state running or queued)."""
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/workflows/{workflow}/executions", json={"input": input}
        )
        return result

    def list_executions(
        self, *, workflow: str | None = None, state: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Executions, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if workflow:
            params["workflow"] = workflow
        if state:
            params["state"] = state
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/executions", params=params)
        return result

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """One execution with its steps and cost."""
        result: dict[str, Any] = self._call("GET", f"/api/v1/executions/{execution_id}")
        return result

    def cancel(self, execution_id: str) -> dict[str, Any]:
        """Stop an execution."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/executions/{execution_id}/cancel")
        return result

    def events(self, execution_id: str, after: int = 0) -> list[dict[str, Any]]:
        """An execution's history from ``seq > after``."""
        result: list[dict[str, Any]] = self._call(
            "GET", f"/api/v1/executions/{execution_id}/events", params={"after": after}
        )
        return result

    def stream_execution_events(
        self, execution_id: str, after: int = 0
    ) -> Iterator[ExecutionEvent]:
        """An execution's events as they happen (Server-Sent Events), until it finishes."""
        path = f"/api/v1/executions/{execution_id}/events"
        try:
            with self._http.stream(
                "GET",
                path,
                params={"after": after, "follow": "true"},
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self._http.timeout.connect, read=None),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield ExecutionEvent.from_api(json.loads("\n".join(data)))
                        data = []
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach agentflowd at {self.base_url}: {exc}") from exc

    def wait(self, execution_id: str) -> dict[str, Any]:
        """The execution once it has finished (follows its events)."""
        for _event in self.stream_execution_events(execution_id):
            pass
        return self.get_execution(execution_id)

    # -- the SDK's verbs (see agentflowd.sdk) ---------------------------------------------------

    def deploy(self, manifest: dict[str, Any] | str) -> dict[str, Any]:
        """Apply a workflow through the API (a manifest dict, or YAML text)."""
        if isinstance(manifest, str):
            content, kind = manifest.encode(), "application/yaml"
        else:
            content, kind = json.dumps(manifest).encode(), "application/json"
        result: dict[str, Any] = self._call(
            "POST", "/api/v1/workflows", content=content, headers={"Content-Type": kind}
        )
        return result

    def delete_workflow(self, name: str) -> dict[str, Any]:
        """Delete a workflow applied through the API."""
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/workflows/{name}")
        return result

    def deploy_workflow(
        self, workflow: Workflow, *, input: Any = None, run: bool = True
    ) -> Execution:
        """Apply ``workflow`` and start an execution of it (the product spec's verb)."""
        self.deploy(workflow.to_manifest())
        if not run:
            raise UsageError("deploy_workflow starts an execution; use deploy() to only apply")
        return Execution.from_api(self.run(workflow.name, input))

    def get_execution_status(self, execution_id: str) -> Execution:
        """An execution's state, output and steps."""
        return Execution.from_api(self.get_execution(execution_id))

    def get_agent_logs(self, execution_id: str, agent: str) -> str:
        """The log of one agent's step (its stdout, stderr and log() lines)."""
        for step in self.get_execution(execution_id)["steps"]:
            if step["step"] == agent:
                return str(step.get("log") or "")
        raise NotFound(f"execution {execution_id} has no step {agent!r}")
