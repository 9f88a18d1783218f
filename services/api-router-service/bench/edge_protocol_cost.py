"""What the edge protocol (head deadlines and limits) costs per request, next to uvicorn's
own httptools protocol, side by side in one run.

Two uvicorn servers serve the same trivial ASGI app, one with ``http="httptools"``, one with
``EdgeProtocol``, both pinned to one core (``taskset``). A paced open-loop client on another
core alternates requests between them over keep-alive connections and reads each server's
CPU time: CPU per request per server, and latency (medians over rounds that alternate
which server is asked first). CPU time comes in 10 ms ticks, so on a shared machine the
difference is only as good as a few microseconds; ``--in-process`` adds a finer figure:
both protocols in one event loop on socket pairs, a client on the same loop alternating
between them, wall time per request (the difference is the protocol's own work).

    cd services/api-router-service && python -m bench.edge_protocol_cost [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from functools import partial

import psutil
from starlette.types import Receive, Scope, Send
from tests.support.servers import free_port, port_open, wait_until

from bench.inference_latency import percentile

_REQUEST = b"GET /ping HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def serve(kind: str, port: int) -> None:
    import uvicorn

    # Imported by both servers, so both carry the gateway's modules (and their memory,
    # which the garbage collector walks): the difference is the protocol alone.
    from api_router.api.edge_protocol import edge_protocol
    from api_router.config.settings import ServerSettings

    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools" if kind == "plain" else edge_protocol(ServerSettings()),
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run()


class Target:
    def __init__(self, kind: str, core: int) -> None:
        self.kind = kind
        self.port = free_port()
        argv = [sys.executable, "-m", "bench.edge_protocol_cost", "--serve", kind]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(core), *argv, "--port", str(self.port)]
        )
        wait_until(lambda: port_open(self.port), 15, f"{kind} server")
        self.conn = socket.create_connection(("127.0.0.1", self.port))
        self.latency_us: list[float] = []
        self.cpu_us: list[float] = []

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def request(self) -> None:
        started = time.perf_counter()
        self.conn.sendall(_REQUEST)
        answer = b""
        while not answer.endswith(b"ok"):
            answer += self.conn.recv(4096)
        self.latency_us.append((time.perf_counter() - started) * 1e6)

    def stop(self) -> None:
        self.conn.close()
        self.process.terminate()
        self.process.wait(10)


def measure(requests: int, rate: float, rounds: int) -> dict[str, object]:
    cores = os.sched_getaffinity(0)
    server_core = max(cores)
    os.sched_setaffinity(0, {min(cores)} if len(cores) > 1 else cores)
    targets = [Target("plain", server_core), Target("edge", server_core)]
    p50s: dict[str, list[float]] = {t.kind: [] for t in targets}
    try:
        for target in targets:  # warm up
            for _ in range(200):
                target.request()
        for round_no in range(rounds):
            # Each round alternates which server is asked first, so neither gains by order.
            order = targets if round_no % 2 == 0 else targets[::-1]
            _round(order, requests, rate)
            for target in targets:
                p50s[target.kind].append(percentile(target.latency_us, 0.5))
                target.latency_us.clear()
    finally:
        for target in targets:
            target.stop()
    return {
        "requests_per_server_per_round": requests,
        "rounds": rounds,
        "paced_rate_per_s": rate,
        **{
            t.kind: {
                "cpu_us_per_request": round(statistics.median(t.cpu_us), 1),
                "latency_p50_us": round(statistics.median(p50s[t.kind]), 1),
            }
            for t in targets
        },
    }


def _round(targets: list[Target], requests: int, rate: float) -> None:
    cpu_before = [t.cpu_s() for t in targets]
    interval = 1 / rate
    next_at = time.perf_counter()
    for _ in range(requests):
        for target in targets:
            next_at += interval / 2
            time.sleep(max(next_at - time.perf_counter(), 0))
            target.request()
    for target, before in zip(targets, cpu_before, strict=True):
        target.cpu_us.append((target.cpu_s() - before) / requests * 1e6)


def in_process(requests: int, rounds: int) -> dict[str, float]:
    """Microseconds per request of each protocol, both in this process's event loop."""
    import uvicorn
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from api_router.api.edge_protocol import edge_protocol
    from api_router.config.settings import ServerSettings

    protocols: dict[str, type[HttpToolsProtocol]] = {
        "plain": HttpToolsProtocol,
        "edge": edge_protocol(ServerSettings()),
    }

    async def run() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(_app, lifespan="off", log_config=None, access_log=False)
        config.load()
        state = ServerState()
        clients: dict[str, socket.socket] = {}
        for kind, protocol in protocols.items():
            server_end, clients[kind] = socket.socketpair()
            server_end.setblocking(False)
            clients[kind].setblocking(False)
            await loop.connect_accepted_socket(
                partial(protocol, config=config, server_state=state, app_state={}), server_end
            )
        samples: dict[str, list[float]] = {kind: [] for kind in protocols}
        for round_no in range(rounds):
            for kind in list(protocols)[:: 1 if round_no % 2 else -1]:
                started = time.perf_counter()
                for _ in range(requests):
                    await loop.sock_sendall(clients[kind], _REQUEST)
                    answer = b""
                    while not answer.endswith(b"ok"):
                        answer += await loop.sock_recv(clients[kind], 4096)
                samples[kind].append((time.perf_counter() - started) / requests * 1e6)
        for client in clients.values():
            client.close()
        return {f"{kind}_us": round(statistics.median(v), 2) for kind, v in samples.items()}

    return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="per server and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second in all")
    parser.add_argument("--in-process", action="store_true", help="also the in-process figure")
    parser.add_argument("--serve", choices=["plain", "edge"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    report: dict[str, object] = {"over_sockets": measure(args.requests, args.rate, args.rounds)}
    if args.in_process:
        report["in_process_per_request"] = in_process(args.requests, args.rounds * 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
