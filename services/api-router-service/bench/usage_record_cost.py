"""What usage export and audit add to a request's path, per request, in microseconds: the
durable usage write (journal) next to the in-memory queueing it replaced, side by side.

The request path builds the records, journals the usage record (one ``write(2)``, so it
survives a kill of the process) and queues both for the background loops (the spool,
Kafka and Redis are written there). This times that work as the request-context
middleware does it, alternating in one run with the same work minus the journal write
(the request path before the journal: encode and queue in memory only), and times the
journal write alone.

    cd services/api-router-service && python -m bench.usage_record_cost [--requests N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from api_router.config.settings import AuditSettings, KafkaSettings, UsageSettings
from api_router.keyspace import Keyspace
from api_router.usage.audit_store import AuditStore
from api_router.usage.exporter import UsageExporter
from api_router.usage.journal import UsageJournal
from api_router.usage.record import (
    AuditMessage,
    AuditRecord,
    RouteAttempt,
    UsageFacts,
    UsageRecord,
    audit_message,
    build_records,
    usage_of,
)
from bench.inference_latency import percentile


def facts() -> UsageFacts:
    return UsageFacts(
        tenant="acme",
        key_id="kabcdefghijkl",
        auth_method="api_key",
        model="llama3.2",
        node_id="node-a",
        pool="edge",
        prompt_tokens=12,
        completion_tokens=80,
        cost=0.0004,
        queue_ms=0.4,
        inference_ms=250.0,
        status="ok",
        route_tried=[RouteAttempt("node-a", "edge", "sticky")],
    )


def records(started: float) -> AuditRecord:
    return build_records(
        facts(),
        request_id=f"req_{uuid.uuid4().hex}",
        http_status=200,
        error_code=None,
        started_at=started,
        elapsed_s=0.251,
        gateway_instance="bench",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-router-bench-") as workdir:
        print(json.dumps(measure(Path(workdir), args.requests), indent=2))


def measure(workdir: Path, requests: int) -> dict[str, object]:
    settings = UsageSettings(spool_dir=str(workdir / "spool"), queue_max=10_000_000)
    exporter = UsageExporter(KafkaSettings(), settings, "bench", "audit")
    # Queued only, no I/O: the recent window's writer loop does not run here.
    audit = AuditStore(Redis(), Keyspace("bench"), AuditSettings(), exporter.record, None)
    journal = UsageJournal(workdir)
    in_memory: deque[tuple[str, str]] = deque()

    def queue_in_memory(*records: UsageRecord | AuditMessage) -> None:  # without a journal
        for record in records:
            in_memory.append((record.record_id, msgspec.json.encode(record).decode()))

    started = time.time()
    samples: dict[str, list[float]] = {"durable": [], "in_memory": [], "journal_write": []}
    for _ in range(requests):
        for name, record_usage in (("durable", exporter.record), ("in_memory", queue_in_memory)):
            t0 = time.perf_counter()
            record = records(started)
            record_usage(usage_of(record), audit_message(record))
            audit.remember(record)
            samples[name].append((time.perf_counter() - t0) * 1e6)
        line = msgspec.json.encode(usage_of(record)) + b"\n"
        t0 = time.perf_counter()
        journal.append(line)
        samples["journal_write"].append((time.perf_counter() - t0) * 1e6)
    p50 = {name: percentile(values, 0.5) for name, values in samples.items()}
    return {
        "requests": requests,
        "usage_and_audit_on_request_path_us": {
            "with_durable_journal_write": _summary(samples["durable"]),
            "in_memory_only_as_before": _summary(samples["in_memory"]),
            "added_at_p50": round(p50["durable"] - p50["in_memory"], 2),
        },
        "one_journal_write_us": _summary(samples["journal_write"]),
    }


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(samples, 0.5), 2),
        "p99": round(percentile(samples, 0.99), 2),
    }


if __name__ == "__main__":
    main()
