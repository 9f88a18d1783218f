"""Sizing figures for docs/deployment.md, measured on the real stack.

- Gateway and worker CPU per request (so cores per 1,000 req/s) and their resident memory,
  under a paced open-loop client (``--rate`` requests a second for ``--seconds``), the
  gateway pinned to its own core. Backends are mock workers answering after 20 ms.
- Redis memory per in-flight request: ``--inflight`` requests held by slow mock workers
  (``used_memory`` while they wait, minus before).
- Redis memory per finished request (its audit record and index entries), and the usage
  spool's disk bytes per record while Kafka is away.

    cd services/api-router-service && ../../.venv/bin/python -m bench.gateway_sizing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
import psutil
from tests.support.processes import GatewayProcess, WorkerProcess
from tests.support.servers import RedisServer
from tests.support.stack import Stack, bearer

from bench.bench_stack import servers_stack


def body() -> dict[str, object]:
    return {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}


async def paced(url: str, key: str, rate: float, seconds: float) -> list[int]:
    """Open loop: request i starts at i / rate whatever the earlier ones are doing."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=256)) as client:

        async def one(delay: float) -> int:
            await asyncio.sleep(delay)
            reply = await client.post(f"{url}/v1/inference", json=body(), headers=bearer(key))
            return reply.status_code

        return await asyncio.gather(*(one(i / rate) for i in range(int(rate * seconds))))


def used_memory(redis: RedisServer) -> int:
    with redis.client() as client:
        return int(client.info("memory")["used_memory"])


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inflight", type=int, default=200)
    args = parser.parse_args()
    mock = ("--backend", "mock", "--models", "mock", "--max-concurrency", "64")
    with servers_stack() as stack:
        redis = stack.redis
        workers = [stack.worker(f"w{i}", *mock, "--mock-latency-ms", "20") for i in (1, 2)]
        gateway = stack.gateway_process()
        psutil.Process(gateway.pid).cpu_affinity([1])
        key = asyncio.run(stack.create_key("sizing"))
        asyncio.run(paced(gateway.url, key, 20, 2))  # warm up
        before = {"gateway": cpu_s(gateway.pid), **{w.name: cpu_s(w.pid) for w in workers}}
        memory_before = used_memory(redis)
        statuses = asyncio.run(paced(gateway.url, key, args.rate, args.seconds))
        done = statuses.count(200)
        gateway_ms = (cpu_s(gateway.pid) - before["gateway"]) * 1000 / done
        worker_ms = sum(cpu_s(w.pid) - before[w.name] for w in workers) * 1000 / done
        finished_bytes = (used_memory(redis) - memory_before) / done
        report = {
            "requests": len(statuses),
            "ok": done,
            "gateway_cpu_ms_per_request": round(gateway_ms, 3),
            "gateway_cores_per_1000_rps": round(gateway_ms, 2),
            "gateway_rss_mib": round(psutil.Process(gateway.pid).memory_info().rss / 2**20, 1),
            "worker_cpu_ms_per_request": round(worker_ms, 3),
            "worker_rss_mib": round(psutil.Process(workers[0].pid).memory_info().rss / 2**20, 1),
            "redis_bytes_per_finished_request": round(finished_bytes),
            "spool_bytes_per_usage_record": spool_bytes(stack, gateway, key, 1000),
            "redis_bytes_per_inflight_request": inflight_bytes(stack, workers, key, args.inflight),
        }
        print(json.dumps(report, indent=2))


def spool_bytes(stack: Stack, gateway: GatewayProcess, key: str, count: int) -> int:
    """Disk bytes per usage record spooled while Kafka is away."""
    stack.broker.stop()
    spool = stack.tmp / f"{gateway.name}-spool"
    size_before = sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())
    statuses = asyncio.run(paced(gateway.url, key, 50, count / 50))
    time.sleep(0.5)  # the last batch window
    size = sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()) - size_before
    return round(size / statuses.count(200))


def inflight_bytes(stack: Stack, fast: list[WorkerProcess], key: str, count: int) -> int:
    """Redis memory while ``count`` requests wait on slow workers, per request."""
    for worker in fast:
        worker.stop()
    slow = ("--backend", "mock", "--models", "mock", "--max-concurrency", str(count))
    stack.worker("slow", *slow, "--mock-latency-ms", "4000")
    gateway = stack.gateway_process(name="gateway-2", dispatch={"node_backlog_limit": 2 * count})

    async def hold() -> int:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as c:
            before = used_memory(stack.redis)
            sent = [
                asyncio.create_task(
                    c.post(f"{gateway.url}/v1/inference", json=body(), headers=bearer(key))
                )
                for _ in range(count)
            ]
            await asyncio.sleep(2)  # all accepted and running, none done
            during = used_memory(stack.redis)
            await asyncio.gather(*sent)
            return round((during - before) / count)

    return asyncio.run(hold())


if __name__ == "__main__":
    main()
