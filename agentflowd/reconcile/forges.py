"""Commit statuses on GitHub, GitLab and Gitea (or Forgejo), over their REST APIs with httpx.

Each forge names things its own way; :class:`ForgeSink` maps our :class:`CommitStatus` onto it:

* GitHub: ``POST /repos/{owner}/{repo}/statuses/{sha}``, ``Authorization: Bearer <token>``;
  states error, failure, pending, success.
* GitLab: ``POST /api/v4/projects/{url-encoded path}/statuses/{sha}``, ``PRIVATE-TOKEN``;
  states pending, running, success, failed, canceled (our failure and error are ``failed``).
* Gitea/Forgejo: ``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}``,
  ``Authorization: token <token>``; states pending, success, error, failure, warning.

Quirks handled: GitLab answers 400 ("Cannot transition status...") to a repeat of the current
state, which means the status is already there; GitHub keeps at most 1,000 statuses per commit
and context and answers 422 after that; descriptions are cut to 140 characters (GitHub) and 255
(GitLab). 429 and 5xx are retried with backoff (honouring ``Retry-After``); 401/403/404 are
permanent (a token or repository problem) and say so. Tokens never appear in messages.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from agentflowd.errors import PermanentError, TransientError
from agentflowd.reconcile.status import CommitStatus
from agentflowd.store import RevisionState

__all__ = ["Forge", "ForgeSink"]


class Forge(enum.StrEnum):
    """Supported forges."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


_GITLAB_STATES = {
    RevisionState.PENDING: "pending",
    RevisionState.SUCCESS: "success",
    RevisionState.FAILURE: "failed",
    RevisionState.ERROR: "failed",
}


class ForgeSink:
    """A :class:`~agentflowd.reconcile.status.StatusSink` posting to one forge repository."""

    def __init__(
        self,
        *,
        forge: Forge,
        base_url: str,
        repo: str,
        token: str,
        client: httpx.Client | None = None,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.forge = Forge(forge)
        self.name = self.forge.value
        self.base_url = base_url.rstrip("/")
        self.repo = repo.strip("/")
        self._token = token
        self._client = client or httpx.Client(timeout=10.0)
        self.max_attempts = max_attempts
        self.sleep = sleep

    def _request(self, status: CommitStatus) -> tuple[str, dict[str, str], dict[str, Any]]:
        if self.forge is Forge.GITLAB:
            url = (
                f"{self.base_url}/api/v4/projects/{quote(self.repo, safe='')}/statuses/{status.sha}"
            )
            body: dict[str, Any] = {
                "state": _GITLAB_STATES[status.state],
                "name": status.context,
                "description": status.description[:255],
            }
            headers = {"PRIVATE-TOKEN": self._token}
        else:
            prefix = "/api/v1" if self.forge is Forge.GITEA else ""
            url = f"{self.base_url}{prefix}/repos/{self.repo}/statuses/{status.sha}"
            body = {
                "state": status.state.value,
                "context": status.context,
                "description": status.description[:140],
            }
            scheme = "token" if self.forge is Forge.GITEA else "Bearer"
            headers = {"Authorization": f"{scheme} {self._token}"}
        if status.target_url:
            body["target_url"] = status.target_url
        headers["Accept"] = "application/json"
        return url, headers, body

    def post(self, status: CommitStatus) -> None:
        """Post ``status``; retries 429/5xx/timeouts, raises on what retrying cannot fix."""
        url, headers, body = self._request(status)
        delay = 0.5
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.post(url, headers=headers, json=body)
            except httpx.TransportError as exc:
                problem = f"cannot reach {self.name} ({type(exc).__name__})"
                wait = delay
            else:
                if response.status_code < 300:
                    return
                if self._already_there(response):
                    return
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"{self.name} answered {response.status_code}"
                    after = _retry_after(response)
                    wait = delay if after is None else after
                else:
                    raise PermanentError(self._refusal(response))
            if attempt == self.max_attempts:
                raise TransientError(f"{problem} after {attempt} attempts", delay=wait)
            self.sleep(min(wait, 30.0))
            delay = min(delay * 2, 8.0)

    def _already_there(self, response: httpx.Response) -> bool:
        # GitLab refuses to "transition" a status into the state it already has.
        return (
            self.forge is Forge.GITLAB
            and response.status_code == 400
            and "cannot transition status" in response.text.lower()
        )

    def _refusal(self, response: httpx.Response) -> str:
        code = response.status_code
        if code in (401, 403):
            return f"{self.name} refused the token ({code}); check its scopes for {self.repo}"
        if code == 404:
            return f"{self.name} does not know {self.repo} or this commit (404)"
        if self.forge is Forge.GITHUB and code == 422 and "maximum" in response.text.lower():
            return "GitHub keeps at most 1,000 statuses per commit and context; not posted"
        return f"{self.name} answered {code}: {response.text[:200]}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
