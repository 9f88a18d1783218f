"""A steady, paced (open-loop) load on one or more gateways, recorded request by request.

It runs its own event loop on a thread, so a drill can block on its own steps while the
load goes on. Several gateway URLs are used in turn, and a request that cannot connect
to one, or that a stopping gateway refuses (503 ``shutting_down``), goes to the next, as a
load balancer would send it (a gateway being restarted)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Sample:
    started: float  # epoch s
    ended: float
    status: int  # 0: no gateway could be reached
    request_id: str
    attempts: int  # X-Route-Attempts: nodes tried (1: no failover)


class SteadyLoad:
    def __init__(
        self, urls: Sequence[str], key: str, rate_per_s: float, body: dict[str, Any]
    ) -> None:
        self._urls = list(urls)
        self._headers = {"Authorization": f"Bearer {key}"}
        self._period_s = 1 / rate_per_s
        self._body = body
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(60)
        return sorted(self.samples, key=lambda s: s.started)

    def since(self, moment: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.started >= moment]

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            pending: set[asyncio.Task[None]] = set()
            urls = itertools.cycle(range(len(self._urls)))
            next_at = time.monotonic()
            while not self._stop.is_set():
                task = asyncio.create_task(self._send(client, next(urls)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += self._period_s
                await asyncio.sleep(max(next_at - time.monotonic(), 0))
            if pending:
                await asyncio.wait(pending)

    async def _send(self, client: httpx.AsyncClient, first: int) -> None:
        started = time.time()
        for offset in range(len(self._urls)):
            url = self._urls[(first + offset) % len(self._urls)]
            try:
                answer = await client.post(
                    f"{url}/v1/inference", json=self._body, headers=self._headers
                )
            except httpx.TransportError:
                continue  # not listening (restarting): the next gateway
            if _leaving(answer):
                continue
            self.samples.append(
                Sample(
                    started,
                    time.time(),
                    answer.status_code,
                    answer.headers.get("x-request-id", ""),
                    int(answer.headers.get("x-route-attempts", "0")),
                )
            )
            return
        self.samples.append(Sample(started, time.time(), 0, "", 0))


def _leaving(answer: httpx.Response) -> bool:
    """A stopping gateway's refusal of new requests (before it looked at them)."""
    if answer.status_code != 503:
        return False
    try:
        return bool(answer.json()["error"]["code"] == "shutting_down")
    except (ValueError, KeyError, TypeError):
        return False
