"""Daemon configuration: file < environment < flags, strict keys, clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agentflowd.config import load_config
from agentflowd.errors import UsageError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentflowd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_file_then_env_then_flags(tmp_path):
    file = write(
        tmp_path, "repo: /from/file\nbranch: dev\nlisten: 0.0.0.0:9000\npoll_interval: 5m\n"
    )
    cfg = load_config(
        file=file,
        environ={"AGENTFLOW_BRANCH": "env", "AGENTFLOW_LISTEN": "127.0.0.1:1"},
        flags={"listen": "127.0.0.1:2"},
    )
    assert (cfg.repo, cfg.branch, cfg.listen) == ("/from/file", "env", "127.0.0.1:2")
    assert cfg.poll_interval == timedelta(minutes=5) and cfg.poll_seconds == 300
    assert cfg.database_url == ".agentflow/agentflow.db"
    assert (cfg.host, cfg.port) == ("127.0.0.1", 2)


def test_environment_lists_and_booleans():
    cfg = load_config(
        environ={
            "AGENTFLOW_REPO": "/r",
            "AGENTFLOW_PRUNE": "false",
            "AGENTFLOW_VALIDATE_REFS": "refs/heads/*, refs/pull/*/head",
        }
    )
    assert cfg.prune is False
    assert cfg.validate_refs == ("refs/heads/*", "refs/pull/*/head")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("repo: /r\nrepos: /typo\n", "repos: Extra inputs are not permitted"),
        ("branch: main\n", "repo: Field required"),
        ("repo: /r\nlisten: nowhere\n", "listen: Value error, 'nowhere' is not HOST:PORT"),
        ("repo: /r\npoll_interval: 60\n", "poll_interval"),
        ("repo: [unclosed\n", "YAML syntax error"),
        ("- a\n- b\n", "the config is a mapping"),
        ("repo: /r\nstatuses:\n  - {forge: bitbucket, url: x, repo: o/r}\n", "statuses.0.forge"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, text, fragment):
    file = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        load_config(file=file, environ={})
    assert str(info.value).startswith(str(file)) and fragment in str(info.value)


def test_forge_tokens_come_from_files_or_variables(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("abc\n", encoding="utf-8")
    file = write(
        tmp_path,
        "repo: /r\nstatuses:\n"
        "  - forge: github\n    url: https://api.github.com\n    repo: o/r\n"
        f"    token_file: {token}\n"
        "  - forge: gitlab\n    url: https://gl\n    repo: g/s/p\n    token_env: GL_TOKEN\n",
    )
    cfg = load_config(file=file, environ={})
    assert cfg.statuses[0].token() == "abc"
    monkeypatch.delenv("GL_TOKEN", raising=False)
    with pytest.raises(UsageError, match="no token for gitlab g/s/p"):
        cfg.statuses[1].token()
    monkeypatch.setenv("GL_TOKEN", "xyz")
    assert cfg.statuses[1].token() == "xyz"


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(file=tmp_path / "nope.yaml", environ={})


def test_the_router_section_is_checked_at_load(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "repo: /srv/r\nrouter:\n  providers:\n    local: {baseUrl: 'http://127.0.0.1:11434/v1'}\n"
        "  prices:\n    local/llama-3-8b: {input: 0, output: 0}\n",
        encoding="utf-8",
    )
    config = load_config(file=good, environ={"AGENTFLOW_LLM_MOCK": "yes"})
    assert config.router["providers"]["local"]["baseUrl"].endswith("/v1") and config.llm_mock
    bad = tmp_path / "bad.yaml"
    bad.write_text("repo: /srv/r\nrouter:\n  providers:\n    x: {kind: azure}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.yaml: router: .*router.providers.x.kind"):
        load_config(file=bad, environ={})


def test_the_public_view_masks_secret_values_but_not_where_secrets_are():
    from agentflowd.config import DaemonConfig

    config = DaemonConfig(
        repo="/srv/repo",
        database="postgresql://agentflow:hunter2@db/agentflow",
        webhook_secret_file="/run/credentials/agentflowd/webhook",
        statuses=[
            {
                "forge": "github",
                "url": "https://api.github.com",
                "repo": "o/r",
                "token_env": "GH_TOKEN",
            }
        ],
    )
    view = config.public_view()
    assert view["database"] == "postgresql://agentflow:***@db/agentflow"
    assert view["webhook_secret_file"] == "/run/credentials/agentflowd/webhook"
    assert view["statuses"][0]["token_env"] == "GH_TOKEN"
    assert "hunter2" not in str(view)
