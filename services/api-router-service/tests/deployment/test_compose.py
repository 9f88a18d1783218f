"""dev/docker-compose.yml: the Compose specification, and its api-router services run.

Our services run as local processes the way the chart's pods do (tests/support/containers):
the other services' host names point at this test's Redis and broker, and the gateway's
published port at a free one, as Docker's port mapping would.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from api_router.keyspace import Keyspace
from tests.support.chart import tool
from tests.support.cli_checks import (
    assert_env_is_read,
    command_name,
    config_check,
    config_file_of,
)
from tests.support.containers import REPO, Container, Image, compose_container
from tests.support.processes import ServiceProcess
from tests.support.servers import RedisServer, TansuBroker, free_port, wait_until
from tests.support.stack import KEK, PEPPER

COMPOSE = REPO / "dev/docker-compose.yml"
SECRETS = {"API_ROUTER__AUTH__PEPPER": PEPPER, "API_ROUTER__AUTH__KEK": KEK}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if environ.get(name):
            return environ[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VARIABLE.sub(value, text)


def services(environ: Mapping[str, str] = SECRETS) -> dict[str, Any]:
    compose: dict[str, dict[str, Any]] = yaml.safe_load(interpolate(COMPOSE.read_text(), environ))
    return compose["services"]


def ours(all_services: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: service
        for name, service in all_services.items()
        if service.get("build", {}).get("dockerfile") == "deployments/docker/Dockerfile"
    }


def test_the_file_meets_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_secrets_must_come_from_the_environment() -> None:
    with pytest.raises(KeyError, match="API_ROUTER__AUTH__PEPPER"):
        services({})


def test_it_has_the_stack_with_health_gated_start() -> None:
    found = services()
    assert set(ours(found)) == {"gateway", "worker-a", "worker-b", "mock-worker", "audit-sink"}
    assert {"redis", "kafka", "postgres", "ollama"} <= set(found)
    for name in ("redis", "kafka", "postgres", "ollama", "gateway"):
        assert found[name]["healthcheck"]["test"], name
    for name, service in ours(found).items():
        for dependency, condition in service["depends_on"].items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in found[dependency]
        assert service["read_only"] is True
    assert found["mock-worker"]["profiles"] == ["mock"]


def test_our_services_run_real_commands_with_settings_the_loader_reads(tmp_path: Path) -> None:
    for name, service in ours(services()).items():
        container = compose_container(service, name, COMPOSE.parent, tmp_path / name)
        assert command_name(container.args) in ("serve", "worker", "audit-sink")
        assert_env_is_read(container.env)
        checked = config_check(container, [config_file_of(container.args)])
        assert checked.returncode == 0, checked.stderr
        if "API_ROUTER__LIMITS__POLICIES_FILE" in container.env:
            assert checked.stdout.count(": valid") == 2  # the router file and its policies
    program, *args = services()["gateway"]["healthcheck"]["test"][1:]
    assert program == Image.from_dockerfile().entrypoint[0]
    assert command_name(args) == "request"


def test_the_gateway_and_mock_worker_start_and_turn_healthy(
    redis_server: RedisServer, broker: TansuBroker, tmp_path: Path
) -> None:
    port = free_port()
    hosts = {
        "redis://redis:6379": redis_server.url.rsplit("/", 1)[0],
        "kafka:9092": broker.bootstrap,
    }
    found = services()
    run = {
        name: compose_container(found[name], name, COMPOSE.parent, tmp_path / name)
        for name in ("mock-worker", "gateway")
    }
    prefix = "compose"
    processes = []
    try:
        for name, container in run.items():
            env = {k: _point(v, hosts) for k, v in container.environ().items()}
            env["API_ROUTER__REDIS__KEY_PREFIX"] = prefix
            env["API_ROUTER__KAFKA__ENABLE_IDEMPOTENCE"] = "false"  # Tansu
            if name == "gateway":  # what `ports: 127.0.0.1:8080:8080` maps
                env["API_ROUTER__SERVER__PORT"] = str(port)
            process = ServiceProcess(name, container.argv(), env, tmp_path, container.workdir)
            process.start()
            processes.append(process)
        with redis_server.client() as client:
            wait_until(lambda: client.hexists(Keyspace(prefix).health, "mock-worker"), 15)
        gateway = run["gateway"]
        test = [w.replace(":8080", f":{port}") for w in found["gateway"]["healthcheck"]["test"]]
        wait_until(lambda: healthy(gateway, test[2:]), 30, "the gateway's healthcheck")
    finally:
        for process in reversed(processes):
            process.stop()


def _point(value: str, hosts: Mapping[str, str]) -> str:
    for name, address in hosts.items():
        value = value.replace(name, address)
    return value


def healthy(container: Container, args: list[str]) -> bool:
    return container.run(args).returncode == 0
