"""Latency of /v1/inference next to calling the backend directly, side by side in one run.

The stack is real: redis-server, a worker process whose ollama backend points at a fake
Ollama process that answers at once, and the gateway on uvicorn. One client alternates a
direct ``POST /api/chat`` to the fake Ollama with a ``POST /v1/inference`` through the
gateway, sequentially over keep-alive connections, so both see the same machine state.

    cd services/api-router-service && python -m bench.inference_latency [--requests N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx
from tests.support.stack import chat

from bench.bench_stack import bench_stack


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def measure(gateway_url: str, ollama_url: str, key: str, requests: int, warmup: int) -> None:
    body = chat("llama3.2", "hello there")
    direct_body = {**body, "stream": False}
    direct: list[float] = []
    through: list[float] = []
    parts: dict[str, list[float]] = {"gateway_ms": [], "queue_ms": [], "inference_ms": []}
    with httpx.Client(timeout=10) as ollama, httpx.Client(timeout=10) as gateway:
        for i in range(warmup + requests):
            started = time.perf_counter()
            response = ollama.post(f"{ollama_url}/api/chat", json=direct_body)
            middle = time.perf_counter()
            routed = gateway.post(
                f"{gateway_url}/v1/inference", json=body, headers={"X-API-Key": key}
            )
            ended = time.perf_counter()
            if response.status_code != 200 or routed.status_code != 200:
                raise SystemExit(f"request failed: {response.status_code} {routed.text}")
            if i >= warmup:
                direct.append(middle - started)
                through.append(ended - middle)
                for name, values in parts.items():
                    values.append(routed.json()["timings"][name])
    added = [g - d for g, d in zip(through, direct, strict=True)]
    report = {
        "requests": requests,
        "direct_fake_ollama": summary(direct),
        "through_gateway": summary(through),
        "added_by_gateway_and_worker": summary(added),
        # The router's own split of each routed request: its work, the time until the
        # worker accepted, and the worker's backend call until `done` arrived.
        "router_timings_ms": {
            name: {"p50": round(statistics.median(v), 3), "p99": round(percentile(v, 0.99), 3)}
            for name, v in parts.items()
        },
    }
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    with bench_stack() as running:
        measure(running.gateway_url, running.ollama_url, running.key, args.requests, args.warmup)


if __name__ == "__main__":
    main()
