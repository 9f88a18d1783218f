"""The transport matrix (``make bench``): one run, every row side by side, interleaved.

Rows: the upstream called directly; the gateway with a direct node (``transport: http``);
the gateway with a streams node (Redis stream and a worker). All on one stack that the
harness starts and pins itself (``matrix_stack.py``: gateway alone on core 0, everything
else on core 1), all features on. Each round runs every row, in a rotated order, through:

1. latency: an open-loop client at ``--rate`` req/s (20) for ``--seconds``, whole answers;
2. TTFT: the same pacing, streamed answers, time to the first frame with text;
3. saturation: ``wrk`` for ``--wrk-seconds``, with the CPU seconds each process spent
   (``/proc``) and the Redis commands run (``INFO commandstats``) divided by the requests.

The table gives, per figure, the median over the rounds and their range. "Added" figures
subtract the upstream row's of the same round. Timings are never asserted anywhere.

    make bench ARGS="--rounds 5"
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable
from pathlib import Path

from tests.support.stack import bearer

from bench.load import Target, cpu_s, paced, redis_commands, rss_mb, saturate
from bench.matrix_stack import MODELS, REST_CORE, MatrixStack, matrix_stack

ROWS = ("upstream", "direct", "streams")
TITLES = {
    "upstream": "upstream, called directly",
    "direct": "gateway → direct node (http)",
    "streams": "gateway → streams node (worker)",
}
Round = dict[str, dict[str, float]]


def targets(stack: MatrixStack) -> dict[str, Target]:
    def body(model: str) -> dict[str, object]:
        return {"model": model, "messages": [{"role": "user", "content": "hello there"}]}

    gateway = f"{stack.gateway_url}/v1/chat/completions"
    return {
        "upstream": Target(f"{stack.upstream_url}/v1/chat/completions", body(MODELS["direct"]), {}),
        "direct": Target(gateway, body(MODELS["direct"]), bearer(stack.key)),
        "streams": Target(gateway, body(MODELS["streams"]), bearer(stack.key)),
    }


def measure_row(stack: MatrixStack, target: Target, args: argparse.Namespace) -> dict[str, float]:
    count = int(args.rate * args.seconds)
    asyncio.run(paced(target, args.rate, 20, stream=False))  # warm the connections
    latency = sorted(asyncio.run(paced(target, args.rate, count, stream=False)))
    ttft = sorted(asyncio.run(paced(target, args.rate, count // 2, stream=True)))
    cpu_before = {name: cpu_s(pid) for name, pid in stack.pids.items()}
    commands_before = redis_commands(stack.redis)
    load = saturate(target, args.wrk_seconds, args.connections, REST_CORE)
    commands = redis_commands(stack.redis) - commands_before - 1
    cpu = {name: cpu_s(pid) - cpu_before[name] for name, pid in stack.pids.items()}
    per_request_ms = {name: 1000 * seconds / load.requests for name, seconds in cpu.items()}
    return {
        "p50": 1000 * statistics.median(latency),
        "p99": 1000 * latency[min(len(latency) - 1, int(0.99 * len(latency)))],
        "ttft": 1000 * statistics.median(ttft),
        "rate": load.rate,
        "gateway_cpu": per_request_ms["gateway"],
        "worker_cpu": per_request_ms["worker"],
        "upstream_cpu": per_request_ms["upstream"],
        "redis": commands / load.requests,
        "rss": rss_mb(stack.pids["gateway"]),
    }


def run_rounds(stack: MatrixStack, args: argparse.Namespace) -> list[Round]:
    rows = targets(stack)
    rounds: list[Round] = []
    for number in range(args.rounds):
        order = ROWS[number % 3 :] + ROWS[: number % 3]  # interleaved: each row leads once
        measured = {row: measure_row(stack, rows[row], args) for row in order}
        for row in ("direct", "streams"):
            for figure in ("p50", "p99", "ttft"):
                measured[row][f"added_{figure}"] = (
                    measured[row][figure] - (measured["upstream"][figure])
                )
        rounds.append(measured)
        print(f"round {number + 1}/{args.rounds} done", flush=True)
    return rounds


def cell(rounds: list[Round], row: str, figure: str, digits: int = 2) -> str:
    values = [r[row][figure] for r in rounds if figure in r[row]]
    if not values:
        return "–"
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(rounds: list[Round], args: argparse.Namespace) -> str:
    lines: list[tuple[str, Callable[[str], str]]] = [
        (f"latency p50 at {args.rate:g} req/s paced (ms)", lambda r: cell(rounds, r, "p50")),
        (f"latency p99 at {args.rate:g} req/s paced (ms)", lambda r: cell(rounds, r, "p99")),
        ("added latency p50 (ms)", lambda r: cell(rounds, r, "added_p50")),
        ("added latency p99 (ms)", lambda r: cell(rounds, r, "added_p99")),
        ("time to first token p50 (ms)", lambda r: cell(rounds, r, "ttft")),
        ("added time to first token p50 (ms)", lambda r: cell(rounds, r, "added_ttft")),
        ("requests/s at saturation (wrk)", lambda r: cell(rounds, r, "rate", 0)),
        (
            "gateway CPU per request at saturation (ms)",
            lambda r: "–" if r == "upstream" else cell(rounds, r, "gateway_cpu", 3),
        ),
        (
            "worker CPU per request (ms)",
            lambda r: cell(rounds, r, "worker_cpu", 3) if r == "streams" else "–",
        ),
        ("upstream CPU per request (ms)", lambda r: cell(rounds, r, "upstream_cpu", 3)),
        (
            "Redis commands per request",
            lambda r: "–" if r == "upstream" else cell(rounds, r, "redis", 1),
        ),
        (
            "gateway RSS after the row (MB)",
            lambda r: "–" if r == "upstream" else cell(rounds, r, "rss", 0),
        ),
    ]
    head = "| | " + " | ".join(TITLES[row] for row in ROWS) + " |"
    rule = "|---|" + "---|" * len(ROWS)
    body = [f"| {name} | " + " | ".join(fill(row) for row in ROWS) + " |" for name, fill in lines]
    note = (
        f"\n{args.rounds} rounds, interleaved; median (min–max) over rounds. "
        f"Latency: {int(args.rate * args.seconds)} whole answers per row and round; TTFT: "
        f"{int(args.rate * args.seconds) // 2} streamed; wrk: {args.connections} connections "
        f"for {args.wrk_seconds} s. Gateway on core 0; upstream, Redis, broker, worker and "
        "load on core 1."
    )
    return "\n".join([head, rule, *body]) + "\n" + note + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(".run/bench/transport-matrix.md"))
    args = parser.parse_args()
    with matrix_stack() as stack:
        rounds = run_rounds(stack, args)
    report = table(rounds, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
