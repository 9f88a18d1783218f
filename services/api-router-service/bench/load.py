"""The load the transport matrix applies, and what it reads off the processes.

- ``paced``: an open-loop asyncio client (aiohttp, keep-alive): request ``i`` starts at
  ``i / rate`` whatever the earlier ones are doing, so every request pays the wake-ups of
  each hop as real traffic does. Whole answers give latency; streamed ones the time to
  the first frame that carries text (TTFT).
- ``saturate``: ``wrk`` with a Lua body, as many requests as the stack takes.
- ``quiesce``: between rows, wait until the stack is idle again.
- CPU seconds of a process (all threads) from ``/proc/<pid>/stat``, its RSS from
  ``/proc/<pid>/status``, Redis commands from ``INFO commandstats`` (commands that
  scripts call are counted there too).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from tests.support.servers import RedisServer

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """One row's request: where it goes, what it sends."""

    url: str
    body: dict[str, object]
    headers: dict[str, str]


async def paced(target: Target, rate: float, count: int, stream: bool) -> list[float]:
    """Seconds per request (whole) or to the first text (streamed), in request order."""
    body = {**target.body, "stream": stream}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def one(i: int) -> float:
            await asyncio.sleep(max(start + i / rate - loop.time(), 0))
            began = time.perf_counter()
            async with session.post(target.url, json=body, headers=target.headers) as reply:
                if reply.status != 200:
                    raise SystemExit(f"{target.url}: HTTP {reply.status}: {await reply.text()}")
                if not stream:
                    await reply.read()
                    return time.perf_counter() - began
                first: float | None = None
                async for line in reply.content:
                    if first is None and _carries_text(line):
                        first = time.perf_counter() - began
                if first is None:
                    raise SystemExit(f"{target.url}: a stream without text")
                return first

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def _carries_text(line: bytes) -> bool:
    if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


@dataclass(frozen=True)
class Saturation:
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def saturate(target: Target, seconds: int, connections: int, core: int) -> Saturation:
    """``wrk`` (one thread, pinned to ``core``) against ``target`` for ``seconds``."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps({**target.body, 'stream': False}))}",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in target.headers.items()),
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lines) + "\n")
        script.flush()
        argv = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
        done = subprocess.run(
            [*argv, "-s", script.name, target.url], check=True, capture_output=True, text=True
        )
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise SystemExit(f"wrk saw failures:\n{done.stdout}")
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", done.stdout)
    if found is None:
        raise SystemExit(f"unreadable wrk output:\n{done.stdout}")
    took = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    return Saturation(int(found.group(1)), took)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def quiesce(pids: Iterable[int], timeout_s: float = 15.0) -> float:
    """Wait until ``pids`` together use under a tenth of a core (over a second), at most
    ``timeout_s``; the seconds waited. What a row leaves running (its records shipped to
    Kafka, its settlements) is then neither billed to the next row nor slowing it."""
    pids = list(pids)
    began = time.monotonic()
    before = sum(cpu_s(pid) for pid in pids)
    while time.monotonic() - began < timeout_s:
        time.sleep(1.0)
        now = sum(cpu_s(pid) for pid in pids)
        if now - before < 0.1:
            break
        before = now
    return time.monotonic() - began


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def redis_commands(redis: RedisServer) -> int:
    with redis.client() as client:
        stats = client.info("commandstats")
    # `INFO commandstats` itself is one call per reading; it does not matter at this scale.
    return sum(int(entry["calls"]) for entry in stats.values())
