"""What both drills stand on: fake backends as processes, Prometheus with the rules, the
routing CLI as an operator runs it (against a gateway, with an admin key), and the usage
topic read back by its own consumer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from tests.support.metrics_text import sample
from tests.support.prometheus import RULES, PrometheusServer, rules_with_short_for
from tests.support.servers import free_port, port_open, wait_until
from tests.support.stack import Stack


class BackendProcess:
    """A fake Ollama in a process of its own, so that a drill can kill it with its node."""

    def __init__(self, delay_s: float = 0.0) -> None:
        """``delay_s``: how long each answer takes."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_ollama", str(self.port), str(delay_s)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), 15, "fake ollama")

    def kill(self) -> None:
        self._process.kill()
        self._process.wait(10)


def prometheus(stack: Stack, targets: dict[str, list[str]], for_s: float) -> PrometheusServer:
    """Prometheus scraping ``targets`` every second with the alert rules, each ``for:``
    shortened to ``for_s``."""
    workdir = stack.tmp / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    rules = rules_with_short_for(RULES, workdir / "rules.yaml", for_s)
    server = PrometheusServer(workdir, targets, [rules]).start()
    wait_until(server.targets_up, 30, "every target scraped")
    return server


def cli(stack: Stack, gateway_url: str, *args: str) -> None:
    """``api-router ARGS`` as an operator runs it: against the gateway at ``gateway_url``,
    with an admin key of its own."""
    admin_key = asyncio.run(stack.create_key("ops", scopes=("admin",)))
    command = [sys.executable, "-m", "api_router", "--url", gateway_url, "--admin-key", admin_key]
    done = subprocess.run(
        [*command, *args], env=stack.env(), capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")


def wait_resolved(server: PrometheusServer, alert: str, timeout_s: float) -> float:
    wait_until(lambda: alert not in server.firing(), timeout_s, f"alert {alert} resolved")
    return time.time()


def spool_empty(gateway_url: str) -> bool:
    """The gateway has every usage record acknowledged by Kafka."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=5).text
    return sample(text, "api_router_usage_spool_depth", {}) == 0


def read_usage(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[dict[str, Any]]:
    """Every usage record on ``topic``, read from the start by a consumer of our own, until
    none has come for ``idle_s``."""
    return asyncio.run(_read(bootstrap, topic, idle_s))


async def _read(bootstrap: str, topic: str, idle_s: float) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                records += [json.loads(message.value) for message in messages]
                last_new = time.monotonic()
    finally:
        await asyncio.wait_for(consumer.stop(), 5)
    return records
