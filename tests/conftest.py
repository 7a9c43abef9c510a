"""Shared fixtures: a throwaway PostgreSQL database, git repositories, manifest text."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.manifests import VALID

# Daemons started by the tests do not build the Python runtime at start (the tests that run
# Python steps share one session cache, `agentflow_cache`).
os.environ.setdefault("AGENTFLOW_WARM_PYTHON", "false")

POSTGRES_ENV = "AGENTFLOW_TEST_POSTGRES_URL"


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create an empty database on the server of ``admin_url``; drop it on exit."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"agentflow_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def postgres_admin_url() -> str:
    """The server named by AGENTFLOW_TEST_POSTGRES_URL; skips when it is unset."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return admin_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test run, dropped afterwards.

    Skips only when AGENTFLOW_TEST_POSTGRES_URL is unset (`.ci/run` always sets it).
    """
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def git(cwd: Path, *args: str) -> str:
    """Run the git CLI in ``cwd`` with a fixed identity; returns stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def init_repo(path: Path) -> Path:
    """``git init`` a repository and put the agent images the test manifests use in its work
    tree (the first commit picks them up)."""
    git(path, "init", "-q", "-b", "main")
    return write_agents(path)


def write_agents(path: Path) -> Path:
    """Put the agent images the test manifests use into the work tree ``path``."""
    from tests.manifests import AGENT_FILES

    for rel, content in AGENT_FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(content, encoding="utf-8")
    return path


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    """Write (or, for None, delete) ``files`` in ``repo`` and commit; returns the new sha."""
    for rel, content in files.items():
        path = repo / rel
        if content is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """Make a git repository whose first commit holds ``files`` (path -> content)."""

    def make(files: dict[str, str | bytes]) -> Path:
        repo = tmp_path / "repo"
        repo.mkdir(exist_ok=True)
        if not (repo / ".git").exists():
            init_repo(repo)
        for rel, content in files.items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "manifests")
        return repo

    return make


@pytest.fixture(scope="session")
def agentflow_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache directory for the session (the Python runtime is built once, ~15 s)."""
    path = tmp_path_factory.mktemp("agentflow-cache")
    old = os.environ.get("AGENTFLOW_CACHE_DIR")
    os.environ["AGENTFLOW_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            del os.environ["AGENTFLOW_CACHE_DIR"]
        else:
            os.environ["AGENTFLOW_CACHE_DIR"] = old


@pytest.fixture
def valid_text() -> str:
    """A valid manifest using most features."""
    return VALID


def admin_token(access: object, *, name: str = "test-admin", role: str = "admin") -> str:
    """A new key of ``role`` in an access store (in-process tests)."""
    from datetime import UTC, datetime

    from agentflowd.auth.keys import issue

    token, _key = issue(
        access,  # type: ignore[arg-type]
        name=name,
        role=role,
        selector=None,
        expires=None,
        created_by="local:test",
        now=datetime.now(UTC),
    )
    return token


def bearer(token: str) -> dict[str, str]:
    """The header that sends ``token``."""
    return {"Authorization": f"Bearer {token}"}


#: The admin key of every daemon a test starts as a process (its ``bootstrap_key_file``).
TEST_ADMIN_TOKEN = "afk_testadmin234_" + "t" * 43


def bootstrap_key_file(directory: Path) -> Path:
    """Write :data:`TEST_ADMIN_TOKEN` where a daemon started by a test reads it."""
    path = directory / "bootstrap.key"
    path.write_text(TEST_ADMIN_TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session", autouse=True)
def _test_admin_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every daemon a test starts (in process or not) makes :data:`TEST_ADMIN_TOKEN` its
    bootstrap admin key, and every client (the CLI, AgentFlowClient) sends it by default."""
    path = bootstrap_key_file(tmp_path_factory.mktemp("keys"))
    saved = {k: os.environ.get(k) for k in ("AGENTFLOW_BOOTSTRAP_KEY_FILE", "AGENTFLOW_API_KEY")}
    os.environ["AGENTFLOW_BOOTSTRAP_KEY_FILE"] = str(path)
    os.environ["AGENTFLOW_API_KEY"] = TEST_ADMIN_TOKEN
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


#: Headers with the test admin key, for raw HTTP calls to a daemon a test started.
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
