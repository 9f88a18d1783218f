"""`api-router dev`: the local stack starts, serves, writes dev.env and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.support.audit_rows import request_rows
from tests.support.fake_ollama import FakeOllama
from tests.support.servers import free_port, port_open, wait_until
from tests.support.sse import parse_sse
from tests.support.usage_topic import read_usage

REQUIRED = (
    "API_ROUTER_URL",
    "API_ROUTER_KEY",
    "API_ROUTER_ADMIN_KEY",
    "API_ROUTER__REDIS__URL",
    "API_ROUTER__KAFKA__BOOTSTRAP_SERVERS",
    "API_ROUTER__KAFKA__USAGE_TOPIC",
    "API_ROUTER__AUDIT__DATABASE_URL",
)


@pytest.fixture
def run_root() -> Iterator[Path]:
    """Where the run dir goes: a folder other users can reach (pytest's tmp_path is root's
    alone, and the stack's PostgreSQL runs as the postgres user when we are root)."""
    root = Path(tempfile.mkdtemp(prefix="api-router-dev-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


class DevRun:
    def __init__(self, run_dir: Path, *extra: str, ollama_url: str | None = None) -> None:
        self.ports = {
            "--port": free_port(),
            "--redis-port": free_port(),
            "--broker-port": free_port(),
            "--postgres-port": free_port(),
        }
        argv = [sys.executable, "-m", "api_router", "dev", "--run-dir", str(run_dir), *extra]
        for flag, port in self.ports.items():
            argv += [flag, str(port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("API_ROUTER")}
        env.pop("OLLAMA_URL", None)
        if ollama_url:
            env["OLLAMA_URL"] = ollama_url
        self.output = run_dir.parent / f"dev-{self.ports['--port']}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.env_file = run_dir / "dev.env"

    def wait_up(self) -> dict[str, str]:
        def up() -> bool:
            assert self.process.poll() is None, self.output.read_text()
            return "Ctrl-C stops the stack" in self.output.read_text()

        wait_until(up, 60, "the dev stack")
        pairs = (line.partition("=") for line in self.env_file.read_text().splitlines())
        return {name: shlex.split(value)[0] for name, _, value in pairs}

    def stop(self, signum: signal.Signals = signal.SIGINT) -> list[psutil.Process]:
        """SIGINT (as Ctrl-C sends) or SIGTERM; returns the children it had, to check them."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signum)
        assert self.process.wait(30) == 0, self.output.read_text()
        return children


@pytest.mark.timeout(180)
def test_the_stack_serves_and_ctrl_c_leaves_nothing_behind(run_root: Path) -> None:
    run = DevRun(run_root / ".run")
    try:
        values = run.wait_up()
        assert set(REQUIRED) <= set(values)
        assert values["API_ROUTER_URL"] == f"http://127.0.0.1:{run.ports['--port']}"
        assert values["API_ROUTER__REDIS__URL"].endswith(f":{run.ports['--redis-port']}/0")
        assert port_open(run.ports["--broker-port"])
        output = run.output.read_text()
        assert f"curl -s {values['API_ROUTER_URL']}/v1/inference" in output
        assert values["API_ROUTER_KEY"] in output
        response = httpx.post(
            f"{values['API_ROUTER_URL']}/v1/inference",
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {values['API_ROUTER_KEY']}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["node_id"] in {"node-a", "node-b"}
        assert response.json()["metadata"]["mock"] == "true"
        # Its usage record reaches the stack's own broker, on the topic dev.env names.
        bootstrap = values["API_ROUTER__KAFKA__BOOTSTRAP_SERVERS"]
        topic = values["API_ROUTER__KAFKA__USAGE_TOPIC"]
        [record] = asyncio.run(read_usage(bootstrap, topic, 1, timeout_s=10))
        assert record["request_id"] == response.json()["id"]
        # Its audit record reaches the stack's PostgreSQL through the audit sink.
        database = values["API_ROUTER__AUDIT__DATABASE_URL"]
        wait_until(lambda: len(request_rows(database)) >= 1, 60, "the audit row stored")
        assert response.json()["id"] in {r["request_id"] for r in request_rows(database)}
        admin = httpx.post(
            f"{values['API_ROUTER_URL']}/v1/inference",
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {values['API_ROUTER_ADMIN_KEY']}"},
        )
        assert admin.status_code == 403  # the admin key has the admin scope only
        _the_printed_lines_do_what_they_promise(output, run_root, charged_before=1)
        children = run.stop()
        assert len(children) >= 7  # redis, postgres, broker, sink, two workers, gateway
        wait_until(lambda: not any(c.is_running() for c in children), 10, "children to exit")
        for port in run.ports.values():
            assert not port_open(port)

        # A second run over the same run dir keeps the data and the demo keys.
        again = DevRun(run_root / ".run")
        try:
            assert again.wait_up()["API_ROUTER_KEY"] == values["API_ROUTER_KEY"]
        finally:
            again.stop()
    finally:
        if run.process.poll() is None:
            run.process.kill()


def _the_printed_lines_do_what_they_promise(output: str, cwd: Path, charged_before: int) -> None:
    """Each command the stack printed, pasted into a shell in the directory that holds the
    run dir (as `make run` users are, at the repository root). ``charged_before``: the
    demo key's answered requests so far."""
    commands = [line.strip() for line in output.splitlines() if line.startswith("  ")]
    curls = [c for c in commands if c.startswith(("curl ", "seq "))]
    answer, fields, burst, stream, usage = curls

    def shell(command: str) -> str:
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=cwd
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        return done.stdout

    said = json.loads(shell(answer))
    assert said["message"]["content"] == "mock reply from mock: Hello from the first hour"
    policy, state = shell(fields).splitlines()
    # The demo plan: a bucket of 5 refilled at 1/s, and a budget of 5.00 a month in
    # millionths, the tightest rate limit first.
    assert policy.startswith('ratelimit-policy: "tenant.requests";q=5;w=5, "tenant.budget";')
    assert '"tenant.budget";q=5000000;w=' in policy
    budget_left = int(state.split('"tenant.budget";r=')[1].split(";")[0])
    assert state.startswith('ratelimit: "tenant.requests";r=') and 0 < budget_left < 5_000_000
    counts = {code: int(n) for n, code in (line.split() for line in shell(burst).splitlines())}
    assert counts["429"] >= 8 - 5 and counts.get("200", 0) + counts["429"] == 8
    events, _ = parse_sse(shell(stream))
    chunks = [e.json()["delta"] for e in events if e.event == "chunk"]
    assert len(chunks) >= 3 and events[-1].event == "done"  # word by word, not at once
    assert "".join(chunks) == said["message"]["content"]
    # The answer, the fields' request, the burst's answered ones, the stream.
    charged = charged_before + 3 + counts.get("200", 0)

    def counted() -> bool:
        return int(json.loads(shell(usage))["requests"]) == charged

    wait_until(counted, 10, "the month's requests")
    month = json.loads(shell(usage))
    assert (month["tenant"], month["plan"], month["budget"]["unit"]) == ("demo", "demo", "cost")
    assert month["cost"] == month["budget"]["spent"] > 0
    for command in [c for c in commands if c.split()[0].endswith("/api-router")]:
        if " request " in command:
            continue  # needs dev.env sourced, as the printed line before it does
        assert shell(command), command  # usage, tenants, routing, keys: from .run/dev.env
    tenants = shell(f"{sys.executable} -m api_router --json tenants list")
    assert {t["tenant"] for t in json.loads(tenants)["data"]} >= {"demo", "ops", "acme"}


def test_the_stack_runs_with_a_config_file_and_ollama(
    tmp_path: Path, run_root: Path, fake_ollama: FakeOllama
) -> None:
    config = tmp_path / "router.yaml"
    config.write_text("redis:\n  key_prefix: custom\n")
    run = DevRun(run_root / ".run", "--config", str(config), ollama_url=fake_ollama.url)
    children: list[psutil.Process] = []
    try:
        values = run.wait_up()
        with redis.Redis.from_url(values["API_ROUTER__REDIS__URL"]) as client:
            assert client.hexists("custom:health", "node-a")
        assert values["API_ROUTER__REDIS__KEY_PREFIX"] == "custom"
        assert values["API_ROUTER_MODEL"] == "llama3.2:latest"  # what the ollama nodes list
        response = httpx.post(
            f"{values['API_ROUTER_URL']}/v1/inference",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {values['API_ROUTER_KEY']}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["message"]["content"] == "fake ollama says: hi"
    finally:
        children = run.stop(signal.SIGTERM)
    wait_until(lambda: not any(c.is_running() for c in children), 10, "children to exit")


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "api_router",
                "dev",
                "--run-dir",
                str(tmp_path / ".run"),
                "--port",
                str(port),
                "--redis-port",
                str(free_port()),
                "--broker-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"port {port} for the gateway is in use" in result.stderr
    assert "--port" in result.stderr
