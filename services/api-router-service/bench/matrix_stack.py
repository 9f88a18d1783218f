"""The stack the transport matrix measures, started and pinned by the harness itself.

A fake OpenAI-compatible upstream that answers at once (the fake Ollama's ``/v1`` API, in a
process of its own), shared by every side. A side is one version of the code on a stack of
its own: redis-server, the Tansu broker (usage export on), one worker whose ``openai``
backend points at the upstream (``node-streams``), and a gateway with a direct node on the
same upstream (``node-direct``), all features on: API keys, a rate-limit plan, usage
records to Kafka, audit records, the access log. Each transport gets a model of its own by
an admin pin (``llama3.2:latest`` → the direct node, ``qwen2.5:7b`` → the streams node), so
one gateway serves both transports' rows.

Sides: ``today`` (the code this harness runs with) and, with a baseline, ``baseline`` (the
code of another commit, ``baseline.py``). With ``features_off``, today's side has a second
gateway on the same Redis and worker with ``FEATURES_OFF`` switched off.

Pinning (``taskset -a``, every thread): the gateways alone on core 0 (one is loaded at a
time); the upstream, Redis, the brokers, the workers, the load generators and this process
on core 1.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tests.support.limits import write_policies
from tests.support.processes import GatewayProcess
from tests.support.servers import RedisServer, free_port, port_open, wait_until
from tests.support.stack import Stack, bearer

from api_router.config.settings import AuthSettings
from bench.baseline import BaselineStack, known_settings
from bench.bench_stack import StackType, servers_stack

MODELS = {"direct": "llama3.2:latest", "streams": "qwen2.5:7b"}
GATEWAY_CORE, REST_CORE = 0, 1
# A plan whose limits are checked on every request but never refuse one here.
_PLAN = {"plans": {"default": {"requests_per_second": 100_000, "burst": 100_000}}}
# What the features-off gateway leaves out: the optional features an operator can switch
# off (auth, usage records and audit records cannot be: docs/architecture.md, issue 15).
FEATURES_OFF = (
    "rate limits and budgets (no limits.policies_file: no admission or settlement script) "
    "and the access log (telemetry.log_level WARNING)"
)


@dataclass(frozen=True)
class Side:
    """One version of the code on its own Redis, broker and worker, with its gateways."""

    redis: RedisServer
    key: str
    gateways: dict[str, GatewayProcess]  # "on": every feature on; "off": FEATURES_OFF off
    pids: dict[str, int]  # worker, redis, broker


@dataclass(frozen=True)
class MatrixStack:
    upstream_url: str  # the fake OpenAI-compatible server (without /v1)
    upstream_pid: int
    sides: dict[str, Side]  # "today", and "baseline" when one was asked for

    @property
    def all_pids(self) -> list[int]:
        """Every process of the stack but this one and the load generators."""
        pids = [self.upstream_pid]
        for side in self.sides.values():
            pids += [gateway.pid for gateway in side.gateways.values()]
            pids += side.pids.values()
        return pids


def pin(pid: int, core: int) -> None:
    """``taskset -a``: every thread of ``pid`` onto ``core``."""
    subprocess.run(
        ["taskset", "-a", "-c", "-p", str(core), str(pid)], check=True, capture_output=True
    )


@contextmanager
def matrix_stack(baseline: Path | None = None, features_off: bool = False) -> Iterator[MatrixStack]:
    """``baseline``: the ``src`` directory of the baseline's code (``extracted_src``)."""
    os.sched_setaffinity(0, {REST_CORE})  # this process, and what it starts, on core 1
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: port_open(port), what="fake upstream")
        pin(upstream.pid, REST_CORE)
        with ExitStack() as running:
            sides = {"today": running.enter_context(_side(url, Stack, features_off))}
            if baseline is not None:
                make = functools.partial(BaselineStack, baseline, known_settings(baseline))
                sides["baseline"] = running.enter_context(_side(url, make, False))
            yield MatrixStack(url, upstream.pid, sides)
    finally:
        upstream.kill()
        upstream.wait()


@contextmanager
def _side(url: str, stack_type: StackType, features_off: bool) -> Iterator[Side]:
    with servers_stack(url, stack_type) as stack:
        worker = stack.worker(
            "node-streams",
            "--backend",
            "openai",
            "--backend-url",
            f"{url}/v1",
            "--max-concurrency",
            "256",
            pool="streams",
        )
        node = {
            "node_id": "node-direct",
            "base_url": f"{url}/v1",
            "flavour": "openai",
            "pool": "direct",
            "max_concurrency": 256,
        }
        common: dict[str, dict[str, Any]] = {
            # The shipped key cache TTL, not the tests' short one.
            "auth": {"key_cache_ttl_s": AuthSettings().key_cache_ttl_s},
            "health": {"refresh_interval_s": 1.0},
            "direct": {"nodes": [node]},
            "dispatch": {"node_backlog_limit": 256},
        }
        policies = write_policies(stack.tmp / "policies.yaml", _PLAN)
        gateways = {
            "on": stack.gateway_process(
                "gateway",
                "readyz",
                limits={"policies_file": str(policies)},
                telemetry={"log_level": "INFO"},
                **common,
            )
        }
        key = _create_key(stack, "bench")
        _pin_models(gateways["on"].url, _create_key(stack, "ops", "admin"))
        if features_off:  # started after the pins, so it reads them at start-up
            off = {"log_level": "WARNING"}
            gateways["off"] = stack.gateway_process(
                "gateway-off", "readyz", telemetry=off, **common
            )
        for gateway in gateways.values():
            pin(gateway.pid, GATEWAY_CORE)
        pids = {
            "worker": worker.pid,
            "redis": _pid_of(stack.redis),
            "broker": _pid_of(stack.broker),
        }
        for pid in pids.values():
            pin(pid, REST_CORE)
        yield Side(stack.redis, key, gateways, pids)


def _create_key(stack: Stack, tenant: str, *scopes: str) -> str:
    """A key made by the side's own code (``keys create --direct``): its record format."""
    argv = ["--json", "keys", "create", "--direct", "--tenant", tenant, "--name", "bench"]
    done = stack.cli(*argv, *(f"--scope={scope}" for scope in scopes))
    if done.returncode != 0:
        raise SystemExit(f"keys create failed: {done.stderr.decode(errors='replace')}")
    return str(json.loads(done.stdout)["api_key"])


def _pin_models(gateway_url: str, admin: str) -> None:
    nodes = {"direct": "node-direct", "streams": "node-streams"}
    with httpx.Client(base_url=gateway_url, headers=bearer(admin), timeout=10) as client:
        wait_until(lambda: _served(client, 2), 20, "both nodes healthy")
        for kind, model in MODELS.items():
            answer = client.put(
                f"/v1/admin/routing/models/{quote(model, safe='')}/pin",
                json={"nodes": [nodes[kind]], "reason": "benchmark: one transport per model"},
            )
            answer.raise_for_status()


def _served(client: httpx.Client, nodes: int) -> bool:
    view = client.get("/v1/admin/routing").json()
    serving = [n for n in view["nodes"] if n["state"] == "healthy"]
    return all(model in view["models"] for model in MODELS.values()) and len(serving) >= nodes


def _pid_of(server: object) -> int:
    process = server._process  # type: ignore[attr-defined]  # the test fixtures' child
    assert process is not None
    return int(process.pid)
