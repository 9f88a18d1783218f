"""The stack the latency benchmarks measure: real redis-server and broker, a fake Ollama
process that answers at once, one worker on it, and the gateway on uvicorn."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import RedisServer, TansuBroker, free_port, port_open, wait_until
from tests.support.stack import Stack


@dataclass(frozen=True)
class BenchStack:
    gateway_url: str
    ollama_url: str
    key: str
    redis_url: str = ""
    gateway_pid: int = 0


@contextmanager
def bench_stack() -> Iterator[BenchStack]:
    ollama_port = free_port()
    ollama = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", str(ollama_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with servers_stack(f"http://127.0.0.1:{ollama_port}") as stack:
            wait_until(lambda: port_open(ollama_port), what="fake ollama")
            stack.worker("node-a", "--health-interval-s", "5", "--max-concurrency", "4")
            gateway = stack.gateway_process(health={"refresh_interval_s": 1.0})
            key = asyncio.run(stack.create_key("bench"))
            yield BenchStack(gateway.url, stack.ollama_url, key, stack.redis.url, gateway.pid)
    finally:
        ollama.kill()
        ollama.wait()


StackType = Callable[[RedisServer, TansuBroker, str, Path, str], Stack]


@contextmanager
def servers_stack(
    ollama_url: str = "http://127.0.0.1:9", stack_type: StackType = Stack
) -> Iterator[Stack]:
    """A ``Stack`` (or ``stack_type``'s) on its own redis-server and broker; everything
    stops on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="api-router-bench-"))
    redis = RedisServer(workdir / "redis").start()
    broker = TansuBroker().start()
    stack = stack_type(redis, broker, "bench", workdir, ollama_url)
    try:
        yield stack
    finally:
        stack.stop_all()
        broker.stop()
        redis.stop()
