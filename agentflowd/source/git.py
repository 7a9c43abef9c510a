"""A git repository the daemon follows: a local path, or a remote fetched into a mirror.

* A **local path** (``/srv/workflows`` or ``./repo``) is read in place: its objects are the
  truth, a commit is visible the moment it is made, and nothing is copied.
* A **remote** (``file://``, ``http(s)://``, ``ssh://`` or ``user@host:path``) is fetched into a
  bare mirror under the state directory, ``mirrors/<hash of the URL>.git``, and read from there.
  HTTPS takes a token (``AGENTFLOW_GIT_TOKEN``, or a token file); SSH a key file
  (``AGENTFLOW_GIT_SSH_KEY``), and the host must be in known_hosts
  (``AGENTFLOW_GIT_SSH_KNOWN_HOSTS``, else ``~/.ssh/known_hosts``): unknown hosts are refused.

Manifests are always read from a commit's tree (:func:`agentflowd.source.gitread.read_commit`),
never from a working tree. libgit2 repositories are not thread-safe: use one GitSource from one
thread (the daemon gives git its own worker).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from agentflowd.errors import AgentFlowError, RevisionNotFound, SourceError, TransientError
from agentflowd.manifest import Limits
from agentflowd.source.gitread import GitSnapshot, read_commit

__all__ = ["NOTES_REF", "GitCredentials", "GitSource", "is_remote"]

NOTES_REF = "refs/notes/agentflow"


def is_remote(url: str) -> bool:
    """True for URLs that must be fetched (anything but a local path)."""
    if "://" in url:
        return True
    # scp-like ssh syntax: user@host:path (a local path may contain ':' only after a '/')
    head = url.split("/", 1)[0]
    return ":" in head and not os.path.exists(url)


@dataclass(frozen=True, kw_only=True)
class GitCredentials:
    """How to authenticate to a remote. Secrets are read when needed and never logged."""

    token: str | None = None
    token_file: Path | None = None
    username: str = "x-access-token"
    ssh_key: Path | None = None
    ssh_public_key: Path | None = None
    ssh_passphrase: str = ""
    known_hosts: Path | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> GitCredentials:
        """Token from ``AGENTFLOW_GIT_TOKEN``; SSH key and known hosts from
        ``AGENTFLOW_GIT_SSH_KEY`` and ``AGENTFLOW_GIT_SSH_KNOWN_HOSTS``."""
        key = os.environ.get("AGENTFLOW_GIT_SSH_KEY")
        hosts = os.environ.get("AGENTFLOW_GIT_SSH_KNOWN_HOSTS")
        values: dict[str, Any] = {
            "token": os.environ.get("AGENTFLOW_GIT_TOKEN"),
            "ssh_key": Path(key) if key else None,
            "known_hosts": Path(hosts) if hosts else None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def secret(self) -> str | None:
        """The token, from the value or the file."""
        if self.token:
            return self.token
        if self.token_file is not None:
            try:
                return self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SourceError(f"cannot read token file {self.token_file}: {exc}") from exc
        return None


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, creds: GitCredentials) -> None:
        super().__init__()
        self.creds = creds
        self.attempts = 0

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self.attempts += 1
        if self.attempts > 3:  # libgit2 asks again after a refusal; stop the loop
            raise SourceError(f"authentication to {_redact(url)} failed")
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY and self.creds.ssh_key:
            public = self.creds.ssh_public_key or Path(str(self.creds.ssh_key) + ".pub")
            return pygit2.Keypair(
                username_from_url or "git",
                str(public),
                str(self.creds.ssh_key),
                self.creds.ssh_passphrase,
            )
        secret = self.creds.secret()
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and secret:
            return pygit2.UserPass(username_from_url or self.creds.username, secret)
        raise SourceError(f"{_redact(url)} asks for credentials and none are configured")


def _redact(url: str) -> str:
    """A URL without any password or token in it, for messages and logs."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class GitSource:
    """One repository, branch and sub-path that the daemon follows."""

    def __init__(
        self,
        url: str,
        *,
        branch: str = "main",
        path: str = "",
        state_dir: Path,
        credentials: GitCredentials | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.url = url
        self.branch = branch
        self.path = path.strip("/")
        self.remote = is_remote(url)
        self.ssh = self.remote and (url.startswith("ssh://") or "://" not in url)
        self.credentials = credentials or GitCredentials.from_env()
        self.limits = limits or Limits()
        self._image_digests: dict[str, tuple[str, int]] = {}
        if self.remote:
            digest = hashlib.sha256(url.encode()).hexdigest()[:16]
            self.repo_path = state_dir / "mirrors" / f"{digest}.git"
        else:
            found = pygit2.discover_repository(str(Path(url).expanduser()))
            if found is None:
                raise SourceError(f"{url} is not a git repository")
            self.repo_path = Path(found)
        self._repo: pygit2.Repository | None = None

    @property
    def display_url(self) -> str:
        """The URL without credentials."""
        return _redact(self.url)

    @property
    def ref(self) -> str:
        """The full name of the followed branch."""
        return f"refs/heads/{self.branch}"

    def repository(self) -> pygit2.Repository:
        """The repository read from (opened, or cloned as a mirror, on first use)."""
        if self._repo is None:
            if self.remote and not (self.repo_path / "HEAD").exists():
                self._clone()
            self._repo = pygit2.Repository(str(self.repo_path))
        return self._repo

    # -- the network: libgit2 for file:// and http(s)://, the git CLI for ssh -------------------
    #
    # pygit2 cannot verify SSH host keys: its certificate callback gets no key, and its
    # pass-through accepts any host (pygit2 1.21 callbacks.py). For ssh we therefore run git,
    # whose OpenSSH checks known_hosts strictly (StrictHostKeyChecking=yes, BatchMode).

    def _ssh_env(self) -> dict[str, str]:
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if self.credentials.ssh_key is not None:
            opts += ["-i", str(self.credentials.ssh_key), "-o", "IdentitiesOnly=yes"]
        if self.credentials.known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={self.credentials.known_hosts}"]
        return {
            **os.environ,
            "GIT_SSH_COMMAND": " ".join(["ssh", *(shlex.quote(o) for o in opts)]),
            "GIT_TERMINAL_PROMPT": "0",
        }

    def _git(self, *args: str, what: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["git", *args],  # noqa: S607 - git from PATH, as operators expect
                env=self._ssh_env(),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TransientError(f"cannot {what} {self.display_url}: {exc}", delay=30) from exc
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1:] or ["git failed"]
            message = f"cannot {what} {self.display_url}: {detail[0]}"
            if "Host key verification failed" in done.stderr or "Permission denied" in done.stderr:
                raise SourceError(message)
            raise TransientError(message, delay=30)
        return done.stdout

    def _clone(self) -> None:
        self.repo_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.ssh:
                self._git("clone", "--bare", "--quiet", self.url, str(self.repo_path), what="clone")
            else:
                pygit2.clone_repository(
                    self.url, str(self.repo_path), bare=True, callbacks=_Callbacks(self.credentials)
                )
        except (pygit2.GitError, AgentFlowError) as exc:
            shutil.rmtree(self.repo_path, ignore_errors=True)  # no half-made mirror next time
            if isinstance(exc, AgentFlowError):
                raise
            raise TransientError(f"cannot clone {self.display_url}: {exc}", delay=30) from exc

    def _fetch(self, refspecs: list[str]) -> None:
        if self.ssh:
            self._git(
                "-C", str(self.repo_path), "fetch", "--quiet", "origin", *refspecs, what="fetch"
            )
            return
        try:
            self.repository().remotes["origin"].fetch(
                refspecs, callbacks=_Callbacks(self.credentials)
            )
        except pygit2.GitError as exc:
            raise TransientError(f"cannot fetch {self.display_url}: {exc}", delay=30) from exc

    def _push(self, refspecs: list[str]) -> None:
        if self.ssh:
            self._git(
                "-C", str(self.repo_path), "push", "--quiet", "origin", *refspecs, what="push to"
            )
            return
        try:
            self.repository().remotes["origin"].push(
                refspecs, callbacks=_Callbacks(self.credentials)
            )
        except pygit2.GitError as exc:
            raise TransientError(f"cannot push to {self.display_url}: {exc}") from exc

    def _heads(self, *refs: str) -> dict[str, str]:
        if self.ssh:
            out = self._git("ls-remote", self.url, *(refs or (self.ref,)), what="reach")
            return {name: sha for sha, name in (line.split("\t", 1) for line in out.splitlines())}
        try:
            heads = (
                self.repository()
                .remotes["origin"]
                .list_heads(callbacks=_Callbacks(self.credentials))
            )
        except pygit2.GitError as exc:
            raise TransientError(f"cannot reach {self.display_url}: {exc}", delay=30) from exc
        return {head.name: str(head.oid) for head in heads if head.name}

    # -- what the reconciler uses ---------------------------------------------------------

    def fetch(self) -> str:
        """Bring the mirror up to date (remotes only) and return the branch's commit id."""
        self.repository()
        if self.remote:
            self._fetch([f"+{self.ref}:{self.ref}"])
        return self.tip()

    def remote_tip(self) -> str | None:
        """The branch's commit on the remote, asked without fetching (``git ls-remote``).

        Polling compares this first, so an unchanged remote costs one small request.
        """
        if not self.remote:
            return self.tip()
        self.repository()
        return self._heads().get(self.ref)

    def matching_refs(self, patterns: Sequence[str]) -> list[tuple[str, str]]:
        """(ref, commit) of every ref matching one of ``patterns`` (``refs/pull/*/head``).

        A remote mirror fetches the matching refs first.
        """
        if not patterns:
            return []
        repo = self.repository()
        if self.remote:
            self._fetch([f"+{p}:{p}" for p in patterns])
        found: list[tuple[str, str]] = []
        for name in sorted(repo.references):
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                try:
                    commit = repo.references[name].peel(pygit2.Commit)
                except (pygit2.InvalidSpecError, ValueError):
                    continue  # a tag of a tree or blob: nothing to validate
                found.append((name, str(commit.id)))
        return found

    def fetch_notes(self) -> None:
        """Take the remote's ``refs/notes/agentflow`` as the base for new statuses.

        Notes written by others (or by an earlier agentflowd with another state directory) are
        kept: we append to them and push without force.
        """
        self.repository()
        if NOTES_REF in self._heads(NOTES_REF):
            self._fetch([f"+{NOTES_REF}:{NOTES_REF}"])

    def push_notes(self) -> None:
        """Push ``refs/notes/agentflow`` to the remote (a fast-forward, never forced)."""
        self.repository()
        self._push([f"{NOTES_REF}:{NOTES_REF}"])

    def tip(self) -> str:
        """The commit the followed branch points at, without fetching."""
        repo = self.repository()
        try:
            return str(repo.references[self.ref].peel(pygit2.Commit).id)
        except (KeyError, pygit2.InvalidSpecError) as exc:
            raise RevisionNotFound(self.ref, self.display_url) from exc

    def snapshot(
        self, revision: str, *, unchanged: Container[tuple[str, str]] = frozenset()
    ) -> GitSnapshot:
        """The manifests of ``revision`` under the sub-path (``unchanged`` blobs not read)."""
        return read_commit(
            self.repo_path,
            revision,
            [self.path] if self.path else [],
            self.limits,
            unchanged=unchanged,
            digests=self._image_digests,
        )
