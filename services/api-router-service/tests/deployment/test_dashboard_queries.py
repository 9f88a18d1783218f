"""Every query of every dashboard panel, evaluated by a real Prometheus that scraped a
running stack (a gateway process, two workers with their metrics ports) every second while
traffic went through it, faults included: each query must parse and return a series.

Most panels have data from ordinary traffic. Those that only have data during a fault are
listed in ``FED_BY_FAULT`` with the fault that feeds them, and the test injects each.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.limits import write_policies
from tests.support.prometheus import RULES, PrometheusServer
from tests.support.servers import RedisServer, free_port, wait_until
from tests.support.stack import Stack, bearer, chat, node_health

DASHBOARDS = Path(__file__).parents[4] / "deployments/grafana/dashboards"

GHOST = "a node that takes no job (registered, never accepts): failover, retries refused"
BACKEND_500 = "the backend answers HTTP 500"
FED_BY_FAULT = {
    ("overview", "Inference errors/s by code"): GHOST,
    ("routing-and-nodes", "Failed attempts/s by node"): GHOST,
    ("routing-and-nodes", "Retries/s (failovers)"): GHOST,
    ("routing-and-nodes", "Retry-budget refusals/s"): GHOST,
    ("routing-and-nodes", "Drained nodes"): "an admin drains a node",
    ("routing-and-nodes", "Temperature"): "a node with a thermal sensor",
    ("workers", "Temperature"): "a node with a thermal sensor",
    ("limits-and-budgets", "Denials/s by limit and tenant"): "a tenant over its rate limit",
    ("limits-and-budgets", "Refused requests/s by tenant (402, 429)"): "a tenant over its rate",
    ("limits-and-budgets", "Queued admissions/s"): "a tenant over its rate, within its wait",
    ("limits-and-budgets", "Admissions without Redis/s"): "Redis stops answering",
    ("workers", "Failed/s by reason"): BACKEND_500,
    ("workers", "Backend errors/s by kind"): BACKEND_500,
}
POLICIES = {
    "plans": {
        "paying": {"budget": {"per_month": 1000.0, "unit": "cost"}},
        "queued": {"requests_per_second": 2, "burst": 1, "queue_max_wait_ms": 2000},
        "tiny": {"requests_per_second": 0.001, "burst": 1},
    },
    "tenants": {
        "acme": {"plan": "paying"},
        "patient": {"plan": "queued"},
        "tiny": {"plan": "tiny"},
    },
    "models": {
        "*": {"routes": [{"gpu": 1}, {"edge": 1}]},
        "llama3.2": {"prompt_price_per_1k": 0.5, "completion_price_per_1k": 1.0},
    },
}


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.stem, panel)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
        if panel["type"] != "row"
    ]


def _variables() -> list[tuple[str, str, str]]:
    """(dashboard, label, metric) of each label variable."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] == "query":
                metric = variable["query"].removeprefix("label_values(").split(",")[0]
                found.append((path.stem, variable["name"], metric))
    return found


def _as_prometheus_sees_it(expr: str) -> str:
    """The query as Grafana sends it with every variable at "All" and a 1 s scrape."""
    for name in ("model", "tenant", "node", "instance"):
        expr = expr.replace(f"${name}", ".*")
    return expr.replace("$__rate_interval", "10s")


@pytest.mark.timeout(150)
def test_every_panel_query_returns_series_from_a_scraped_stack(
    stack: Stack, fake_ollama: FakeOllama, redis_server: RedisServer
) -> None:
    titles = {(board, panel["title"]) for board, panel in _panels()}
    assert set(FED_BY_FAULT) <= titles, set(FED_BY_FAULT) - titles
    thermal = stack.tmp / "thermal/thermal_zone0"
    thermal.mkdir(parents=True)
    (thermal / "temp").write_text("52000\n")
    ports = {"node-a": free_port(), "node-b": free_port()}
    stack.worker(
        "node-a", "--metrics-port", str(ports["node-a"]), "--thermal-zones", str(thermal.parent)
    )
    stack.worker("node-b", "--metrics-port", str(ports["node-b"]))
    policies = write_policies(stack.tmp / "policies.yaml", POLICIES)
    gateway = stack.gateway_process(
        limits={"policies_file": str(policies)},
        # Keys stay cached while Redis is paused, as they would in production.
        auth={"key_cache_ttl_s": 30},
        dispatch={"accept_timeout_s": 0.3},
        # One retry a minute: the ghost node's first failure fails over, the next are refused.
        routing={"retry_budget_ratio": 0.0, "retry_budget_min_retries": 1},
        telemetry={"budget_refresh_s": 0.5},
    )
    keys = {tenant: _key(stack, tenant) for tenant in ("acme", "patient", "tiny")}
    targets = {
        "api-router": [gateway.url.removeprefix("http://")],
        "api-router-worker": [f"127.0.0.1:{port}" for port in ports.values()],
    }
    prometheus = PrometheusServer(stack.tmp / "prometheus", targets, [RULES]).start()
    try:
        started = time.time()
        wait_until(prometheus.targets_up, 20, "every target scraped")
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            _drive(client, keys, stack, fake_ollama, redis_server)
        time.sleep(4)  # the last scrapes and rule evaluations
        ended = time.time()
        empty = []
        for board, panel in _panels():
            for target in panel["targets"]:
                expr = _as_prometheus_sees_it(target["expr"])
                if not prometheus.query_range(expr, started, ended):  # raises if it does not parse
                    empty.append(f"{board} / {panel['title']}: {expr}")
        for board, label, metric in _variables():
            if not prometheus.query(f"count by ({label}) ({metric})"):
                empty.append(f"{board} variable ${label}: no {label} on {metric}")
    finally:
        prometheus.stop()
    assert not empty, "\n".join(empty)


def _drive(
    client: httpx.Client,
    keys: dict[str, str],
    stack: Stack,
    fake_ollama: FakeOllama,
    redis_server: RedisServer,
) -> None:
    """Ordinary traffic, then each fault of ``FED_BY_FAULT`` in turn."""

    def post(tenant: str, **extra: Any) -> httpx.Response:
        return client.post("/v1/inference", json=chat(**extra), headers=bearer(keys[tenant]))

    for _ in range(5):
        assert post("acme").status_code == 200
        assert post("acme", stream=True).status_code == 200
    # A ghost node in the first tier: the first request fails over to edge (the one retry
    # the budget allows), the next ones are answered 504 until its breaker opens.
    stack.put_health(node_health("ghost", pool="gpu", models_loaded=["llama3.2"]))
    with stack.redis.client() as redis:
        redis.xgroup_create(stack.keys.job_stream("ghost"), "workers", id="0", mkstream=True)
    time.sleep(0.5)  # the gateway's snapshot has it
    statuses = [post("acme").status_code for _ in range(7)]
    assert statuses[0] == 200 and 504 in statuses, statuses
    admin = asyncio.run(stack.create_key("ops", scopes=("admin",)))
    cli = [sys.executable, "-m", "api_router", "--url", str(client.base_url), "--admin-key", admin]
    drain = [*cli, "routing", "drain", "ghost", "--reason", "test"]
    assert subprocess.run(drain, env=stack.env(), capture_output=True, timeout=30).returncode == 0
    fake_ollama.fail_status = 500
    assert post("acme").status_code == 502
    fake_ollama.fail_status = None
    assert [post("tiny").status_code for _ in range(2)] == [200, 429]
    assert [post("patient").status_code for _ in range(2)] == [200, 200]  # the second waits
    time.sleep(0.5)  # the patient tenant's bucket refills: fail-open admits it locally
    # Redis stops answering for a second: admission gives up on it after its store timeout
    # and admits against the local bucket (fail open); the job goes out once Redis is back.
    redis_server.pause()
    comeback = threading.Timer(1.0, redis_server.resume)
    comeback.start()
    try:
        assert post("patient").status_code == 200
    finally:
        comeback.join()
    for _ in range(3):
        assert post("acme", stream=True).status_code == 200


def _key(stack: Stack, tenant: str) -> str:
    return asyncio.run(stack.create_key(tenant))
