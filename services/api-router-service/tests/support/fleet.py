"""One gateway process and two worker processes of different kinds, shared by a test
module: ``node-ollama`` (the fake Ollama) and ``node-openai`` (the fake OpenAI-compatible
server, which wants a key: the worker reads it from an environment variable). Models:
``llama3.2`` only on Ollama, ``gpt-fake`` only on the OpenAI-compatible server, ``shared``
on both."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.support.fake_ollama import FakeOllama
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import GatewayProcess
from tests.support.servers import RedisServer, TansuBroker
from tests.support.stack import Stack, bearer

OPENAI_KEY = "sk-fake-0123456789abcdef"
# A model of each kind, as the parametrized tests name them.
BY_KIND = {"ollama": "llama3.2", "openai": "gpt-fake"}
_fleets = itertools.count(1)


@dataclass
class Fleet:
    stack: Stack
    gateway: GatewayProcess
    key: str  # tenant acme, scope inference
    admin: str  # scopes admin (for audit lookups)
    ollama_server: FakeOllama
    openai_server: FakeOpenAI

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.gateway.url}/v1", api_key=self.key)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gateway.url, headers=bearer(self.key), timeout=10)

    def backend_of(self, kind: str) -> FakeOllama | FakeOpenAI:
        return self.ollama_server if kind == "ollama" else self.openai_server

    async def audit_record(self, request_id: str) -> dict[str, Any]:
        """The request's audit record, once it is stored (written just after the answer)."""
        async with httpx.AsyncClient(base_url=self.gateway.url, headers=bearer(self.admin)) as c:
            for _ in range(200):
                found = await c.get(f"/v1/audit/requests/{request_id}")
                if found.status_code == 200:
                    record: dict[str, Any] = found.json()
                    return record
                await asyncio.sleep(0.025)
        raise TimeoutError(f"no audit record for {request_id}")


def start_fleet(
    redis: RedisServer, broker: TansuBroker, ollama: FakeOllama, tmp: Path
) -> Iterator[Fleet]:
    ollama.reset(available=["llama3.2:latest", "shared:latest"], loaded=["llama3.2:latest"])
    backend = FakeOpenAI(models=["gpt-fake", "shared"], api_key=OPENAI_KEY).start()
    stack = Stack(redis, broker, f"fleet{next(_fleets)}", tmp, ollama.url)
    try:
        stack.worker("node-ollama", pool="edge")
        stack.worker(
            "node-openai",
            "--backend",
            "openai",
            "--backend-url",
            f"{backend.url}/v1",
            "--backend-api-key-env",
            "FAKE_OPENAI_KEY",
            pool="gpu",
            env={"FAKE_OPENAI_KEY": OPENAI_KEY},
        )
        gateway = stack.gateway_process()
        key = asyncio.run(stack.create_key("acme"))
        admin = asyncio.run(stack.create_key("ops", scopes=("admin",)))
        yield Fleet(stack, gateway, key, admin, ollama, backend)
    finally:
        stack.stop_all()
        backend.stop()
        ollama.reset()
