"""Two drills on real processes: a worker that dies holding accepted jobs, and a gateway
shut down with requests in flight on a node that never answers.

``kill``: redis-server, a broker, two mock workers answering in 20 ms and a third,
``node-c``, answering in 3 s (same pool); clients send whole and streamed requests back to
back; after a while ``node-c`` is SIGKILLed and not restarted. Reported: the requests it
held (in flight at the kill, not answered by a survivor at the first attempt), their
statuses and how long each waited after the kill; and the requests started after it.

``shutdown``: one mock worker answering in 20 ms and ``node-n``, a mock worker whose
backend never answers within the request deadline; clients send requests back to back;
after a while the gateway gets SIGTERM. Reported: the statuses of the requests in flight
at the signal, those sent during the shutdown, how long the gateway took to exit, whether
each in-flight request left a usage record (Kafka) and an audit record (Redis), and the
tracebacks in the gateway's log.

    cd services/api-router-service && python -m bench.dead_node_drill kill|shutdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from tests.support.processes import ServiceProcess
from tests.support.sse import parse_sse
from tests.support.stack import Stack, chat
from tests.support.usage_topic import read_usage

from bench.bench_stack import servers_stack


@dataclass
class Sample:
    request_id: str
    streamed: bool
    started: float
    ended: float
    status: str  # the HTTP status, or for a stream that failed the error event's code
    attempts: int
    node: str  # the node that answered
    first_node: str  # X-Route-Node: for a stream, the node that accepted it first


async def one_request(http: httpx.AsyncClient, streamed: bool) -> Sample:
    started = time.monotonic()
    status, attempts, node, first_node, request_id = "", 0, "", "", ""
    try:
        async with http.stream("POST", "/v1/inference", json=chat(stream=streamed)) as response:
            status = str(response.status_code)
            attempts = int(response.headers.get("x-route-attempts", "0"))
            node = first_node = response.headers.get("x-route-node", "")
            request_id = response.headers.get("x-request-id", "")
            body = (await response.aread()).decode()
        if streamed and status == "200":
            events, _ = parse_sse(body)
            last = events[-1] if events else None
            if last is None or last.event != "done":
                status = last.json()["error"]["code"] if last is not None else "cut"
            else:  # the node that answered (the header names the one that accepted first)
                node = last.json()["node_id"]
        elif status != "200":
            status = f"{status} {error_code(body)}"
    except httpx.ConnectError:
        status = "refused"
        await asyncio.sleep(0.1)  # as a client backing off would
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    ended = time.monotonic()
    return Sample(request_id, streamed, started, ended, status, attempts, node, first_node)


def mock_worker(latency_ms: int, concurrency: int, tokens_per_second: int = 0) -> list[str]:
    """The arguments of a worker with the mock backend serving ``llama3.2``."""
    return [
        *("--backend", "mock", "--models", "llama3.2"),
        *("--mock-latency-ms", str(latency_ms)),
        *("--mock-tokens-per-second", str(tokens_per_second)),
        *("--max-concurrency", str(concurrency), "--health-interval-s", "1"),
    ]


def error_code(body: str) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return repr(body[:40])  # not our error shape


async def client(url: str, key: str, streamed: bool, stop_at: float, out: list[Sample]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=300, headers={"X-API-Key": key}) as http:
        while time.monotonic() < stop_at:
            out.append(await one_request(http, streamed))


async def load_and(
    url: str, key: str, clients: int, before_s: float, after_s: float, act: ServiceProcess
) -> tuple[list[Sample], float]:
    """Load for ``before_s``, SIGKILL or SIGTERM ``act``, keep sending for ``after_s``."""
    samples: list[Sample] = []
    stop_at = time.monotonic() + before_s + after_s
    tasks = [
        asyncio.create_task(client(url, key, i % 2 == 1, stop_at, samples)) for i in range(clients)
    ]
    await asyncio.sleep(before_s)
    acted_at = time.monotonic()
    act.send(signal.SIGKILL if act.name.startswith("worker") else signal.SIGTERM)
    await asyncio.gather(*tasks)
    return samples, acted_at


def statuses(samples: list[Sample]) -> dict[str, int]:
    return dict(sorted(Counter(s.status for s in samples).items()))


def longest(seconds: Iterable[float]) -> float:
    return round(max(seconds, default=0.0), 2)


def kill_drill(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    stack.worker("node-a", *mock_worker(20, 8, 50))
    stack.worker("node-b", *mock_worker(20, 8, 50))
    doomed = stack.worker("node-c", *mock_worker(3000, 8, 50))
    gateway = stack.gateway_process(
        health={"refresh_interval_s": 1.0},
        dispatch={
            "request_timeout_s": args.request_timeout_s,
            "idle_timeout_s": args.idle_timeout_s,
        },
    )
    key = asyncio.run(stack.create_key("drill"))
    time.sleep(2.0)  # every node in the gateway's snapshot
    samples, killed_at = asyncio.run(
        load_and(gateway.url, key, args.clients, args.before_s, args.after_s, doomed)
    )
    in_flight = [s for s in samples if s.started < killed_at < s.ended]
    held = [
        s
        for s in in_flight
        if s.status != "200" or s.attempts > 1 or "node-c" in (s.node, s.first_node)
    ]
    after = [s for s in samples if s.started >= killed_at]
    return {
        "drill": "kill",
        "clients": args.clients,
        "request_timeout_s": args.request_timeout_s,
        "held_by_dead_node": {
            kind: {
                "requests": len(group),
                "statuses": statuses(group),
                "answered_by": sorted({s.node for s in group if s.status == "200"}),
                "longest_wait_after_kill_s": longest(s.ended - killed_at for s in group),
            }
            for kind, group in (
                ("whole", [s for s in held if not s.streamed]),
                ("streamed", [s for s in held if s.streamed]),
            )
        },
        "started_after_kill": {
            "requests": len(after),
            "statuses": statuses(after),
            "longest_s": longest(s.ended - s.started for s in after),
        },
    }


def shutdown_drill(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    stack.worker("node-a", *mock_worker(20, 8, 50))
    stack.worker("node-n", *mock_worker(3_600_000, 4))  # never answers within the deadline
    gateway = stack.gateway_process(
        health={"refresh_interval_s": 1.0},
        dispatch={"request_timeout_s": args.request_timeout_s},
        server={"graceful_shutdown_s": args.grace_s},
    )
    key = asyncio.run(stack.create_key("drill"))
    time.sleep(2.0)
    samples, signalled_at = asyncio.run(
        load_and(gateway.url, key, args.clients, args.before_s, args.after_s, gateway)
    )
    exit_status = gateway.wait(args.grace_s + 120)
    exited_after_s = time.monotonic() - signalled_at
    in_flight = [s for s in samples if s.started < signalled_at < s.ended]
    during = [s for s in samples if s.started >= signalled_at]
    ids = {s.request_id for s in in_flight if s.request_id}
    records = asyncio.run(read_usage(stack.broker.bootstrap, stack.usage_topic, 10**6, 10))
    with stack.redis.client() as redis:
        audited = sum(bool(redis.exists(stack.keys.audit_record(i))) for i in ids)
    log = gateway.log()
    return {
        "drill": "shutdown",
        "clients": args.clients,
        "grace_s": args.grace_s,
        "in_flight_at_sigterm": {"requests": len(in_flight), "statuses": statuses(in_flight)},
        "sent_during_shutdown": {"requests": len(during), "statuses": statuses(during)},
        "in_flight_with_request_id": len(ids),
        "with_usage_record": len(ids & {r["request_id"] for r in records}),
        "with_audit_record": audited,
        "exit_status": exit_status,
        "exited_after_sigterm_s": round(exited_after_s, 2),
        "tracebacks_in_log": log.count("Traceback"),
        "internal_errors_in_log": log.count('"internal_error"') + log.count('status": 500'),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("drill", choices=["kill", "shutdown"])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--before-s", type=float, default=6.0)
    parser.add_argument("--after-s", type=float, default=15.0)
    parser.add_argument("--request-timeout-s", type=float, default=120.0)
    parser.add_argument("--idle-timeout-s", type=float, default=10.0)
    parser.add_argument("--grace-s", type=float, default=30.0)
    args = parser.parse_args()
    with servers_stack() as stack:
        drill = kill_drill if args.drill == "kill" else shutdown_drill
        print(json.dumps(drill(stack, args), indent=2))
        print(f"logs: {stack.tmp}")


if __name__ == "__main__":
    main()
