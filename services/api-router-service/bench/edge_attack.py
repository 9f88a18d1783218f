"""Hostile connections against a real gateway: how long it holds them, and its memory.

Three attacks on `api-router serve` (the bench stack: real redis-server, broker, a worker
on a fake Ollama), one after the other, each while a client keeps sending legitimate
inference requests (their latency is reported):

- ``slow_head``: 200 connections each send a request line, then one header byte a second;
- ``large_head``: 200 connections each send 16 KiB of one header field every 0.5 s;
- ``silent``: 200 connections that send nothing.

For each: how many connections the gateway still held after 45 s, when it closed them
(median and max seconds after the connection opened), what it answered, and its peak RSS
over the baseline.

    cd services/api-router-service && python -m bench.edge_attack [--sockets N]
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable

import httpx
import psutil
from tests.support.stack import chat

from bench.bench_stack import bench_stack
from bench.inference_latency import percentile

_OBSERVE_S = 45.0
_HEAD = b"POST /v1/inference HTTP/1.1\r\nHost: bench\r\nX-Pad: "

# name: (sent on connect, then sent every interval; None: nothing more)
ATTACKS: dict[str, tuple[bytes, bytes, float | None]] = {
    "slow_head": (_HEAD, b"a", 1.0),
    "large_head": (_HEAD, b"a" * 16384, 0.5),
    "silent": (b"", b"", None),
}


def attack(port: int, pid: int, name: str, sockets: int, legit: Callable[[], float]) -> object:
    first, more, interval = ATTACKS[name]
    process = psutil.Process(pid)
    baseline = process.memory_info().rss
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    opened = time.monotonic()
    for conn in conns:
        conn.sendall(first)
    closed_after: dict[int, float] = {}
    answers: dict[str, int] = {}
    peak = baseline
    latencies: list[float] = []
    stop = threading.Event()
    client = threading.Thread(target=lambda: _legit_loop(legit, latencies, stop))
    client.start()
    next_send = opened
    while time.monotonic() - opened < _OBSERVE_S and len(closed_after) < sockets:
        if interval is not None and time.monotonic() >= next_send:
            next_send += interval
            for index, conn in enumerate(conns):
                if index not in closed_after:
                    try:
                        conn.sendall(more)
                    except OSError:
                        pass  # closed by the gateway: seen below
        readable, _, _ = select.select(
            [c for i, c in enumerate(conns) if i not in closed_after], [], [], 0.1
        )
        for conn in readable:
            index = conns.index(conn)
            closed_after[index] = time.monotonic() - opened
            status = _status(conn)
            answers[status] = answers.get(status, 0) + 1
        peak = max(peak, process.memory_info().rss)
    stop.set()
    client.join()
    for conn in conns:
        conn.close()
    held = sorted(closed_after.values())
    return {
        "sockets": sockets,
        f"still_held_after_{_OBSERVE_S:g}_s": sockets - len(closed_after),
        "closed_after_s": {
            "median": round(statistics.median(held), 1) if held else None,
            "max": round(held[-1], 1) if held else None,
        },
        "answers": answers,
        "rss_baseline_mb": round(baseline / 1e6, 1),
        "rss_peak_over_baseline_mb": round((peak - baseline) / 1e6, 1),
        "legit_requests": len(latencies),
        "legit_p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
    }


def _status(conn: socket.socket) -> str:
    try:
        first = conn.recv(64)
    except OSError:
        return "reset"
    return first.split(b"\r\n", 1)[0].decode(errors="replace") or "closed silently"


def _legit_loop(legit: Callable[[], float], latencies: list[float], stop: threading.Event) -> None:
    while not stop.is_set():
        latencies.append(legit())
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    args = parser.parse_args()
    with bench_stack() as running, httpx.Client(timeout=30) as client:
        port = int(running.gateway_url.rsplit(":", 1)[1])
        pid = _listener_pid(port)

        def legit() -> float:
            started = time.perf_counter()
            answer = client.post(
                f"{running.gateway_url}/v1/inference",
                json=chat(),
                headers={"X-API-Key": running.key},
            )
            answer.raise_for_status()
            return time.perf_counter() - started

        report = {
            name: attack(port, pid, name, args.sockets, legit) for name in args.attacks.split(",")
        }
    print(json.dumps(report, indent=2))


def _listener_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            return conn.pid
    raise SystemExit(f"nothing listens on port {port}")


if __name__ == "__main__":
    main()
