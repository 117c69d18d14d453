"""A small HTTP/1.1 load generator, run as its own process so that it does not share the server's GIL.

It keeps ``connections`` keep-alive TCP connections (TCP_NODELAY) to one loopback server, and on
each sends the same prepared request bytes over and over, one request in flight per connection,
until ``count`` requests have been answered in all. Each answer is read whole (``Content-Length``
or chunked) and its status checked; the first body is returned so the caller can check it.

Driven over stdin/stdout, one JSON object a line, so one process serves every round:

    {"host": "127.0.0.1", "port": 8000, "request": "<base64 of the raw request>", "count": 500,
     "connections": 2, "status": 200}
    -> {"seconds": 0.41, "requests": 500, "body": "<base64 of the first body>"}
    -> {"error": "..."}            (a wrong status, a closed connection)

:class:`LoadGenerator` starts it (``python benchmarks/loadgen.py``: the stdlib only) and is the parent's handle.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        status_line, *header_lines = head.split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            return status, self._exactly(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._exactly(2)
            self._exactly(2)
            return status, b"".join(parts)
        if status in (204, 304):
            return status, b""
        raise ValueError("an answer without Content-Length or chunked encoding")

    def close(self) -> None:
        self.sock.close()


def _run(job: dict[str, Any], pool: dict[tuple[str, int, int], list[_Connection]]) -> dict[str, Any]:
    host, port, wanted = str(job["host"]), int(job["port"]), int(job["connections"])
    request = base64.b64decode(job["request"])
    count, status = int(job["count"]), int(job["status"])
    connections = pool.get((host, port, wanted))
    if connections is None:
        connections = pool[(host, port, wanted)] = [_Connection(host, port) for _ in range(wanted)]
    shares = [count // wanted + (1 if i < count % wanted else 0) for i in range(wanted)]
    first: list[bytes] = []
    errors: list[str] = []

    def worker(connection: _Connection, share: int) -> None:
        try:
            for _ in range(share):
                got, body = connection.exchange(request)
                if got != status:
                    errors.append(f"status {got}: {body[:300]!r}")
                    return
                if not first:
                    first.append(body)
        except (OSError, ValueError) as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(c, n)) for c, n in zip(connections, shares, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        return {"error": errors[0]}
    return {"seconds": seconds, "requests": count, "body": base64.b64encode(first[0] if first else b"").decode()}


def main() -> None:
    pool: dict[tuple[str, int, int], list[_Connection]] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = _run(json.loads(line), pool)
        except (OSError, ValueError, KeyError) as exc:
            answer = {"error": repr(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for connections in pool.values():
        for connection in connections:
            connection.close()


class LoadGenerator:
    """The parent's handle on one load-generator process (``with LoadGenerator() as load: ...``)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter running this file
            [sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1)

    def run(self, *, host: str, port: int, request: bytes, count: int, connections: int,
            status: int) -> tuple[float, bytes]:
        """Send ``request`` ``count`` times; returns (seconds, the first answer's body)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {"host": host, "port": port, "request": base64.b64encode(request).decode(), "count": count,
               "connections": connections, "status": status}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline() or '{"error": "the load generator exited"}')
        if "error" in answer:
            raise AssertionError(f"load generator: {answer['error']}")
        return float(answer["seconds"]), base64.b64decode(answer["body"])

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


if __name__ == "__main__":
    main()
