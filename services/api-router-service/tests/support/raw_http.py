"""HTTP by hand over raw sockets: what a hostile client sends, byte for byte."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(conn: socket.socket, timeout_s: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    conn.settimeout(timeout_s)
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def parse_answers(raw: bytes) -> list[RawAnswer]:
    """The responses in ``raw`` (each with a Content-Length), in order."""
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        answers.append(RawAnswer(int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return answers


def exchange(port: int, raw: bytes) -> list[RawAnswer]:
    """Send ``raw`` on a new connection that asks to be closed after it, read the answers."""
    with connect(port) as conn:
        conn.sendall(raw)
        return parse_answers(read_until_closed(conn))


def closed_by_server(conn: socket.socket) -> bool:
    """True once the server has closed ``conn`` (or answered on it); never blocks."""
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable)


def wait_all_closed(conns: list[socket.socket], timeout_s: float) -> list[bytes]:
    """What the server sent on each connection before closing it (b"": closed silently)."""
    deadline = time.monotonic() + timeout_s
    pending = set(conns)
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 0.2)
        pending -= set(readable)
    if pending:
        raise TimeoutError(f"{len(pending)} of {len(conns)} connections still open")
    return [read_until_closed(conn, 5) for conn in conns]
