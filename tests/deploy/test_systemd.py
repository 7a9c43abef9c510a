"""The systemd unit: verified by systemd-analyze, hardened past a threshold, config valid.

Never boots systemd itself (its boot-time clean-up empties the host's /tmp); the daemon's
notify protocol is tested against a fake NOTIFY_SOCKET in tests/daemon.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentflowd.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "agentflowd.service"
BIN = Path(sys.executable).parent


def unit_with_real_binary(tmp_path: Path) -> Path:
    # systemd-analyze verify fails when ExecStart's binary does not exist: point it at ours
    text = UNIT.read_text().replace("/usr/local/bin/agentflowd", str(BIN / "agentflowd"))
    path = tmp_path / "agentflowd.service"
    path.write_text(text)
    return path


def test_unit_verifies_with_no_warnings(tmp_path):
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit_with_real_binary(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on unknown keys and only warns: the output must be empty
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def test_unit_is_hardened(tmp_path):
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=20",
            str(unit_with_real_binary(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    score = done.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in score and ("OK" in score or "SAFE" in score), score


def test_unit_runs_the_daemon_as_notify_with_reload_and_watchdog():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30s",
        "DynamicUser=yes",
        "StateDirectory=agentflow",
        "ProtectSystem=strict",
    ):
        assert line in text.splitlines(), line
    assert "serve --config /etc/agentflow/agentflowd.yaml" in text


def test_example_config_is_valid():
    cfg = load_config(file=ROOT / "systemd" / "agentflowd.yaml", environ={})
    assert cfg.repo.startswith("https://") and cfg.validate_refs == ("refs/pull/*/head",)
