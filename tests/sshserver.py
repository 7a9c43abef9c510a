"""A real OpenSSH server on 127.0.0.1 for git-over-ssh tests (Debian's openssh-server).

Runs as the current user (root here) with its own host key, config and authorized keys, all in
a temporary directory; never touches the machine's sshd.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.waiting import wait_for


@dataclass(frozen=True)
class SshServer:
    port: int
    client_key: Path
    known_hosts: Path
    user: str


def sshd_available() -> str | None:
    path = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if path is None and os.environ.get("CI"):
        pytest.fail("sshd is missing in CI (.ci/run installs Debian's openssh-server)")
    return path


@contextmanager
def ssh_server(root: Path) -> Iterator[SshServer]:
    sshd = sshd_available()
    if sshd is None:
        pytest.skip("sshd not installed (Debian package openssh-server); CI runs this")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "client_key")], check=True
    )
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    port = free_port()
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n",
        encoding="utf-8",
    )
    host_pub = (root / "host_key.pub").read_text().split()
    (root / "known_hosts").write_text(
        f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n", encoding="utf-8"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE
    )
    try:

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, what="sshd to listen", timeout=10)
        yield SshServer(
            port=port, client_key=root / "client_key", known_hosts=root / "known_hosts", user=user
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
