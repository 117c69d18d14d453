"""A multi-process HTTP/1.1 load client for ``POST .../usage/events`` (stdlib only; wrk is not installed).

``python benchmarks/usage_load.py '<json job>'`` starts ``processes`` client processes, each with
``connections / processes`` threads holding one keep-alive TCP connection (TCP_NODELAY) each; every
connection sends ``count / connections`` requests, one in flight at a time, each with its own event
id (``<tag>-<connection>-<n>``: a new event, never a replay), and checks the status. All start at
the same instant. Prints one JSON line: ``{"seconds": wall time, "requests": n, "latencies_ms":
[sorted, every request], "body": first body}`` or ``{"error": ...}``.

Job: ``{"host", "port", "path", "token" (or null), "connections", "processes", "count", "tag",
"status", "product", "quantity"}``.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import sys
import threading
import time
from typing import Any


def _exchange(sock: socket.socket, buffer: bytearray, request: bytes) -> tuple[int, bytes]:
    sock.sendall(request)
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end])
    del buffer[:end + 4]
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, body


def _connection(job: dict[str, Any], index: int, count: int, start_at: float, out: list[Any]) -> None:
    head = (f"POST {job['path']} HTTP/1.1\r\nHost: {job['host']}\r\nContent-Type: application/json\r\n"
            + (f"Authorization: Bearer {job['token']}\r\n" if job.get("token") else ""))
    latencies: list[float] = []
    first = b""
    try:
        sock = socket.create_connection((job["host"], job["port"]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        while time.perf_counter() < start_at:
            time.sleep(0.0005)
        for n in range(count):
            body = json.dumps({"event_id": f"{job['tag']}-{index}-{n}", "product": job["product"],
                               "quantity": job["quantity"]}, separators=(",", ":")).encode()
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            status, answer = _exchange(sock, buffer, request)
            latencies.append(time.perf_counter() - started)
            if status != job["status"]:
                out.append({"error": f"status {status}: {answer[:300]!r}"})
                return
            first = first or answer
        sock.close()
    except OSError as exc:
        out.append({"error": repr(exc)})
        return
    out.append({"latencies": latencies, "body": first.decode(errors="replace")})


def _process(job: dict[str, Any], indexes: list[int], shares: list[int], start_at: float, queue: Any) -> None:
    out: list[Any] = []
    threads = [threading.Thread(target=_connection, args=(job, i, n, start_at, out))
               for i, n in zip(indexes, shares, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((out, time.perf_counter()))


def run(job: dict[str, Any]) -> dict[str, Any]:
    connections, processes, count = int(job["connections"]), int(job["processes"]), int(job["count"])
    processes = max(1, min(processes, connections))
    shares = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.perf_counter() + 0.3
    workers = [context.Process(target=_process, args=(job, list(range(p, connections, processes)),
                                                      shares[p::processes], start_at, queue))
               for p in range(processes)]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies: list[float] = []
    body = ""
    for out, _ended in results:
        for item in out:
            if "error" in item:
                return {"error": item["error"]}
            latencies += item["latencies"]
            body = body or item["body"]
    seconds = max(ended for _, ended in results) - start_at
    latencies.sort()
    return {"seconds": seconds, "requests": len(latencies), "latencies_ms": [round(x * 1000, 3) for x in latencies],
            "body": body}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
