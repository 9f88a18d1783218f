"""Asynchronous jobs across gateway processes: a job outlives the gateway that accepted
it (SIGKILLed between submit and poll), and any replica answers for it."""

from __future__ import annotations

import asyncio
import signal

import httpx

from tests.support.fake_ollama import FakeOllama
from tests.support.servers import eventually
from tests.support.stack import Stack, chat


async def test_a_job_survives_its_gateway_being_killed(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 1.0  # still running when its gateway dies
    stack.worker("node-a")
    # Replicas look for orphaned jobs often, so the test does not wait long.
    first, second = (
        stack.gateway_process(name, jobs={"sweep_interval_s": 0.2}) for name in ("gw1", "gw2")
    )
    key = await stack.create_key()
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(timeout=30) as client:
        accepted = await client.post(
            f"{first.url}/v1/inference", json=chat(), headers={**headers, "Prefer": "respond-async"}
        )
        await eventually(lambda: len(fake_ollama.chats) == 1, what="the job at the backend")
        first.send(signal.SIGKILL)
        first.wait()
        location = f"{second.url}{accepted.headers['location']}"
        polled = [await client.get(location, headers=headers)]
        while polled[-1].status_code == 202:
            await asyncio.sleep(0.1)
            polled.append(await client.get(location, headers=headers))
        restarted = stack.replace_gateway(first)
        from_restarted = await client.get(
            f"{restarted.url}{accepted.headers['location']}", headers=headers
        )
    assert accepted.status_code == 202
    assert polled[0].json()["status"] in ("queued", "running")
    answer = polled[-1]
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == accepted.headers["x-request-id"]
    assert answer.json()["message"]["content"]
    assert from_restarted.content == answer.content
    # The dead gateway's run and the one that took it over each reached the backend.
    assert len(fake_ollama.chats) == 2
