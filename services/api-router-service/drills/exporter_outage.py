"""Drill: the Kafka broker stops answering under load, and the gateways fail over to a
standby broker.

Two gateways (each with its own disk spool), a worker, a primary and a standby broker,
Prometheus evaluating the alert rules. Under a steady load spread over both gateways, the
primary broker is frozen (SIGSTOP: it still takes connections and answers nothing, the
harder case for a producer). Records wait in the spools; the drill waits for
``ApiRouterUsageExportStalled`` (its threshold is 60 s of waiting, so detection takes a
minute or more), keeps the outage for at least ``--outage-min-s``, then applies the
runbook's mitigation: each gateway in turn is restarted pointing at the standby broker,
while the load goes to the other. It waits until the spools are empty and the alert has
resolved, then reads every record back from both brokers with a consumer of its own.

    cd services/api-router-service && python -m drills.exporter_outage [--outage-min-s 300]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.bench_stack import servers_stack
from tests.support.processes import GatewayProcess
from tests.support.servers import TansuBroker, wait_until
from tests.support.stack import Stack, chat

from drills.figures import DrillFigures, Timeline, impact_ended
from drills.load import SteadyLoad
from drills.stack import prometheus, read_usage, spool_empty, wait_resolved

ALERT = "ApiRouterUsageExportStalled"
# A stopping gateway gives up on an unreachable broker quickly: its spool keeps the rest.
USAGE = {"shutdown_flush_s": 1.0}
SERVER = {"graceful_shutdown_s": 5.0}
MOCK_WORKER = ("--backend", "mock", "--models", "llama3.2", "--mock-latency-ms", "20")


@dataclass(frozen=True)
class Options:
    rate_per_s: float = 10.0
    steady_s: float = 5.0
    for_s: float = 5.0  # every alert's `for:` during the drill
    outage_min_s: float = 0.0  # keep the broker away at least this long
    observe_s: float = 3.0  # load kept after recovery
    timeout_s: float = 240.0  # longest wait for any one step


def run(options: Options) -> DrillFigures:
    standby = TansuBroker().start()
    try:
        with servers_stack() as stack:
            stack.worker("node-a", *MOCK_WORKER, "--max-concurrency", "8")
            gateways = [_start(stack, f"gw-{n}", stack.broker.bootstrap) for n in range(2)]
            key = asyncio.run(stack.create_key("drill"))
            targets = {"api-router": [g.url.removeprefix("http://") for g in gateways]}
            server = prometheus(stack, targets, options.for_s)
            load = SteadyLoad([g.url for g in gateways], key, options.rate_per_s, chat()).start()
            try:
                time.sleep(options.steady_s)
                fault_at = time.time()
                stack.broker.pause()  # the fault: the primary broker answers nothing
                detected_at = server.wait_firing(ALERT, options.timeout_s)
                time.sleep(max(fault_at + options.outage_min_s - time.time(), 0))
                # The runbook's mitigation: each gateway in turn onto the standby broker.
                gateways = [_restart(stack, old, standby.bootstrap) for old in gateways]
                mitigated_at = time.time()
                wait_until(
                    lambda: all(spool_empty(g.url) for g in gateways),
                    options.timeout_s,
                    "every spool shipped to the standby",
                )
                drained_at = time.time()
                resolved_at = wait_resolved(server, ALERT, options.timeout_s)
                time.sleep(options.observe_s)
            finally:
                samples = load.stop()
                server.stop()
            wait_until(lambda: all(spool_empty(g.url) for g in gateways), 60, "last records")
            recovered_at = max(resolved_at, drained_at, impact_ended(samples, fault_at))
            # What the primary acknowledged before it froze is read once it answers again.
            stack.broker.resume()
            records = read_usage(stack.broker.bootstrap, stack.usage_topic)
            records += read_usage(standby.bootstrap, stack.usage_topic)
    finally:
        standby.stop()
    timeline = Timeline(fault_at, detected_at, mitigated_at, recovered_at)
    notes = (
        f"load {options.rate_per_s}/s over 2 gateways; alerts' for: {options.for_s} s; "
        f"broker away {round(mitigated_at - fault_at, 1)} s"
    )
    return DrillFigures.measured("exporter-outage", ALERT, timeline, samples, records, notes)


def _start(stack: Stack, name: str, bootstrap: str) -> GatewayProcess:
    return stack.gateway_process(name, kafka=_kafka(bootstrap), usage=USAGE, server=SERVER)


def _restart(stack: Stack, old: GatewayProcess, bootstrap: str) -> GatewayProcess:
    """A rolling restart's step: stop (in-flight requests finish), start on ``bootstrap``."""
    old.send(signal.SIGTERM)
    old.wait(30)
    return stack.replace_gateway(old, kafka=_kafka(bootstrap), usage=USAGE, server=SERVER)


def _kafka(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap, "send_timeout_s": 1.0}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=Options.rate_per_s, help="requests/s")
    parser.add_argument("--for-s", type=float, default=Options.for_s, help="alerts' for:")
    parser.add_argument(
        "--outage-min-s", type=float, default=Options.outage_min_s, help="hold the outage"
    )
    args = parser.parse_args(argv)
    options = Options(rate_per_s=args.rate, for_s=args.for_s, outage_min_s=args.outage_min_s)
    run(options).print()


if __name__ == "__main__":
    main()
