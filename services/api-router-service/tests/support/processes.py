"""Real worker and gateway processes, started the way an operator would start them."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.support.servers import free_port, wait_until

# Short intervals so that tests see health, reclaim and drain within a second or two.
TEST_WORKER_FLAGS = (
    "--health-interval-s",
    "0.3",
    "--reclaim-idle-s",
    "1.5",
    "--drain-grace-s",
    "10",
)


class ServiceProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv, env=self._env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def send(self, signum: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        assert self._process is not None
        return self._process.wait(timeout_s)

    def stop(self) -> None:
        if self.alive():
            self.send(signal.SIGKILL)
            self.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class WorkerProcess(ServiceProcess):
    def __init__(
        self, node_id: str, env: Mapping[str, str], log_dir: Path, args: Sequence[str]
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "api_router",
            "worker",
            "--node-id",
            node_id,
            *TEST_WORKER_FLAGS,
            *args,
        ]
        super().__init__(f"worker-{node_id}", argv, env, log_dir)
        self.node_id = node_id


class GatewayProcess(ServiceProcess):
    def __init__(
        self, env: Mapping[str, str], log_dir: Path, name: str = "gateway", port: int = 0
    ) -> None:
        """``port``: where to listen (0: a free one); a replacement reuses its predecessor's."""
        self.port = port or free_port()
        argv = [sys.executable, "-m", "api_router", "serve", "--port", str(self.port)]
        super().__init__(name, argv, env, log_dir)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_up(self, check: str = "readyz", timeout_s: float = 15.0) -> None:
        """Wait for ``/v1/status/<check>``: ``readyz`` needs a worker, ``healthz`` does not."""

        def up() -> bool:
            if not self.alive():
                raise RuntimeError(f"gateway exited:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/v1/status/{check}", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout_s, f"gateway {check}")


class AuditSinkProcess(ServiceProcess):
    def __init__(self, env: Mapping[str, str], log_dir: Path, name: str = "audit-sink") -> None:
        argv = [sys.executable, "-m", "api_router", "audit-sink", "--metrics-port", "0"]
        super().__init__(name, argv, env, log_dir)
