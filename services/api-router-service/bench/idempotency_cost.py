"""What an Idempotency-Key costs a request, side by side in one run, and what a stored
answer costs Redis.

The bench stack (redis-server, a worker on a fake Ollama that answers at once, the
gateway on uvicorn, pinned to a core of its own). A paced open-loop client sends
``POST /v1/inference`` in rounds that alternate: without a key, with a fresh key each
time (the key is claimed, the answer stored: the first request's cost), and a replay of
one stored key (no run at all). Per kind: latency p50/p99, the gateway's CPU per request
and Redis commands per request (``INFO stats``). Then ``MEMORY USAGE`` of a stored whole
answer, a stored streamed answer and a finished asynchronous job.

    cd services/api-router-service && python -m bench.idempotency_cost [--requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial

import httpx
import psutil
import redis
from tests.support.stack import chat

from bench.bench_stack import bench_stack
from bench.inference_latency import percentile

KINDS = ("no_key", "new_key", "replay")


def measure(requests: int, rounds: int, rate: float) -> dict[str, object]:
    with bench_stack() as stack, httpx.Client(base_url=stack.gateway_url, timeout=10) as http:
        store = redis.Redis.from_url(stack.redis_url)
        gateway = psutil.Process(stack.gateway_pid)
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:  # the gateway on a core of its own, the client on another
            gateway.cpu_affinity([cores[-1]])
            os.sched_setaffinity(0, {cores[0]})
        headers = {"X-API-Key": stack.key}
        body = chat("llama3.2", "hello there")

        failed: dict[str, int] = dict.fromkeys(KINDS, 0)

        def send(kind: str) -> None:
            extra = {}
            if kind == "new_key":
                extra = {"Idempotency-Key": uuid.uuid4().hex}
            elif kind == "replay":
                extra = {"Idempotency-Key": "bench-replayed"}
            response = http.post("/v1/inference", json=body, headers={**headers, **extra})
            if response.status_code != 200:  # counted, and reported: a stalled machine
                failed[kind] += 1
                print(f"{kind}: {response.status_code} {response.text}", file=sys.stderr)

        for kind in KINDS:  # warm up (and store the replayed key)
            for _ in range(100):
                send(kind)
        latency: dict[str, list[float]] = {kind: [] for kind in KINDS}
        cpu_us: dict[str, list[float]] = {kind: [] for kind in KINDS}
        commands: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for round_no in range(rounds):
            order = KINDS if round_no % 2 == 0 else KINDS[::-1]
            for kind in order:
                cpu_before = _cpu_s(gateway)
                commands_before = _commands(store)
                latency[kind] += _paced(partial(send, kind), requests, rate)
                commands[kind].append((_commands(store) - commands_before) / requests)
                cpu_us[kind].append((_cpu_s(gateway) - cpu_before) / requests * 1e6)
        memory = _memory(http, store, headers)
    return {
        "requests_per_kind_per_round": requests,
        "rounds": rounds,
        "paced_rate_per_s": rate,
        **{
            kind: {
                "latency_p50_ms": round(percentile(latency[kind], 0.5) * 1000, 3),
                "latency_p99_ms": round(percentile(latency[kind], 0.99) * 1000, 3),
                "gateway_cpu_us_per_request": round(statistics.median(cpu_us[kind]), 1),
                # Redis commands per request (the worker's and the gateway's background
                # loops included: compare the kinds, not the absolute figure).
                "redis_commands_per_request": round(statistics.median(commands[kind]), 2),
                "failed": failed[kind],
            }
            for kind in KINDS
        },
        "redis_memory_bytes": memory,
    }


def _paced(send: Callable[[], None], requests: int, rate: float) -> list[float]:
    """Open loop: each request starts at its scheduled time, not when the last ended."""
    samples: list[float] = []
    next_at = time.perf_counter()
    for _ in range(requests):
        next_at += 1 / rate
        time.sleep(max(next_at - time.perf_counter(), 0))
        started = time.perf_counter()
        send()
        samples.append(time.perf_counter() - started)
    return samples


def _memory(http: httpx.Client, store: redis.Redis, headers: dict[str, str]) -> dict[str, int]:
    """MEMORY USAGE of one stored answer of each kind (the whole key, value and overhead)."""
    sizes: dict[str, int] = {}
    for name, body, extra in (
        ("whole_answer", chat("llama3.2", "hello there"), {}),
        ("streamed_answer", chat("llama3.2", "hello there", stream=True), {}),
        ("async_job_done", chat("llama3.2", "hello there"), {"Prefer": "respond-async"}),
    ):
        before = set(store.keys("bench:idem:*")) | set(store.keys("bench:job:*"))
        key = {"Idempotency-Key": f"memory-{name}"} if name != "async_job_done" else {}
        response = http.post("/v1/inference", json=body, headers={**headers, **key, **extra})
        if name == "async_job_done":
            location = response.headers["location"]
            while http.get(location, headers=headers).status_code == 202:
                time.sleep(0.05)
        after = set(store.keys("bench:idem:*")) | set(store.keys("bench:job:*"))
        (new,) = after - before
        sizes[name] = int(store.memory_usage(new, samples=0) or 0)
        sizes[f"{name}_body_bytes"] = len(response.content)
    return sizes


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _commands(store: redis.Redis) -> int:
    return int(store.info("stats")["total_commands_processed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    args = parser.parse_args()
    print(json.dumps(measure(args.requests, args.rounds, args.rate), indent=2))


if __name__ == "__main__":
    main()
