"""The soak (``make soak``): does a gateway's memory stay flat under steady traffic?

Starts the transport matrix's stack (``matrix_stack.py``, today's code, every feature on)
and drives its gateway with an open-loop client at ``--rate`` req/s (50) for
``--warmup-s`` (60) and then ``--minutes`` (30): requests alternate between the direct and
the streams node, and every fourth of each is streamed. From the end of the warm-up the
gateway's RSS is read from ``/proc`` every 10 s. The Markdown summary gives the RSS at the
start (after the warm-up), at the end, its maximum and its least-squares slope in MB per
10 minutes, and every request that did not end well: a status other than 200, no answer
(connection error, 30 s timeout), or a stream without its final ``data: [DONE]``.

    make soak                     # 30 minutes
    make soak ARGS="--minutes 2 --warmup-s 20"
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from tests.support.stack import bearer

from bench.load import Target, rss_mb
from bench.matrix_stack import matrix_stack
from bench.transport_matrix import TITLES, body

SAMPLE_EVERY_S = 10.0
STREAM_EVERY = 4  # of each transport's requests, every fourth is streamed
_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Soak:
    """What the run saw: RSS samples (seconds since the warm-up ended, MB) and failures."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    sent: int = 0
    failures: Counter[str] = field(default_factory=Counter)


def slope_per_10_min(samples: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MB) samples, in MB per 10 minutes."""
    if len(samples) < 2:
        return 0.0
    seconds, megabytes = zip(*samples, strict=True)
    return 600 * statistics.linear_regression(seconds, megabytes).slope


async def drive(targets: Sequence[Target], gateway: int, args: argparse.Namespace) -> Soak:
    soak = Soak()
    loop = asyncio.get_running_loop()
    start = loop.time()
    sampling_from = start + args.warmup_s
    end = sampling_from + 60 * args.minutes
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sampler = asyncio.create_task(_sample(soak, gateway, sampling_from, end))
        while (due := start + soak.sent / args.rate) < end:
            await asyncio.sleep(max(due - loop.time(), 0))
            target = targets[soak.sent % len(targets)]
            stream = (soak.sent // len(targets)) % STREAM_EVERY == STREAM_EVERY - 1
            task = asyncio.create_task(_one(session, target, stream, soak))
            pending.add(task)
            task.add_done_callback(pending.discard)
            soak.sent += 1
        await sampler
        await asyncio.gather(*pending)
    return soak


async def _one(session: aiohttp.ClientSession, target: Target, stream: bool, soak: Soak) -> None:
    kind = "streamed" if stream else "whole"
    try:
        payload = {**target.body, "stream": stream}
        async with session.post(
            target.url, json=payload, headers=target.headers, timeout=_TIMEOUT
        ) as reply:
            answer = await reply.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        soak.failures[f"{kind}: no answer ({type(exc).__name__})"] += 1
        return
    if reply.status != 200:
        soak.failures[f"{kind}: HTTP {reply.status}"] += 1
    elif stream and not answer.rstrip().endswith(b"data: [DONE]"):
        soak.failures["streamed: ended without data: [DONE]"] += 1


async def _sample(soak: Soak, pid: int, first: float, end: float) -> None:
    loop = asyncio.get_running_loop()
    due = first
    while due <= end:
        await asyncio.sleep(max(due - loop.time(), 0))
        soak.samples.append((due - first, rss_mb(pid)))
        due += SAMPLE_EVERY_S


def summary(soak: Soak, args: argparse.Namespace) -> str:
    rss = [mb for _, mb in soak.samples]
    errors = sum(soak.failures.values())
    lines = [
        "# Gateway soak",
        "",
        "| | |",
        "|---|---|",
        f"| traffic | {args.rate:g} req/s paced for {args.minutes:g} min after a "
        f"{args.warmup_s:g} s warm-up ({soak.sent} requests) |",
        f"| gateway RSS at start (after the warm-up) | {rss[0]:.1f} MB |",
        f"| gateway RSS at end | {rss[-1]:.1f} MB |",
        f"| gateway RSS max | {max(rss):.1f} MB |",
        f"| gateway RSS slope (least squares) | {slope_per_10_min(soak.samples):+.2f} MB "
        "per 10 min |",
        f"| errors (not 200, no answer, stream cut) | {errors} |",
        *(f"| — {failure} | {count} |" for failure, count in sorted(soak.failures.items())),
        "",
        f"Requests alternate between {TITLES['direct']} and {TITLES['streams']}; every "
        f"{STREAM_EVERY}th of each is streamed. Every feature on (auth, rate limits, usage "
        "and audit records, access log). Gateway on core 0; upstream, Redis, broker, worker "
        "and load on core 1. Errors count the warm-up too.",
        "",
        f"RSS samples (MB, every {SAMPLE_EVERY_S:g} s): " + " ".join(f"{mb:.1f}" for mb in rss),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path(".run/bench/soak.md"))
    args = parser.parse_args()
    with matrix_stack() as stack:
        side = stack.sides["today"]
        gateway = side.gateways["on"]
        url = f"{gateway.url}/v1/chat/completions"
        targets = [Target(url, body(t), bearer(side.key)) for t in ("direct", "streams")]
        soak = asyncio.run(drive(targets, gateway.pid, args))
    report = summary(soak, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
