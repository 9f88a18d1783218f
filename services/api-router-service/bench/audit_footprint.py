"""What the audit trail costs per request, measured on a real stack: Redis memory of a run
(and per recent audit record), Kafka bytes per request (usage and audit topics), and
PostgreSQL rows and bytes per request once the audit sink has stored the run.

A gateway process and two mock workers (answering at once) take ``--requests`` requests,
``--concurrency`` at a time; ``used_memory`` is read before and after (once the recent
window's writer has flushed). ``--src DIR`` runs the gateway and workers from another
checkout's ``src`` (e.g. main's, from ``git archive``) to compare before and after; without
an audit database there (main) the PostgreSQL figures are skipped.

    cd services/api-router-service && ../../.venv/bin/python -m bench.audit_footprint
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer
from tests.support.audit_rows import request_rows
from tests.support.processes import AuditSinkProcess, GatewayProcess, WorkerProcess
from tests.support.servers import PostgresServer, RedisServer, wait_until
from tests.support.stack import Stack, bearer

from bench.bench_stack import servers_stack

BODY = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}


async def send(url: str, key: str, requests: int, concurrency: int) -> list[str]:
    """Request ids of the answered requests."""
    ids: list[str] = []
    queue = iter(range(requests))
    async with httpx.AsyncClient(timeout=30) as client:

        async def loop() -> None:
            for _ in queue:
                reply = await client.post(f"{url}/v1/inference", json=BODY, headers=bearer(key))
                if reply.status_code == 200:
                    ids.append(reply.headers["x-request-id"])

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return ids


def used_memory(redis: RedisServer) -> int:
    with redis.client() as client:
        return int(client.info("memory")["used_memory"])


def key_memory(redis: RedisServer, keys: list[str]) -> dict[str, int]:
    with redis.client() as client:
        return {key: int(client.memory_usage(key, samples=0) or 0) for key in keys}


async def topic_bytes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Bytes (key + value) of every message on each topic."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    sizes: dict[str, int] = defaultdict(int)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=2000)
            if not batches:
                return dict(sizes)
            for partition, messages in batches.items():
                for m in messages:
                    sizes[partition.topic] += len(m.key or b"") + len(m.value or b"")
    finally:
        await consumer.stop()


def table_bytes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), sum(pg_column_size(record)) FROM audit_requests"
        ).fetchone()
        total = conn.execute(
            "SELECT sum(pg_total_relation_size(i.inhrelid)), sum(pg_relation_size(i.inhrelid))"
            " FROM pg_inherits i WHERE i.inhparent = 'audit_requests'::regclass"
        ).fetchone()
    assert row is not None and total is not None
    values = {"rows": row[0], "record_bytes": row[1], "total_bytes": total[0], "heap": total[1]}
    return {name: int(value) for name, value in values.items()}


def process_env(stack: Stack, src: str | None, database_url: str | None) -> dict[str, str]:
    env = stack.env(usage={"spool_dir": str(stack.tmp / "spool")})
    if src is not None:  # another checkout: its settings may not know ours
        env = {k: v for k, v in env.items() if not k.startswith("API_ROUTER__AUDIT__")}
        env["PYTHONPATH"] = src
    elif database_url is not None:
        env["API_ROUTER__AUDIT__DATABASE_URL"] = database_url
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--src", help="run the gateway and workers from this src directory")
    parser.add_argument(
        "--recent-window-s",
        type=int,
        help="audit.recent_window_s; given, Redis is measured again once it has passed",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"requests": args.requests, "src": args.src or "this checkout"}
    postgres = None if args.src else PostgresServer().start()
    try:
        with servers_stack() as stack:
            url = None if postgres is None else postgres.database("footprint")
            stack.database_url = url
            env = process_env(stack, args.src, url)
            if args.recent_window_s:
                env["API_ROUTER__AUDIT__RECENT_WINDOW_S"] = str(args.recent_window_s)
            mock = ["--backend", "mock", "--models", "mock", "--max-concurrency", "64"]
            for node in ("w1", "w2"):
                worker = WorkerProcess(node, env, stack.tmp, ["--pool", "edge", *mock])
                worker.start()
                stack.wait_registered(worker)
            gateway = GatewayProcess(env, stack.tmp)
            gateway.start()
            gateway.wait_up()
            sink = None
            if url is not None:
                sink = AuditSinkProcess(env, stack.tmp)
                sink.start()
            key = asyncio.run(stack.create_key("sizing"))
            asyncio.run(send(gateway.url, key, 50, 4))  # warm up
            time.sleep(1)
            before = used_memory(stack.redis)
            started = time.monotonic()
            ids = asyncio.run(send(gateway.url, key, args.requests, args.concurrency))
            report["seconds"] = round(time.monotonic() - started, 1)
            report["answered"] = len(ids)
            time.sleep(2)  # the recent window's writer batches every 0.1 s
            after = used_memory(stack.redis)
            report["redis_used_memory_delta_bytes"] = after - before
            report["redis_bytes_per_request"] = round((after - before) / len(ids))
            with stack.redis.client() as client:
                audit_keys = sorted(
                    k.decode() for k in client.scan_iter(f"{stack.prefix}:audit*", count=1000)
                )
            sample = [k for k in audit_keys if ":audit:" in k][:200]
            per_key = key_memory(stack.redis, sample)
            report["redis_bytes_per_recent_audit_record"] = round(
                sum(per_key.values()) / max(len(per_key), 1)
            )
            indexes = [k for k in audit_keys if ":audit-index:" in k]
            report["redis_audit_index_keys"] = key_memory(stack.redis, indexes)
            if args.recent_window_s:
                time.sleep(args.recent_window_s + 5)  # Redis expires keys in the background
                after_window = used_memory(stack.redis) - before
                report["redis_used_memory_delta_after_window_bytes"] = after_window
            topics = [stack.usage_topic] + ([stack.audit_topic] if url is not None else [])
            sizes = asyncio.run(topic_bytes(stack.broker.bootstrap, topics))
            total = len(ids) + 50
            report["kafka_bytes_per_request"] = {t: round(b / total) for t, b in sizes.items()}
            if url is not None and sink is not None:
                wait_until(lambda: len(request_rows(url)) >= total, 300, "the sink")
                stored = table_bytes(url)
                report["postgres"] = {
                    **stored,
                    "rows_per_request": round(stored["rows"] / total, 3),
                    "bytes_per_request": round(stored["total_bytes"] / total),
                    "heap_bytes_per_request": round(stored["heap"] / total),
                    "record_jsonb_bytes": round(stored["record_bytes"] / stored["rows"]),
                }
    finally:
        if postgres is not None:
            postgres.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
