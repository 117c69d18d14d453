"""A local HTTP server for the stubs: serves on 127.0.0.1 (a free port) in a daemon thread."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LocalServer:
    """Serves ``server`` in a daemon thread from construction until :meth:`stop`."""

    def __init__(self, server: ThreadingHTTPServer, *, name: str, poll_interval: float = 0.05) -> None:
        server.daemon_threads = True
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop serving, close the socket and wait (briefly) for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
