"""Failover when a node is killed under load: how long requests pay for the dead node.

A real stack: redis-server, two mock workers (20 ms answers) in one pool, a gateway
process. Concurrent clients send requests back to back; after a while one worker is
SIGKILLed. Its health entry stays fresh for up to ``health.fresh_s``, so the gateway keeps
planning it: each request that hits it waits ``dispatch.accept_timeout_s`` and fails over,
until the node's breaker opens (5 failures) and it is skipped without a network call.

Reported: requests in flight on the killed node (they end at their deadline: never
retried), requests started after the kill (errors, latency, how many failed over), and
the failover window: from the kill to the end of the last request that tried the dead
node.

    cd services/api-router-service && python -m bench.failover_time [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from dataclasses import dataclass

import httpx
from tests.support.stack import chat

from bench.bench_stack import servers_stack
from bench.inference_latency import percentile


@dataclass
class Sample:
    started: float
    ended: float
    status: int
    attempts: int
    node: str


async def client(url: str, key: str, stop_at: float, out: list[Sample]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"X-API-Key": key}) as http:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            response = await http.post("/v1/inference", json=chat())
            out.append(
                Sample(
                    started,
                    time.monotonic(),
                    response.status_code,
                    int(response.headers.get("x-route-attempts", "0")),
                    response.headers.get("x-route-node", ""),
                )
            )


async def load(
    url: str, key: str, clients: int, doomed: object, before_s: float, after_s: float
) -> tuple[list[Sample], float]:
    samples: list[Sample] = []
    stop_at = time.monotonic() + before_s + after_s
    tasks = [asyncio.create_task(client(url, key, stop_at, samples)) for _ in range(clients)]
    await asyncio.sleep(before_s)
    killed_at = time.monotonic()
    doomed.send(signal.SIGKILL)  # type: ignore[attr-defined]
    await asyncio.gather(*tasks)
    return samples, killed_at


def report(samples: list[Sample], killed_at: float, args: argparse.Namespace) -> None:
    held = [s for s in samples if s.started < killed_at < s.ended and s.node != "node-b"]
    after = [s for s in samples if s.started >= killed_at]
    failed_over = [s for s in after if s.attempts > 1]
    latency_ms = [(s.ended - s.started) * 1000 for s in after]
    window = max((s.ended for s in failed_over), default=killed_at) - killed_at
    print(
        json.dumps(
            {
                "clients": args.clients,
                "accept_timeout_s": args.accept_timeout_s,
                "requests_before_kill": sum(1 for s in samples if s.ended <= killed_at),
                # In flight at the kill and not answered by the survivor: stuck on the dead node
                # (504 at the deadline), or answered by it just before the kill.
                "in_flight_on_killed_node": {
                    "count": len(held),
                    "statuses": sorted({s.status for s in held}),
                },
                "after_kill": {
                    "requests": len(after),
                    "errors": sum(1 for s in after if s.status != 200),
                    "failed_over": len(failed_over),
                    "p50_ms": round(statistics.median(latency_ms), 1) if latency_ms else None,
                    "p99_ms": round(percentile(latency_ms, 0.99), 1) if latency_ms else None,
                    "max_ms": round(max(latency_ms), 1) if latency_ms else None,
                },
                "failover_window_s": round(window, 2),
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--accept-timeout-s", type=float, default=2.0)
    parser.add_argument("--before-s", type=float, default=3.0)
    parser.add_argument("--after-s", type=float, default=8.0)
    args = parser.parse_args()
    mock = (
        "--backend",
        "mock",
        "--models",
        "llama3.2",
        "--mock-latency-ms",
        "20",
        "--max-concurrency",
        "8",
        "--health-interval-s",
        "1",
    )
    with servers_stack() as stack:
        doomed = stack.worker("node-a", *mock)
        stack.worker("node-b", *mock)
        gateway = stack.gateway_process(
            health={"refresh_interval_s": 1.0},
            dispatch={"accept_timeout_s": args.accept_timeout_s, "request_timeout_s": 10.0},
        )
        key = asyncio.run(stack.create_key("bench"))
        time.sleep(2.0)  # both nodes in the gateway's snapshot
        samples, killed_at = asyncio.run(
            load(gateway.url, key, args.clients, doomed, args.before_s, args.after_s)
        )
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
        breakers = [
            line
            for line in metrics.splitlines()
            if line.startswith(
                ("api_router_routing_breaker_state{", "api_router_routing_decisions_total{")
            )
        ]
        report(samples, killed_at, args)
        print("\n".join(breakers))


if __name__ == "__main__":
    main()
