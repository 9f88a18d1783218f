"""One test's view of the system: its Redis, settings, workers, gateways and keys."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol

import httpx
import msgspec
from starlette.applications import Starlette
from typing_extensions import TypeVar

from api_router.app import create_app
from api_router.auth.key_record import AuthMode, IssuedKey
from api_router.auth.key_store import KeyStore, Scope
from api_router.auth.secret_box import SecretBox
from api_router.config.settings import Settings
from api_router.keyspace import Keyspace
from api_router.redis_store import connect
from api_router.routing.node_health import NodeHealth, health_encoder
from api_router.services import Services
from tests.support.processes import AuditSinkProcess, GatewayProcess, ServiceProcess, WorkerProcess
from tests.support.servers import RedisServer, TansuBroker, wait_until


class RedisStore(Protocol):
    """What a stack runs on: a standalone server, a cluster or a Sentinel-managed primary."""

    @property
    def settings(self) -> dict[str, Any]:
        """The ``redis`` settings section that points at it."""
        ...

    def client(self) -> AbstractContextManager[Any]:
        """A sync client of it."""
        ...


R = TypeVar("R", bound=RedisStore, default=RedisServer)

PEPPER = "test-pepper-0123456789abcdef0123456789"
KEK = base64.b64encode(bytes(range(32))).decode()

# Settings every test starts from: quick health refresh and a short request timeout.
BASE_SETTINGS: dict[str, Any] = {
    "auth": {"pepper": PEPPER, "kek": KEK, "key_cache_ttl_s": 0.5},
    "health": {"refresh_interval_s": 0.1},
    "dispatch": {"request_timeout_s": 10.0},
}


@dataclass
class Gateway:
    """An app served in-process (ASGI transport), with its lifespan running."""

    app: Starlette
    client: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def wait_for_model(self, model: str, nodes: int = 1, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.services.health.snapshot.ranked.get(model, ())) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway never saw {nodes} node(s) serving {model!r}")
            await asyncio.sleep(0.02)


class Stack(Generic[R]):
    def __init__(
        self, redis: R, broker: TansuBroker, prefix: str, tmp: Path, ollama_url: str
    ) -> None:
        """``redis``: a standalone server, a cluster or a Sentinel-managed primary."""
        self.redis = redis
        self.broker = broker
        self.prefix = prefix
        self.tmp = tmp
        self.ollama_url = ollama_url
        self.keys = Keyspace(prefix)
        self.usage_topic = f"usage.{prefix}"
        self.audit_topic = f"audit.{prefix}"
        # Set by the audited_stack fixture: the audit database of this test.
        self.database_url: str | None = None
        self._processes: list[ServiceProcess] = []
        self._gateways = itertools.count(1)

    def settings(self, **sections: dict[str, Any]) -> Settings:
        tree: dict[str, Any] = {name: dict(values) for name, values in BASE_SETTINGS.items()}
        tree["redis"] = {**self.redis.settings, "key_prefix": self.prefix}
        tree["kafka"] = {
            "bootstrap_servers": self.broker.bootstrap,
            "usage_topic": self.usage_topic,
            "enable_idempotence": False,  # Tansu has no idempotent producer
        }
        tree["usage"] = {"spool_dir": str(self.tmp / "usage-spool")}
        # A consumer group per test: a group's join waits for members that died (the
        # sinks earlier tests killed) until their session timeout.
        tree["audit"] = {
            "topic": self.audit_topic,
            "database_url": self.database_url,
            "sink_group": f"audit-sink.{self.prefix}",
        }
        for name, values in sections.items():
            tree.setdefault(name, {}).update(values)
        return msgspec.convert(tree, Settings)

    def env(self, **sections: dict[str, Any]) -> dict[str, str]:
        """The environment that configures a gateway or worker process like ``settings``."""
        settings = msgspec.to_builtins(self.settings(**sections))
        env = {k: v for k, v in os.environ.items() if not k.startswith("API_ROUTER")}
        for section, values in settings.items():
            for key, value in values.items():
                if value is not None:
                    text = json.dumps(value) if isinstance(value, list) else str(value)
                    env[f"API_ROUTER__{section.upper()}__{key.upper()}"] = text
        return env

    def worker(
        self,
        node_id: str,
        *args: str,
        pool: str = "edge",
        backend_url: str | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        **sections: dict[str, Any],
    ) -> WorkerProcess:
        """A worker process with the ollama backend against the fake Ollama by default;
        ``env``: variables of its own (a backend's key)."""
        if "--backend" not in args:
            args = ("--backend", "ollama", "--backend-url", backend_url or self.ollama_url, *args)
        env = {**self.env(**sections), **(env or {})}
        worker = WorkerProcess(node_id, env, self.tmp, ["--pool", pool, *args])
        worker.start()
        self._processes.append(worker)
        if wait:
            self.wait_registered(worker)
        return worker

    def worker_registered(self, node_id: str) -> bool:
        with self.redis.client() as client:
            return bool(client.hexists(self.keys.health, node_id))

    def wait_registered(self, worker: WorkerProcess) -> None:
        def registered() -> bool:
            if not worker.alive():
                raise RuntimeError(f"{worker.name} exited:\n{worker.log()}")
            return self.worker_registered(worker.node_id)

        wait_until(registered, 15, f"{worker.name} registration")

    def gateway_process(
        self, name: str = "gateway", check: str = "readyz", **sections: dict[str, Any]
    ) -> GatewayProcess:
        """A gateway process with its own spool (``name``'s: a restart keeps it)."""
        return self._gateway(name, check, 0, sections)

    def replace_gateway(self, old: GatewayProcess, **sections: dict[str, Any]) -> GatewayProcess:
        """A new process for ``old`` (which has exited), on its port and spool: a restart,
        with ``sections`` changed."""
        return self._gateway(old.name, "readyz", old.port, sections)

    def _gateway(
        self, name: str, check: str, port: int, sections: dict[str, dict[str, Any]]
    ) -> GatewayProcess:
        spool = {"spool_dir": str(self.tmp / f"{name}-spool")}
        lkg = {"path": str(self.tmp / f"{name}-last-known-good.sqlite")}
        sections = {
            **sections,
            "usage": {**spool, **sections.get("usage", {})},
            "last_known_good": {**lkg, **sections.get("last_known_good", {})},
        }
        gateway = GatewayProcess(self.env(**sections), self.tmp, name, port)
        gateway.start()
        self._processes.append(gateway)
        gateway.wait_up(check)
        return gateway

    def audit_sink(self, name: str = "audit-sink", **sections: dict[str, Any]) -> AuditSinkProcess:
        """An ``api-router audit-sink`` process on this test's topic and database."""
        assert self.database_url is not None, "use the audited_stack fixture"
        sink = AuditSinkProcess(self.env(**sections), self.tmp, name)
        sink.start()
        self._processes.append(sink)
        return sink

    @asynccontextmanager
    async def gateway(self, **sections: dict[str, Any]) -> AsyncIterator[Gateway]:
        number = next(self._gateways)
        spool = self.tmp / f"in-process-{number}-spool"
        lkg = {"path": str(self.tmp / f"in-process-{number}-last-known-good.sqlite")}
        own = {"usage": {"spool_dir": str(spool)}, "last_known_good": lkg}
        usage = {**own["usage"], **sections.get("usage", {})}
        app = create_app(self.settings(**{**own, **sections, "usage": usage}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield Gateway(app, client)

    async def create_key(
        self,
        tenant: str = "acme",
        scopes: Iterable[Scope] = ("inference",),
        expires_at: float | None = None,
    ) -> str:
        return (await self.issue_key(tenant, scopes, expires_at)).api_key

    async def issue_key(
        self,
        tenant: str = "acme",
        scopes: Iterable[Scope] = ("inference",),
        expires_at: float | None = None,
        auth: AuthMode = "signature_or_key",
    ) -> IssuedKey:
        """A new key with its API key and its one signing secret."""
        async with self.key_store() as store:
            return await store.create(tenant, scopes, "test", expires_at, auth)

    @asynccontextmanager
    async def key_store(self) -> AsyncIterator[KeyStore]:
        """An uncached key store on this test's Redis, as the CLI uses it."""
        client = connect(self.settings().redis)
        try:
            yield KeyStore(client, self.keys, PEPPER, 0.0, SecretBox(base64.b64decode(KEK)))
        finally:
            await client.aclose()

    def cli(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        """``api-router <argv>`` run as a process configured like this stack's gateways."""
        command = [sys.executable, "-m", "api_router", *argv]
        return subprocess.run(command, env=self.env(), capture_output=True, timeout=60)

    def put_health(self, node: NodeHealth) -> None:
        """Write a node entry directly, as a worker would (for nodes with no process)."""
        with self.redis.client() as client:
            client.hset(self.keys.health, node.node_id, health_encoder.encode(node))

    def stop_all(self) -> None:
        for process in reversed(self._processes):
            process.stop()


def node_health(node_id: str, **overrides: Any) -> NodeHealth:
    values: dict[str, Any] = {
        "node_id": node_id,
        "pool": "edge",
        "models_loaded": [],
        "models_available": ["m"],
        "ram_percent": 50.0,
        "cpu_percent": 10.0,
        "temp_celsius": 50.0,
        "inflight": 0,
        "max_concurrency": 2,
        "available": True,
        "last_seen": time.time(),
        "version": "test",
    }
    values.update(overrides)
    return NodeHealth(**values)


def bearer(key: str) -> dict[str, str]:
    """The headers that authenticate with ``key``."""
    return {"Authorization": f"Bearer {key}"}


def chat(model: str = "llama3.2", content: str = "hello there", **extra: Any) -> dict[str, Any]:
    """A valid /v1/inference body."""
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}
