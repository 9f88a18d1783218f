"""deployments/systemd: the edge worker's unit, checked by systemd-analyze and run."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

from api_router.keyspace import Keyspace
from tests.support.chart import tool
from tests.support.cli_checks import assert_env_is_read, command_name, parse_command
from tests.support.containers import REPO, VENV_BIN
from tests.support.fake_ollama import FakeOllama
from tests.support.processes import ServiceProcess
from tests.support.servers import RedisServer, wait_until

UNITS = REPO / "deployments/systemd"
UNIT = UNITS / "api-router-worker.service"
ENV_EXAMPLE = UNITS / "api-router-worker.env.example"
INSTALLED_CLI = "/opt/api-router/bin/api-router"
# systemd-analyze's exposure score (0-100, shown divided by 10) the unit must stay under.
MAX_EXPOSURE = 20


def directives(unit: Path = UNIT) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit (continuations joined; a key may repeat)."""
    found: dict[str, list[str]] = {}
    text = unit.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def environment_file() -> dict[str, str]:
    pairs = (line.partition("=") for line in ENV_EXAMPLE.read_text().splitlines())
    return {k: v for k, _, v in pairs if k and not k.startswith("#")}


def exec_start(environ: dict[str, str]) -> list[str]:
    """ExecStart with ``${NAME}`` replaced the way systemd does from its environment."""
    line = directives()["ExecStart"][0]
    return shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: environ[m[1]], line))


def installable_copy(tmp_path: Path) -> Path:
    """The unit with the CLI and environment file where this machine has them."""
    unit = tmp_path / UNIT.name
    text = UNIT.read_text().replace(INSTALLED_CLI, str(VENV_BIN / "api-router"))
    unit.write_text(text.replace("/etc/api-router/worker.env", str(ENV_EXAMPLE)))
    return unit


def test_systemd_analyze_verifies_the_unit_without_a_word(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", str(installable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # an unknown key is only a warning


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    unit = installable_copy(tmp_path)
    command = [tool("systemd-analyze"), "security", "--offline=true", f"--threshold={MAX_EXPOSURE}"]
    result = subprocess.run(
        [*command, str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:]
    settings = directives()
    assert settings["DynamicUser"] == ["yes"]
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["Restart"] == ["always"]


def test_the_stop_timeout_outlasts_the_drain() -> None:
    args = parse_command(exec_start(environment_file())[1:])
    timeout_s = int(directives()["TimeoutStopSec"][0])
    assert timeout_s > args.drain_grace_s + 5


def test_exec_start_is_a_worker_command_fed_by_the_environment_file() -> None:
    environ = environment_file()
    argv = exec_start(environ)
    assert argv[0] == INSTALLED_CLI
    assert command_name(argv[1:]) == "worker"
    substituted = set(re.findall(r"\$\{(\w+)\}", directives()["ExecStart"][0]))
    # Each variable of the example is either substituted into ExecStart or read by the
    # loader, and ExecStart uses none that the example leaves out.
    assert substituted <= environ.keys()
    assert_env_is_read({k: v for k, v in environ.items() if k not in substituted})


def test_the_worker_it_starts_registers_and_leaves_on_stop(
    redis_server: RedisServer, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    environ = environment_file()
    environ.update(
        API_ROUTER__REDIS__URL=redis_server.url,
        API_ROUTER__REDIS__KEY_PREFIX="systemd",
        API_ROUTER_WORKER_BACKEND_URL=fake_ollama.url,
    )
    argv = exec_start(environ)
    argv[0] = str(VENV_BIN / "api-router")
    worker = ServiceProcess("edge-worker", argv, environ, tmp_path)
    worker.start()
    health = Keyspace("systemd").health
    node = environ["API_ROUTER_WORKER_NODE_ID"]
    try:
        with redis_server.client() as client:
            wait_until(lambda: client.hexists(health, node), 15, "registration")
            worker.send(signal.SIGTERM)  # what systemctl stop sends (KillMode=mixed)
            assert worker.wait(int(directives()["TimeoutStopSec"][0])) == 0
            assert not client.hexists(health, node)
    finally:
        worker.stop()
