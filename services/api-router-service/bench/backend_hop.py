"""The worker's backend hop: httpx.AsyncClient next to aiohttp, against one fake Ollama.

Both clients are pooled and run on uvloop, alternating in rounds so that they see the same
machine state. This is the measurement behind using aiohttp in backends/http_client.py.

    cd services/api-router-service && python -m bench.backend_hop [--requests N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import uvloop
from tests.support.servers import free_port, port_open, wait_until

BODY = json.dumps(
    {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": False,
        "options": {},
    }
).encode()
HEADERS = {"content-type": "application/json"}

Call = Callable[[], Awaitable[None]]


async def timed(call: Call, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def compare(url: str, requests: int, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, list[float]] = {"httpx": [], "aiohttp": []}
    async with httpx.AsyncClient(base_url=url) as hx, aiohttp.ClientSession() as aio:

        async def with_httpx() -> None:
            response = await hx.post("/api/chat", content=BODY, headers=HEADERS, timeout=5)
            response.raise_for_status()

        async def with_aiohttp() -> None:
            timeout = aiohttp.ClientTimeout(total=5)
            async with aio.post(
                f"{url}/api/chat", data=BODY, headers=HEADERS, timeout=timeout
            ) as response:
                response.raise_for_status()
                await response.read()

        calls: dict[str, Call] = {"httpx": with_httpx, "aiohttp": with_aiohttp}
        for call in calls.values():
            await timed(call, 100)  # warm the pools
        for _ in range(rounds):
            for name, call in calls.items():
                results[name] += await timed(call, requests // rounds)
    return {
        name: {
            "p50_ms": round(statistics.median(s), 3),
            "p99_ms": round(sorted(s)[int(0.99 * len(s))], 3),
        }
        for name, s in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    ollama = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), what="fake ollama")
        report = uvloop.run(compare(f"http://127.0.0.1:{port}", args.requests, args.rounds))
        print(json.dumps({"requests_each": args.requests, **report}, indent=2))
    finally:
        ollama.kill()
        ollama.wait()


if __name__ == "__main__":
    main()
