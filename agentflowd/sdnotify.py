"""systemd's notify protocol: a datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``.

Twenty lines of stdlib instead of a package. A no-op when not started by systemd (no socket).
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify"]


def notify(*lines: str) -> bool:
    """Send ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``...; True when a socket took it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
    except OSError:
        return False
    return True
