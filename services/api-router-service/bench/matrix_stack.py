"""The stack the transport matrix measures, started and pinned by the harness itself.

redis-server, the Tansu broker (usage export on), a fake OpenAI-compatible upstream that
answers at once (the fake Ollama's ``/v1`` API, in a process of its own), one worker whose
``openai`` backend points at it (``node-streams``), and one gateway process with a direct
node on the same upstream (``node-direct``), all features on: API keys, a rate-limit plan,
usage records to Kafka, audit records. Each transport gets a model of its own by an admin
pin (``llama3.2:latest`` → the direct node, ``qwen2.5:7b`` → the streams node), so one
gateway serves every row.

Pinning (``taskset -a``, every thread): the gateway alone on core 0; the upstream, Redis,
the broker, the worker, the load generators and this process on core 1.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from tests.support.limits import write_policies
from tests.support.servers import RedisServer, free_port, port_open, wait_until
from tests.support.stack import bearer

from bench.bench_stack import servers_stack

MODELS = {"direct": "llama3.2:latest", "streams": "qwen2.5:7b"}
GATEWAY_CORE, REST_CORE = 0, 1
# A plan whose limits are checked on every request but never refuse one here.
_PLAN = {"plans": {"default": {"requests_per_second": 100_000, "burst": 100_000}}}


@dataclass(frozen=True)
class MatrixStack:
    upstream_url: str  # the fake OpenAI-compatible server (without /v1)
    gateway_url: str
    key: str
    redis: RedisServer
    pids: dict[str, int]  # gateway, worker, redis, broker, upstream


def pin(pid: int, core: int) -> None:
    """``taskset -a``: every thread of ``pid`` onto ``core``."""
    subprocess.run(
        ["taskset", "-a", "-c", "-p", str(core), str(pid)], check=True, capture_output=True
    )


@contextmanager
def matrix_stack() -> Iterator[MatrixStack]:
    os.sched_setaffinity(0, {REST_CORE})  # this process, and what it starts, on core 1
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: port_open(port), what="fake upstream")
        with servers_stack(url) as stack:
            policies = write_policies(stack.tmp / "policies.yaml", _PLAN)
            worker = stack.worker(
                "node-streams",
                "--backend",
                "openai",
                "--backend-url",
                f"{url}/v1",
                "--max-concurrency",
                "256",
                pool="streams",
            )
            node = {
                "node_id": "node-direct",
                "base_url": f"{url}/v1",
                "flavour": "openai",
                "pool": "direct",
                "max_concurrency": 256,
            }
            gateway = stack.gateway_process(
                health={"refresh_interval_s": 1.0},
                limits={"policies_file": str(policies)},
                direct={"nodes": [node]},
                dispatch={"node_backlog_limit": 256},
                telemetry={"log_level": "INFO"},
            )
            key = asyncio.run(stack.create_key("bench"))
            admin = asyncio.run(stack.create_key("ops", scopes=("admin",)))
            _pin_models(gateway.url, admin)
            pids = {
                "gateway": gateway.pid,
                "worker": worker.pid,
                "redis": _pid_of(stack.redis),
                "broker": _pid_of(stack.broker),
                "upstream": upstream.pid,
            }
            pin(gateway.pid, GATEWAY_CORE)
            for name, pid in pids.items():
                if name != "gateway":
                    pin(pid, REST_CORE)
            yield MatrixStack(url, gateway.url, key, stack.redis, pids)
    finally:
        upstream.kill()
        upstream.wait()


def _pin_models(gateway_url: str, admin: str) -> None:
    nodes = {"direct": "node-direct", "streams": "node-streams"}
    with httpx.Client(base_url=gateway_url, headers=bearer(admin), timeout=10) as client:
        wait_until(lambda: _served(client, 2), 20, "both nodes healthy")
        for kind, model in MODELS.items():
            answer = client.put(
                f"/v1/admin/routing/models/{quote(model, safe='')}/pin",
                json={"nodes": [nodes[kind]], "reason": "benchmark: one transport per model"},
            )
            answer.raise_for_status()


def _served(client: httpx.Client, nodes: int) -> bool:
    view = client.get("/v1/admin/routing").json()
    serving = [n for n in view["nodes"] if n["state"] == "healthy"]
    return all(model in view["models"] for model in MODELS.values()) and len(serving) >= nodes


def _pid_of(server: object) -> int:
    process = server._process  # type: ignore[attr-defined]  # the test fixtures' child
    assert process is not None
    return int(process.pid)
