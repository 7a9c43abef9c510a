"""sd_notify: datagrams to a path socket or an abstract one; silent without systemd."""

from __future__ import annotations

import os
import socket

from agentflowd.sdnotify import notify


def test_path_and_abstract_sockets(tmp_path, monkeypatch):
    path_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path_sock.bind(str(tmp_path / "n.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
    assert notify("READY=1", "STATUS=ok")
    assert path_sock.recv(100) == b"READY=1\nSTATUS=ok"
    path_sock.close()

    name = f"agentflow-test-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    assert notify("WATCHDOG=1")
    assert abstract.recv(100) == b"WATCHDOG=1"
    abstract.close()


def test_no_socket_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify("READY=1") is False
