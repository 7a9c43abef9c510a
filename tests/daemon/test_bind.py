"""The API's listening socket says it is TCP, so asyncio turns Nagle off on every connection
(with proto 0 each keep-alive answer waited ~40 ms for the client's delayed ACK)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from agentflowd.config import DaemonConfig
from agentflowd.daemon import Daemon


def test_accepted_connections_have_nagle_off(tmp_path: Path) -> None:
    daemon = Daemon(DaemonConfig(repo=str(tmp_path), listen="127.0.0.1:0"))
    listening = daemon._bind()
    seen: list[int] = []

    async def serve() -> None:
        done = asyncio.Event()

        async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            done.set()

        server = await asyncio.start_server(accepted, sock=listening)
        host, port = daemon.address or ("", 0)
        _reader, writer = await asyncio.open_connection(host, port)
        await done.wait()
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(serve())
    assert listening.proto == socket.IPPROTO_TCP
    assert seen == [1]
