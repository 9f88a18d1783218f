"""Time to first token through the gateway next to the fake Ollama's own first chunk, side
by side in one run.

The stack is real: redis-server, a worker process whose ollama backend streams from a
fake Ollama process, and the gateway on uvicorn. One client alternates a direct streamed
``POST /api/chat`` (time until the first NDJSON line) with a streamed
``POST /v1/inference`` (time until the first ``event: chunk``), sequentially over
keep-alive connections, so both see the same machine state. The difference is the time
to first token the gateway and the worker add.

    cd services/api-router-service && python -m bench.stream_ttft [--requests N]
"""

from __future__ import annotations

import argparse
import json
import time

import httpx
from tests.support.stack import chat

from bench.bench_stack import bench_stack
from bench.inference_latency import summary


def first_line(
    client: httpx.Client, url: str, body: object, headers: dict[str, str], marker: bytes
) -> float:
    """Seconds until a line starting with ``marker`` arrives; then reads the stream out."""
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise SystemExit(f"request failed: {response.status_code} {response.read()!r}")
        for line in response.iter_lines():
            if not first and line.encode().startswith(marker):
                first = time.perf_counter() - started
    if not first:
        raise SystemExit(f"no {marker!r} line from {url}")
    return first


def measure(gateway_url: str, ollama_url: str, key: str, requests: int, warmup: int) -> None:
    body = chat("llama3.2", "hello there, tell me a story")
    direct: list[float] = []
    through: list[float] = []
    with httpx.Client(timeout=10) as ollama, httpx.Client(timeout=10) as gateway:
        for i in range(warmup + requests):
            d = first_line(
                ollama, f"{ollama_url}/api/chat", {**body, "stream": True}, {}, b'{"model"'
            )
            g = first_line(
                gateway,
                f"{gateway_url}/v1/inference",
                {**body, "stream": True},
                {"X-API-Key": key},
                b"event: chunk",
            )
            if i >= warmup:
                direct.append(d)
                through.append(g)
    added = [g - d for g, d in zip(through, direct, strict=True)]
    report = {
        "requests": requests,
        "ttft_direct_fake_ollama": summary(direct),
        "ttft_through_gateway": summary(through),
        "ttft_added_by_gateway_and_worker": summary(added),
    }
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    with bench_stack() as running:
        measure(running.gateway_url, running.ollama_url, running.key, args.requests, args.warmup)


if __name__ == "__main__":
    main()
