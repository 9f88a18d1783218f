"""The rendered chart's pods, run: what they mount, the env they set, the commands and
probes they name must all work with the real CLI, loader and gateway.

The values point the chart at this test's Redis and broker and a free port, as an
operator points it at theirs; everything else is as rendered.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api_router.keyspace import Keyspace
from tests.support.audit_rows import migrated
from tests.support.chart import CI_VALUES, find, gateway_workload, render, worker_workloads
from tests.support.cli_checks import (
    assert_env_is_read,
    command_name,
    config_check,
    config_file_of,
)
from tests.support.containers import Container, pod_container, update_config_map
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import ServiceProcess
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    TansuBroker,
    answers_ok,
    free_port,
    wait_until,
)
from tests.support.stack import KEK, PEPPER, bearer

VALUE_SETS = [pytest.param([], id="default"), *(pytest.param([p], id=p.stem) for p in CI_VALUES)]
# Secrets the production example expects to exist already (made outside the chart).
CLUSTER_SECRETS = {
    "api-router-secrets": {"pepper": PEPPER, "kek": KEK},
    "vllm-api-key": {"api-key": "sk-vllm-0123456789"},
    "api-router-audit-db": {"database-url": "postgresql://audit@127.0.0.1:1/audit"},
}
# The Redis examples' passwords (cluster nodes, Sentinels), in the same outside Secret.
REDIS_PASSWORDS = {"redis-password": "s3cret-data", "sentinel-password": "s3cret-sentinel"}
MOCK_WORKER = {"name": "mock-0", "pool": "edge", "backend": "mock", "models": "mock"}


def local_values(redis: RedisServer, broker: TansuBroker, prefix: str) -> dict[str, Any]:
    return {
        "metrics": {"workerPort": free_port()},
        "config": {
            "server": {"port": free_port()},
            "redis": {"url": redis.url, "key_prefix": prefix},
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "usage_topic": f"usage.{prefix}",
                "topic_replication": 1,
                "enable_idempotence": False,  # Tansu has no idempotent producer
            },
        },
    }


def containers(
    objects: list[dict[str, Any]], root: Path, redis_url: str = ""
) -> tuple[Container, list[Container]]:
    """The gateway container and every worker container of the rendered chart."""
    redis = {"redis-url": redis_url, **REDIS_PASSWORDS}
    secrets = {**CLUSTER_SECRETS, "api-router-redis": redis}
    pod = gateway_workload(objects)["spec"]["template"]["spec"]
    gateway = pod_container(pod, "gateway", objects, root / "gateway", secrets)
    workers = [
        pod_container(w["spec"]["template"]["spec"], "worker", objects, root / w_name, secrets)
        for w in worker_workloads(objects)
        for w_name in [w["metadata"]["name"]]
    ]
    return gateway, workers


@pytest.mark.parametrize("values", VALUE_SETS)
def test_containers_run_real_commands_with_settings_the_loader_reads(
    values: list[Path], redis_server: RedisServer, broker: TansuBroker, tmp_path: Path
) -> None:
    objects = render(values, local_values(redis_server, broker, "chart"))
    gateway, workers = containers(objects, tmp_path, redis_server.url)
    assert command_name(gateway.args) == "serve"
    for container in (gateway, *workers):
        assert_env_is_read(container.env)
        checked = config_check(container, [config_file_of(container.args)])
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.endswith(": valid\n")
    for worker in workers:
        assert command_name(worker.args) == "worker"
    # Everything the gateway writes is on a writable volume: its root is read-only.
    router = yaml.safe_load(find(objects, "ConfigMap", "-config")["data"]["router.yaml"])
    assert gateway.writable(router["usage"]["spool_dir"])
    assert gateway.writable(str(Path(router["last_known_good"]["path"]).parent))
    assert gateway.writable(gateway.image.env["API_ROUTER__USAGE__SPOOL_DIR"])
    assert gateway.writable("/tmp")


@pytest.mark.parametrize("values", [[], [CI_VALUES[0]]], ids=["default", CI_VALUES[0].stem])
def test_the_rendered_gateway_and_workers_serve_and_answer_their_probes(
    values: list[Path], redis_server: RedisServer, broker: TansuBroker, tmp_path: Path
) -> None:
    prefix = f"chart-{len(values)}"
    overlay = local_values(redis_server, broker, prefix)
    if not values:
        overlay["workers"] = [MOCK_WORKER]
    objects = render(values, overlay)
    gateway, workers = containers(objects, tmp_path)
    for worker in workers:  # each pod has its own network: here, each its own port
        worker.args[worker.args.index("--metrics-port") + 1] = str(free_port())
    processes = [start(worker, tmp_path) for worker in workers]
    try:
        for worker in workers:
            wait_until(partial(registered, redis_server, prefix, node_of(worker)), 15, "worker")
            metrics_port = worker.args[worker.args.index("--metrics-port") + 1]
            url = f"http://127.0.0.1:{metrics_port}/healthz"
            wait_until(partial(answers_ok, url), 15, f"worker {url}")
        processes.append(start(gateway, tmp_path))
        spec = gateway_workload(objects)["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = spec[probe]["httpGet"]
            url = f"http://127.0.0.1:{ports[get['port']]}{get['path']}"
            wait_until(partial(answers_ok, url), 30, f"{probe} {url}")
        base = f"http://127.0.0.1:{ports['http']}"
        key = create_key(gateway)
        reply = httpx.post(f"{base}/v1/inference", json=hello(), headers=bearer(key), timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json()["node_id"] in [node_of(worker) for worker in workers]
        # A policies change reaches the running gateway through the kubelet's swap.
        policies = yaml.safe_load(find(objects, "ConfigMap", "-policies")["data"]["policies.yaml"])
        policies.setdefault("tenants", {})["demo"] = {
            "plan": "default",
            "auth": "signature_required",
        }
        update_config_map(
            gateway, "/etc/api-router/policies", {"policies.yaml": yaml.dump(policies)}
        )
        wait_until(lambda: refused_unsigned(base, key), 15, "the policies reload")
    finally:
        for process in reversed(processes):
            process.stop()


def test_a_worker_with_an_api_key_secret_reads_it_from_its_mounted_file(
    redis_server: RedisServer, broker: TansuBroker, tmp_path: Path
) -> None:
    backend = FakeOpenAI(models=["served"], api_key="sk-vllm-0123456789").start()
    worker_values = {
        "name": "vllm-0",
        "pool": "gpu",
        "backend": "openai",
        "backendUrl": backend.url,
        "apiKeySecret": {"name": "vllm-api-key"},
    }
    overlay = {**local_values(redis_server, broker, "chart-key"), "workers": [worker_values]}
    _, (worker,) = containers(render([], overlay), tmp_path)
    process = start(worker, tmp_path)
    try:
        wait_until(partial(registered, redis_server, "chart-key", "vllm-0"), 15, "the worker")
        with redis_server.client() as client:
            health = json.loads(client.hget(Keyspace("chart-key").health, "vllm-0") or "{}")
    finally:
        process.stop()
        backend.stop()
    assert health["models_available"] == ["served"]  # listed with the key
    assert set(backend.authorizations) == {"Bearer sk-vllm-0123456789"}
    assert "sk-vllm" not in " ".join(worker.argv())  # a file's path, never the key


def test_the_rendered_audit_sink_migrates_and_serves_its_metrics(
    redis_server: RedisServer, broker: TansuBroker, postgres: PostgresServer, tmp_path: Path
) -> None:
    """The production example's sink, with its database URL from the cluster's Secret."""
    database = postgres.database("chart_sink")
    overlay = local_values(redis_server, broker, "chart-sink")
    overlay["auditSink"] = {"metricsPort": free_port()}
    production = next(path for path in CI_VALUES if path.stem == "production-values")
    objects = render([production], overlay)
    pod = find(objects, "Deployment", "-audit-sink")["spec"]["template"]["spec"]
    secrets = {**CLUSTER_SECRETS, "api-router-audit-db": {"database-url": database}}
    sink = pod_container(pod, "audit-sink", objects, tmp_path / "sink", secrets)
    assert command_name(sink.args) == "audit-sink"
    checked = config_check(sink, [config_file_of(sink.args)])
    assert checked.returncode == 0, checked.stderr
    process = start(sink, tmp_path)
    try:
        metrics = f"http://127.0.0.1:{overlay['auditSink']['metricsPort']}/metrics"
        wait_until(partial(answers_ok, metrics), 30, "the sink's metrics")
        wait_until(lambda: migrated(database), 30, "the sink's migrations")
        scraped = httpx.get(metrics, timeout=5).text
    finally:
        process.stop()
    assert "api_router_audit_sink_lag_records" in scraped
    assert "api_router_audit_sink_database_up 1.0" in scraped


def start(container: Container, log_dir: Path) -> ServiceProcess:
    process = ServiceProcess(
        container.name + str(id(container)),
        container.argv(),
        container.environ(),
        log_dir,
        cwd=container.workdir,
    )
    process.start()
    return process


def node_of(worker: Container) -> str:
    return worker.args[worker.args.index("--node-id") + 1]


def registered(redis: RedisServer, prefix: str, node: str) -> bool:
    with redis.client() as client:
        return bool(client.hexists(Keyspace(prefix).health, node))


def create_key(gateway: Container) -> str:
    """A key made the way the chart's NOTES say: the CLI inside the gateway container."""
    create = ["keys", "create", "--direct", "--tenant", "demo", "--scope", "inference", "--json"]
    result = gateway.run([*create, "--config", config_file_of(gateway.args)])
    assert result.returncode == 0, result.stderr
    key: str = json.loads(result.stdout)["api_key"]
    return key


def hello() -> dict[str, Any]:
    return {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}


def refused_unsigned(base: str, key: str) -> bool:
    reply = httpx.post(f"{base}/v1/inference", json=hello(), headers=bearer(key), timeout=10)
    return reply.status_code == 401 and reply.json()["error"]["code"] == "signature_required"
