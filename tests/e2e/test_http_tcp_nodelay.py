"""``billing serve``'s HTTP protocol turns Nagle's algorithm off on accepted connections even when the
listening socket was created the way uvicorn creates it for ``--workers`` above 1 (``proto`` 0,
where asyncio leaves Nagle on and every response waits ~40 ms for a delayed ACK)."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from entrypoints.http.tcp import NoDelayH11Protocol, NoDelayHttpToolsProtocol

Protocol = type[H11Protocol] | type[HttpToolsProtocol]


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
    raise AssertionError("no request is sent")


async def _nodelay_of_accepted_connection(protocol: Protocol) -> int:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as uvicorn's bind_socket
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.proto == 0
        config = Config(_app, lifespan="off")
        config.load()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(lambda: protocol(config, ServerState(), {}), accepted)
        value = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        transport.close()
        return value
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize(("protocol", "nodelay"), [(NoDelayHttpToolsProtocol, True), (NoDelayH11Protocol, True),
                                                  (HttpToolsProtocol, False), (H11Protocol, False)],
                         ids=["billing-serve", "h11-nodelay", "uvicorn-httptools", "uvicorn-h11"])
def test_accepted_connections_have_nagle_off(protocol: Protocol, nodelay: bool) -> None:
    # In a thread of its own: other e2e tests may leave an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        value = pool.submit(asyncio.run, _nodelay_of_accepted_connection(protocol)).result()
    assert bool(value) is nodelay
