"""A worker's own /metrics and /healthz (``--metrics-port``), read while it serves jobs."""

from __future__ import annotations

import asyncio
import signal

import httpx

from tests.support.fake_ollama import FakeOllama
from tests.support.metrics_text import sample
from tests.support.servers import free_port, wait_until
from tests.support.stack import Stack, bearer, chat


async def test_a_worker_counts_its_jobs_backend_calls_and_node_readings(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    port = free_port()
    worker = stack.worker("node-a", "--metrics-port", str(port))
    base = f"http://127.0.0.1:{port}"
    node = {"node": "node-a"}
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        ok = await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
        streamed = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers=bearer(key)
        )
        fake_ollama.fail_status = 500
        failed = await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
        async with httpx.AsyncClient(base_url=base, timeout=5) as worker_http:
            # A client has its answer once the job's last event is written; its worker
            # counts the job as answered right after.
            for _ in range(100):
                metrics = (await worker_http.get("/metrics")).text
                if sample(metrics, "api_router_worker_jobs_inflight", node) == 0:
                    break
                await asyncio.sleep(0.05)
            healthz = await worker_http.get("/healthz")
    assert (ok.status_code, streamed.status_code, failed.status_code) == (200, 200, 502)
    model = {**node, "model": "llama3.2"}
    assert sample(metrics, "api_router_worker_jobs_accepted_total", model) == 3
    assert sample(metrics, "api_router_worker_jobs_completed_total", model) == 2
    failure = {**model, "reason": "backend_error"}
    assert sample(metrics, "api_router_worker_jobs_failed_total", failure) == 1
    errors = {**node, "kind": "backend_error", "call": "chat"}
    assert sample(metrics, "api_router_worker_backend_errors_total", errors) == 1
    ok_calls = {**model, "outcome": "ok"}
    assert sample(metrics, "api_router_worker_backend_duration_seconds_count", ok_calls) == 2
    ttft = "api_router_worker_backend_time_to_first_token_seconds_count"
    assert sample(metrics, ttft, model) == 1
    assert sample(metrics, "api_router_worker_node_ram_percent", node) > 0
    assert sample(metrics, "api_router_worker_stream_pending", node) == 0
    assert sample(metrics, "api_router_worker_jobs_inflight", node) == 0
    assert "process_resident_memory_bytes" in metrics
    assert healthz.status_code == 200
    assert healthz.json() | {"inflight": 0} == {
        "status": "ok",
        "node_id": "node-a",
        "reporting": True,
        "accepting": True,
        "inflight": 0,
    }
    worker.send(signal.SIGTERM)
    assert worker.wait() == 0
    wait_until(lambda: not worker.alive(), what="worker exit")
