"""What admission adds to a request: the admission script next to a bare PING, one run.

A real redis-server on loopback. One client alternates a ``PING`` with ``Admission.acquire``
(the full stage: policy lookup, arguments, EVALSHA, decoding, headers) for a plan with
request, token and concurrency limits and a cost budget, and again for a key and a model
that add their own limits (9 checks and the budget). Settlement runs after each sample,
outside the timing, as it does off the response path. Without a policies file admission
makes no round trip, so ``acquire`` is the whole added latency.

    cd services/api-router-service && python -m bench.admission_latency [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tests.support.limits import write_policies
from tests.support.servers import RedisServer

from api_router.chat import Usage
from api_router.config.settings import RedisSettings
from api_router.keyspace import Keyspace
from api_router.limiter.admission import Admission, AdmissionRequest
from api_router.limiter.policy_source import PolicySource
from api_router.redis_store import connect
from bench.inference_latency import summary

LIMITS = {
    "requests_per_second": 1e6,
    "burst": 1_000_000,
    "tokens_per_minute": 10**12,
    "max_concurrent": 1000,
}
POLICIES = {
    "plans": {
        "pro": {
            **LIMITS,
            "budget": {"per_month": 1e9, "unit": "cost"},
            "models": {"llama3.2": LIMITS},
        },
    },
    "tenants": {"acme": {"plan": "pro", "keys": {"narrow": LIMITS}}},
    "models": {"llama3.2": {"prompt_price_per_1k": 0.001, "completion_price_per_1k": 0.002}},
}


async def measure(redis_url: str, policies: Path, requests: int, warmup: int) -> dict[str, object]:
    settings = RedisSettings(url=redis_url, key_prefix="bench")
    bounded, plain = connect(settings, bounded_s=0.25), connect(settings)
    keys = Keyspace("bench")
    admission = Admission(bounded, plain, keys, PolicySource(keys, str(policies)), 60_000)
    cases = {
        "tenant_3_limits_and_budget": ("wide", "other-model"),
        "key_and_model_9_limits_and_budget": ("narrow", "llama3.2"),
    }
    ping: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for i in range(warmup + requests):
            for name, (key_id, model) in cases.items():
                request = AdmissionRequest(f"r{i}-{name}", "acme", key_id, model, 50, 200)
                started = time.perf_counter()
                await bounded.ping()
                middle = time.perf_counter()
                grant = await admission.acquire(request, lambda _decision: None)
                ended = time.perf_counter()
                admission.settle(grant, Usage(50, 100), accepted=True)
                await admission.settled()
                if i >= warmup:
                    ping.append(middle - started)
                    timings[name].append(ended - middle)
        # Redis's own time per script run (both cases, admission and settlement together).
        stats = await plain.info("commandstats")
    finally:
        await bounded.aclose()
        await plain.aclose()
    report: dict[str, object] = {"requests": requests, "ping": summary(ping)}
    for name, samples in timings.items():
        report[f"acquire_{name}"] = summary(samples)
    report["redis_usec_per_evalsha"] = stats.get("cmdstat_evalsha", {}).get("usec_per_call")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="api-router-bench-"))
    redis = RedisServer(workdir / "redis").start()
    try:
        policies = write_policies(workdir / "policies.yaml", POLICIES)
        report = asyncio.run(measure(redis.url, policies, args.requests, args.warmup))
        print(json.dumps(report, indent=2))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
