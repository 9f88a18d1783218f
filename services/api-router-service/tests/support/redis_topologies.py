"""Real Redis topologies for tests: a Redis Cluster and a Sentinel-managed primary.

Both are built from ``redis-server`` processes on free loopback ports, the way an operator
would set them up (``redis-cli --cluster create``; ``sentinel monitor``), and offer what a
``Stack`` needs of its Redis: the ``redis`` settings section and a sync client.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from tests.support.servers import RedisServer, _ServerProcess, free_port, wait_until

MASTER_NAME = "mymaster"
# A cluster node talks to the others on its port + 10000 (the cluster bus).
_BUS_OFFSET = 10_000


class RedisClusterNodes:
    """Three primaries in cluster mode, every slot assigned, no replicas."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--cluster-node-timeout", "2000"]
        self.nodes = [
            RedisServer(workdir / f"node{i}", _cluster_port(), options) for i in range(size)
        ]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    @property
    def settings(self) -> dict[str, Any]:
        return {"mode": "cluster", "nodes": ",".join(self.addresses)}

    def start(self) -> RedisClusterNodes:
        try:
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self.addresses]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self._formed, 30, "every cluster node to see all slots served")

    def _formed(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
            if fields.get("cluster_state") != "ok" or fields.get("cluster_known_nodes") != str(
                len(self.nodes)
            ):
                return False
        return True

    @contextmanager
    def client(self) -> Iterator[redis.RedisCluster]:
        client = redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=5)
        try:
            yield client
        finally:
            client.close()

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free and valid too."""
    while True:
        port = free_port()
        if port + _BUS_OFFSET <= 65535 and _bindable(port + _BUS_OFFSET):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class SentinelServer(_ServerProcess):
    """One Sentinel watching ``MASTER_NAME``; fails over after a second of silence."""

    def __init__(self, workdir: Path, primary_port: int) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._primary_port = primary_port

    def start(self) -> SentinelServer:
        self._workdir.mkdir(parents=True, exist_ok=True)
        config = self._workdir / "sentinel.conf"  # a Sentinel rewrites its own file
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self._workdir}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self._primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self._process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what="redis sentinel")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def master(self) -> dict[str, Any]:
        with self.client() as client:
            state: dict[str, Any] = client.sentinel_master(MASTER_NAME)
            return state


class SentinelRedis:
    """One primary, one replica and three Sentinels (quorum two)."""

    def __init__(self, workdir: Path) -> None:
        self.primary = RedisServer(workdir / "primary")
        self.replica = RedisServer(
            workdir / "replica", args=["--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        self.sentinels = [
            SentinelServer(workdir / f"sentinel{i}", self.primary.port) for i in range(3)
        ]

    @property
    def settings(self) -> dict[str, Any]:
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return {"mode": "sentinel", "nodes": nodes, "master_name": MASTER_NAME}

    def start(self) -> SentinelRedis:
        try:
            self._set_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _set_up(self) -> None:
        self.primary.start()
        self.replica.start()
        wait_until(lambda: self._replica_linked(self.replica), 30, "the replica's sync")
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self._sentinels_agree, 60, "the Sentinels to find each other and the replica")

    @staticmethod
    def _replica_linked(server: RedisServer) -> bool:
        with server.client() as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.master()
            if int(state.get("num-other-sentinels", 0)) != len(self.sentinels) - 1:
                return False
            if int(state.get("num-slaves", 0)) != 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel names it now."""
        return int(self.sentinels[0].master()["port"])

    @contextmanager
    def client(self) -> Iterator[redis.Redis]:
        addresses = [("127.0.0.1", s.port) for s in self.sentinels]
        sentinel = Sentinel(addresses, socket_timeout=2)  # type: ignore[no-untyped-call]
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            MASTER_NAME, socket_timeout=5
        )
        try:
            yield client
        finally:
            client.close()
            for connection in sentinel.sentinels:
                connection.close()

    def replicated(self) -> None:
        """Wait until the replica has every write made so far (``WAIT``)."""
        with self.primary.client() as client:
            acknowledged = client.wait(1, 10_000)
        assert acknowledged == 1, "the replica did not acknowledge the writes"

    def kill_primary(self) -> None:
        """SIGKILL the primary: no shutdown, no last write, its sockets reset."""
        assert self.primary._process is not None
        self.primary._process.send_signal(signal.SIGKILL)
        self.primary._process.wait(10)
        self.primary._process = None

    def wait_failover(self, timeout_s: float = 60.0) -> None:
        """Until every Sentinel names the former replica as the primary and it says so."""

        def promoted() -> bool:
            if any(int(s.master()["port"]) != self.replica.port for s in self.sentinels):
                return False
            with self.replica.client() as client:
                return bool(client.info("replication").get("role") == "master")

        wait_until(promoted, timeout_s, "the Sentinels' failover to the replica")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()
