"""`agentflow config set|get` and `auth login`: the CLI's settings file, 0600, key never shown."""

from __future__ import annotations

import stat

from typer.testing import CliRunner

from agentflowd.cli import app


def cli(tmp_path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "AGENTFLOW_API_URL": "", "AGENTFLOW_API_KEY": ""}
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    return result.exit_code, result.stdout, result.stderr


def test_settings_round_trip_and_the_key_stays_private(tmp_path):
    code, out, _ = cli(tmp_path, "config", "set", "api.endpoint", "http://127.0.0.1:9")
    assert code == 0 and "api.endpoint set" in out
    assert cli(tmp_path, "config", "get", "api.endpoint")[1].strip() == "http://127.0.0.1:9"
    code, out, _ = cli(tmp_path, "auth", "login", input="sk-secret-key\n")
    assert code == 0 and "sk-secret" not in out
    path = tmp_path / "agentflow" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code, out, _ = cli(tmp_path, "config", "get")
    assert "api.key: sk-s…" in out and "sk-secret-key" not in out
    code, _, err = cli(tmp_path, "config", "set", "api.secret", "x")
    assert code == 2 and "not a setting" in err
    # the endpoint is used by the remote commands (here: nothing listens there)
    code, _, err = cli(tmp_path, "list", "workflows")
    assert code == 1 and "127.0.0.1:9" in err
