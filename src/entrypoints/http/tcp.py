"""uvicorn's HTTP protocols (httptools, h11) with ``TCP_NODELAY`` on every accepted connection (issue 16).

asyncio turns Nagle's algorithm off only on sockets whose ``proto`` is ``IPPROTO_TCP``. With
``--workers`` above 1, uvicorn binds the listening socket itself as ``socket(AF_INET,
SOCK_STREAM)`` (``proto`` 0) and hands it to the worker processes, so their accepted connections
keep Nagle on: the response body, written after its headers, then waits for the client's delayed
ACK, about 40 ms per request on Linux. ``billing serve`` uses the httptools one (uvicorn's C parser,
a pinned dependency since issue 16's third pass) whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its HTTP parser in C) with ``TCP_NODELAY``, as above."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
