"""The transport matrix (``make bench``): one run, every row side by side, interleaved.

Rows: the upstream called directly; the gateway with a direct node (``transport: http``);
the gateway with a streams node (Redis stream and a worker). With ``--baseline <git-ref>``
each gateway row also runs on that commit's code, on a second stack of its own
(``baseline.py``), just before today's: before and after in one run. With
``--features-off`` each gateway row also runs on a gateway with the optional features off
(``matrix_stack.FEATURES_OFF``), to show their cost. The harness starts and pins
everything itself (``matrix_stack.py``: gateways on core 0, everything else on core 1).
Each round runs every row, in a rotated order, through:

1. latency: an open-loop client at ``--rate`` req/s (20) for ``--seconds``, whole answers;
2. TTFT: the same pacing, streamed answers, time to the first frame with text;
3. saturation: ``wrk`` for ``--wrk-seconds``, with the CPU seconds each process spent
   (``/proc``) and the Redis commands run (``INFO commandstats``) until the stack is idle
   again (what is done off the request path counts too), divided by the requests.

The table gives, per figure, the median over the rounds and their range. "Added" figures
subtract the upstream row's of the same round. Timings are never asserted anywhere.

    make bench ARGS="--rounds 5"
    make bench ARGS="--baseline f8d6f7d --features-off"
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.support.stack import bearer

from bench.baseline import commit_of, extracted_src
from bench.load import Target, cpu_s, paced, quiesce, redis_commands, rss_mb, saturate
from bench.matrix_stack import FEATURES_OFF, MODELS, REST_CORE, MatrixStack, Side, matrix_stack

TITLES = {
    "upstream": "upstream, called directly",
    "direct": "gateway → direct node (http)",
    "streams": "gateway → streams node (worker)",
}
Round = dict[str, dict[str, float]]  # row title → figure → value


@dataclass(frozen=True)
class Row:
    title: str
    transport: str  # "upstream", "direct" or "streams"
    target: Target
    gateway: int  # the pid of the gateway that serves it (upstream: an idle one)
    side: Side  # whose worker and Redis serve it


def rows(stack: MatrixStack, baseline: str | None) -> list[Row]:
    """In the table's order: upstream, then per transport baseline, today, features off."""
    today = stack.sides["today"]
    upstream = Target(f"{stack.upstream_url}/v1/chat/completions", body("direct"), {})
    # The upstream row's gateway is an idle one: its figures are not shown.
    found = [Row(TITLES["upstream"], "upstream", upstream, today.gateways["on"].pid, today)]
    variants = (
        ("baseline", "on", f", baseline {baseline}"),
        ("today", "on", ""),
        ("today", "off", ", features off"),
    )
    for transport in ("direct", "streams"):
        for side_name, gateway_name, suffix in variants:
            side = stack.sides.get(side_name)
            if side is None or gateway_name not in side.gateways:
                continue
            gateway = side.gateways[gateway_name]
            target = Target(f"{gateway.url}/v1/chat/completions", body(transport), bearer(side.key))
            found.append(Row(TITLES[transport] + suffix, transport, target, gateway.pid, side))
    return found


def body(transport: str) -> dict[str, object]:
    return {"model": MODELS[transport], "messages": [{"role": "user", "content": "hello there"}]}


def measure_row(stack: MatrixStack, row: Row, args: argparse.Namespace) -> dict[str, float]:
    count = int(args.rate * args.seconds)
    quiesce(stack.all_pids)
    asyncio.run(paced(row.target, args.rate, 20, stream=False))  # warm the connections
    latency = sorted(asyncio.run(paced(row.target, args.rate, count, stream=False)))
    ttft = sorted(asyncio.run(paced(row.target, args.rate, count // 2, stream=True)))
    pids = {
        "gateway": row.gateway,
        "worker": row.side.pids["worker"],
        "upstream": stack.upstream_pid,
    }
    cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
    commands_before = redis_commands(row.side.redis)
    load = saturate(row.target, args.wrk_seconds, args.connections, REST_CORE)
    # Work the requests left running (records shipped to Kafka, settlements) is theirs too.
    quiesce(stack.all_pids)
    commands = redis_commands(row.side.redis) - commands_before - 1
    cpu = {name: cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
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
        "rss": rss_mb(row.gateway),
    }


def run_rounds(stack: MatrixStack, matrix: list[Row], args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    for number in range(args.rounds):
        turn = number % len(matrix)  # interleaved: each round starts with another row
        measured = {
            row.title: measure_row(stack, row, args) for row in matrix[turn:] + matrix[:turn]
        }
        upstream = measured[TITLES["upstream"]]
        for row in matrix[1:]:
            for figure in ("p50", "p99", "ttft"):
                measured[row.title][f"added_{figure}"] = (
                    measured[row.title][figure] - upstream[figure]
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


def table(rounds: list[Round], matrix: list[Row], args: argparse.Namespace, note: str) -> str:
    def gateway_only(figure: str, digits: int) -> Callable[[Row], str]:
        return lambda r: "–" if r.transport == "upstream" else cell(rounds, r.title, figure, digits)

    lines: list[tuple[str, Callable[[Row], str]]] = [
        (f"latency p50 at {args.rate:g} req/s paced (ms)", lambda r: cell(rounds, r.title, "p50")),
        (f"latency p99 at {args.rate:g} req/s paced (ms)", lambda r: cell(rounds, r.title, "p99")),
        ("added latency p50 (ms)", lambda r: cell(rounds, r.title, "added_p50")),
        ("added latency p99 (ms)", lambda r: cell(rounds, r.title, "added_p99")),
        ("time to first token p50 (ms)", lambda r: cell(rounds, r.title, "ttft")),
        ("added time to first token p50 (ms)", lambda r: cell(rounds, r.title, "added_ttft")),
        ("requests/s at saturation (wrk)", lambda r: cell(rounds, r.title, "rate", 0)),
        ("gateway CPU per request at saturation (ms)", gateway_only("gateway_cpu", 3)),
        (
            "worker CPU per request (ms)",
            lambda r: cell(rounds, r.title, "worker_cpu", 3) if r.transport == "streams" else "–",
        ),
        ("upstream CPU per request (ms)", lambda r: cell(rounds, r.title, "upstream_cpu", 3)),
        ("Redis commands per request", gateway_only("redis", 1)),
        ("gateway RSS after the row (MB)", gateway_only("rss", 0)),
    ]
    head = "| | " + " | ".join(row.title for row in matrix) + " |"
    rule = "|---|" + "---|" * len(matrix)
    body = [f"| {name} | " + " | ".join(fill(row) for row in matrix) + " |" for name, fill in lines]
    footnote = (
        f"\n{args.rounds} rounds, interleaved; median (min–max) over rounds. "
        f"Latency: {int(args.rate * args.seconds)} whole answers per row and round; TTFT: "
        f"{int(args.rate * args.seconds) // 2} streamed; wrk: {args.connections} connections "
        f"for {args.wrk_seconds} s, CPU and Redis commands counted until the stack is idle "
        "again. Gateways on core 0 (one loaded at a time); upstream, Redis, "
        f"brokers, workers and load on core 1.{note}"
    )
    return "\n".join([head, rule, *body]) + "\n" + footnote + "\n"


def notes(baseline: str | None, features_off: bool) -> str:
    """What the footnote says about the code measured and the features switched off."""
    parts = ["", f"Today's code: {_describe_head()}."]
    if baseline is not None:
        parts.append(
            f"Baseline: the code of commit {baseline}, on a stack of its own (Redis, broker, "
            "worker, gateway) with the same upstream."
        )
    if features_off:
        parts.append(
            f"Features off: {FEATURES_OFF}; auth (API key), usage records (spool and Kafka) and "
            "audit records stay on, as they cannot be switched off."
        )
    return " ".join(parts)


def _describe_head() -> str:
    """The commit today's code is, and whether ``src`` has changed since."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "not in git"
    changed = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True)
    dirty = " + uncommitted changes to src/" if changed.stdout else ""
    return f"commit {head.stdout.strip()}{dirty}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--baseline", metavar="GIT_REF", help="also run this commit's code")
    parser.add_argument("--features-off", action="store_true", help="also rows without them")
    parser.add_argument("--out", type=Path, default=Path(".run/bench/transport-matrix.md"))
    args = parser.parse_args()
    baseline = commit_of(args.baseline) if args.baseline else None
    with ExitStack() as running:
        src = running.enter_context(extracted_src(baseline)) if baseline else None
        stack = running.enter_context(matrix_stack(src, args.features_off))
        matrix = rows(stack, baseline)
        rounds = run_rounds(stack, matrix, args)
    report = table(rounds, matrix, args, notes(baseline, args.features_off))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
