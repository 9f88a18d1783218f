"""The gateway as operators run it: `api-router serve` on uvicorn, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from typing import Any

import httpx
import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.processes import GatewayProcess
from tests.support.servers import eventually
from tests.support.stack import Stack, chat


def request_head(key: str, framing: str) -> bytes:
    """The head of a POST /v1/inference with ``framing`` (a length or chunked)."""
    return (
        f"POST /v1/inference HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def raw_request(port: int, head: bytes, body: bytes, pause_s: float = 0.0) -> bytes:
    """Send a request by hand (optionally stalling mid-body) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + body)
        time.sleep(pause_s)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


async def test_a_completion_over_real_http(stack: Stack) -> None:
    stack.worker("node-a")
    gateway = stack.gateway_process()
    key = await stack.create_key()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(
            "/v1/inference", json=chat(), headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == response.json()["id"]
    assert response.headers["server-timing"].startswith("gateway;dur=")
    assert response.json()["node_id"] == "node-a"


async def test_a_trace_runs_from_the_client_through_gateway_and_worker(stack: Stack) -> None:
    console = {"traces_exporter": "console"}
    worker = stack.worker("node-a", telemetry=console)
    gateway = stack.gateway_process(telemetry=console)
    key = await stack.create_key()
    client_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{client_trace}-00f067aa0ba902b7-01"
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(
            "/v1/inference", json=chat(), headers={"X-API-Key": key, "traceparent": traceparent}
        )
    assert response.status_code == 200
    for process in (gateway, worker):  # spans are flushed on shutdown
        process.send(signal.SIGTERM)
        process.wait()
    server = _span(gateway.log(), "POST /v1/inference")
    job = _span(worker.log(), "worker.job")
    assert server["context"]["trace_id"] == f"0x{client_trace}"
    assert server["parent_id"] == "0x00f067aa0ba902b7"
    assert job["context"]["trace_id"] == f"0x{client_trace}"
    assert job["parent_id"] == server["context"]["span_id"]
    assert job["attributes"]["api_router.request_id"] == response.json()["id"]


def _span(log: str, name: str) -> dict[str, Any]:
    """The first span called ``name`` that the console exporter printed."""
    decoder = json.JSONDecoder()
    start = log.find("{\n")
    while start != -1:
        span, end = decoder.raw_decode(log, start)
        if span.get("name") == name:
            return dict(span)
        start = log.find("{\n", end)
    raise AssertionError(f"no span {name!r} in the log")


def test_a_body_that_stalls_past_the_receive_deadline_is_408(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz", server={"receive_timeout_s": 0.5})
    head = request_head(asyncio.run(stack.create_key()), "Content-Length: 100")
    started = time.monotonic()
    answer = raw_request(gateway.port, head, b'{"model": "m",', pause_s=0)
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 408")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz", server={"max_body_bytes": 2048})
    head = request_head(asyncio.run(stack.create_key()), "Transfer-Encoding: chunked")
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    answer = raw_request(gateway.port, head, chunk * 3)  # 3 KiB sent, the rest never is
    assert answer.startswith(b"HTTP/1.1 413")


async def test_sigterm_lets_in_flight_requests_finish(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 1.0
    stack.worker("node-a")
    gateway = stack.gateway_process()
    key = await stack.create_key()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        request = asyncio.create_task(
            client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
        )
        await asyncio.sleep(0.3)
        gateway.send(signal.SIGTERM)
        response = await request
    assert response.status_code == 200, response.text
    # uvicorn re-raises the signal once it has shut down gracefully, so the exit status
    # says "terminated by SIGTERM"; the log shows the orderly shutdown.
    assert await asyncio.to_thread(gateway.wait) in (0, -signal.SIGTERM)
    assert "gateway stopping" in gateway.log()


async def test_metrics_count_requests_by_route_status_and_model(stack: Stack) -> None:
    stack.worker("node-a")
    gateway = stack.gateway_process()
    key = await stack.create_key()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for _ in range(3):
            await client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
        await client.post("/v1/inference", json=chat("unknown-model"), headers={"X-API-Key": key})
        await client.post("/v1/inference", json=chat())
        metrics = (await client.get("/metrics")).text
    assert (
        'api_router_requests_total{method="POST",model="llama3.2",route="/v1/inference",'
        'status="200"} 3.0' in metrics
    )
    assert 'model="other",route="/v1/inference",status="404"} 1.0' in metrics
    assert 'model="",route="/v1/inference",status="401"} 1.0' in metrics
    assert "api_router_request_duration_seconds_bucket{" in metrics
    assert 'api_router_dispatch_duration_seconds_count{node="node-a",outcome="done"} 3.0' in metrics
    assert 'api_router_nodes{state="healthy"} 1.0' in metrics
    log_lines = [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]
    access = [line for line in log_lines if line.get("logger") == "api_router.access"]
    assert {line["status"] for line in access} >= {200, 404, 401}
    assert all(line["request_id"].startswith("req_") for line in access)


async def test_health_and_readiness_report_each_component(stack: Stack) -> None:
    async with stack.gateway() as gw:
        not_ready = await gw.client.get("/v1/status/readyz")
        stack.worker("node-a")
        await gw.wait_for_model("llama3.2")
        ready = await gw.client.get("/v1/status/readyz")
        alive = await gw.client.get("/v1/status/healthz")
    assert not_ready.status_code == 503
    body = not_ready.json()
    assert body["status"] == "not_ready"
    assert body["components"]["workers"]["status"] == "failed"
    assert body["components"]["redis"]["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["components"]) == {
        "serving",
        "attempt_watch",
        "redis",
        "config",
        "workers",
        "health_registry",
        "reply_reader",
        "audit_writer",
        "usage_exporter",
        "usage_export",
        "policies_reload",
        "budget_usage",
        "key_events",
        "key_last_used",
        "routing_overrides",
        "job_sweeper",
        "direct_probe",
        "last_known_good",
    }
    assert alive.status_code == 200 and alive.json()["status"] == "ok"


async def test_redis_down_is_503_and_everything_recovers_when_it_returns(
    own_redis_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack, redis = own_redis_stack, own_redis_stack.redis
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(auth={"key_cache_ttl_s": 0.01}) as gw:
        await gw.wait_for_model("llama3.2")
        before = await gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
        assert before.status_code == 200
        redis.stop()
        await asyncio.sleep(0.05)
        down = await gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
        readyz = await gw.client.get("/v1/status/readyz")
        healthz = await gw.client.get("/v1/status/healthz")
        redis.start()  # same port, empty: the worker re-registers and recreates its group
        await eventually(lambda: stack.worker_registered("node-a"), 15, "re-registration")
        key = await stack.create_key()  # the old key died with Redis's memory
        await gw.wait_for_model("llama3.2")
        # The reply reader recreates its stream within a second of Redis returning;
        # until then a worker's answer has nowhere to go (NOMKSTREAM).
        reply_stream = gw.services.replies.stream
        with redis.client() as client:
            await eventually(lambda: bool(client.exists(reply_stream)), 5, "reply stream")
        back = await gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "service_unavailable"
    assert down.headers["retry-after"] == "1"
    # The log names the Redis that was tried, for whoever can fix it; the client's answer
    # does not carry the gateway's internal address.
    assert f"(Redis at {redis.url}: check it runs, or set redis.url)" in caplog.text
    assert redis.url not in down.text
    assert readyz.status_code == 503
    assert readyz.json()["components"]["redis"]["status"] == "failed"
    assert healthz.status_code == 200
    assert back.status_code == 200, back.text


@pytest.mark.parametrize("path", ["/v1/status/healthz", "/metrics", "/openapi.json"])
async def test_operational_endpoints_need_no_key(stack: Stack, path: str) -> None:
    async with stack.gateway() as gw:
        response = await gw.client.get(path)
    assert response.status_code == 200
    if path == "/metrics":
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE api_router_usage_spool_depth gauge" in response.text
    elif path == "/openapi.json":
        document = response.json()
        assert (document["openapi"], document["info"]["title"]) == ("3.1.0", "api-router")
        assert "/v1/inference" in document["paths"]
    else:
        assert response.json()["status"] == "ok"


def test_a_gateway_with_an_invalid_config_refuses_to_start(stack: Stack) -> None:
    env = stack.env(dispatch={"accept_timeout_s": 1.0})
    env["API_ROUTER__DISPATCH__ACCEPT_TIMEOUT_S"] = "soon"
    gateway = GatewayProcess(env, stack.tmp)
    gateway.start()
    assert gateway.wait() == 2
    assert "dispatch.accept_timeout_s: expected `float`" in gateway.log()
