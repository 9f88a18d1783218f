"""What usage export and audit add to a request's path, per request, in microseconds.

The request path only builds the records and queues them (Kafka, the spool and Redis are
written by background loops), so this times exactly that work, as the request-context
middleware does it, next to encoding the record once (the least any export must cost),
alternating the two in one run.

    cd services/api-router-service && python -m bench.usage_record_cost [--requests N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid

import msgspec

from api_router.config.settings import AuditSettings, KafkaSettings, UsageSettings
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis
from api_router.usage.audit_store import AuditStore
from api_router.usage.exporter import UsageExporter
from api_router.usage.record import RouteAttempt, UsageFacts, build_records, usage_of
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    spool = tempfile.mkdtemp(prefix="api-router-bench-spool-")
    exporter = UsageExporter(
        KafkaSettings(), UsageSettings(spool_dir=spool, queue_max=10_000_000), "bench"
    )
    audit = AuditStore(Redis(), Keyspace("bench"), AuditSettings())  # queued only, no I/O
    started = time.time()
    export_us: list[float] = []
    encode_us: list[float] = []
    for _ in range(args.requests):
        request_id = f"req_{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        record = build_records(
            facts(),
            request_id=request_id,
            http_status=200,
            error_code=None,
            started_at=started,
            elapsed_s=0.251,
            gateway_instance="bench",
        )
        exporter.record(usage_of(record))
        audit.write(record)
        t1 = time.perf_counter()
        msgspec.json.encode(record)
        t2 = time.perf_counter()
        export_us.append((t1 - t0) * 1e6)
        encode_us.append((t2 - t1) * 1e6)
    report = {
        "requests": args.requests,
        "usage_and_audit_on_request_path_us": _summary(export_us),
        "one_json_encode_of_the_record_us": _summary(encode_us),
    }
    print(json.dumps(report, indent=2))


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(samples, 0.5), 2),
        "p99": round(percentile(samples, 0.99), 2),
    }


if __name__ == "__main__":
    main()
