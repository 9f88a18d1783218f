"""Drill: the node serving a model dies with its backend under load.

Two nodes in two routing tiers (``primary`` first, ``standby`` on failover), each a worker
with its own backend process; one gateway; Prometheus evaluating the alert rules. Under a
steady load, node-a's worker and backend are killed (SIGKILL). node-a answers in 0.3 s,
so a few jobs it had accepted die with it: the gateway takes them for lost once their
worker has been silent for ``dispatch.idle_timeout_s`` (or its node went stale) and fails
them over. Requests planned on node-a wait the accept timeout and fail over to node-b
until node-a's breaker opens (within the replica's retry budget); the drill
waits for ``ApiRouterNodeBreakerOpen``, applies its runbook's mitigation (a time-boxed
drain of node-a with the CLI) and waits until the alert has resolved and every request is
answered 200 on its first node.

    cd services/api-router-service && python -m drills.backend_failover [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.bench_stack import servers_stack
from tests.support.limits import write_policies
from tests.support.servers import free_port, wait_until
from tests.support.stack import chat

from drills.figures import DrillFigures, Timeline, impact_ended
from drills.load import SteadyLoad
from drills.stack import (
    BackendProcess,
    cli,
    prometheus,
    read_usage,
    spool_empty,
    wait_resolved,
)

ALERT = "ApiRouterNodeBreakerOpen"
# Every tenant on an unlimited plan; every model on node-a's pool first, node-b's on failover.
ROUTES = {
    "plans": {"default": {}},
    "models": {"*": {"routes": [{"primary": 1}, {"standby": 1}]}},
}


@dataclass(frozen=True)
class Options:
    rate_per_s: float = 10.0
    # Load before the fault: it also fills the retry budget's window (20% of requests).
    steady_s: float = 20.0
    for_s: float = 5.0  # every alert's `for:` during the drill
    accept_timeout_s: float = 1.0
    # Long enough for a lost attempt (silent for dispatch.idle_timeout_s, 10 s) to fail over.
    request_timeout_s: float = 30.0
    observe_s: float = 3.0  # load kept after the alert resolved
    timeout_s: float = 120.0  # longest wait for any one step


def run(options: Options) -> DrillFigures:
    backends = {"node-a": BackendProcess(delay_s=0.3), "node-b": BackendProcess()}
    try:
        with servers_stack() as stack:
            pools = {"node-a": "primary", "node-b": "standby"}
            ports = {node: free_port() for node in pools}
            workers = {
                node: stack.worker(
                    node,
                    "--metrics-port",
                    str(ports[node]),
                    "--max-concurrency",
                    "8",  # 10/s of 0.3 s answers keep about 3 running
                    pool=pools[node],
                    backend_url=backends[node].url,
                )
                for node in pools
            }
            policies = write_policies(stack.tmp / "policies.yaml", ROUTES)
            gateway = stack.gateway_process(
                limits={"policies_file": str(policies)},
                health={"refresh_interval_s": 0.5},
                dispatch={
                    "accept_timeout_s": options.accept_timeout_s,
                    "request_timeout_s": options.request_timeout_s,
                },
            )
            key = asyncio.run(stack.create_key("drill"))
            targets = {
                "api-router": [gateway.url.removeprefix("http://")],
                "api-router-worker": [f"127.0.0.1:{port}" for port in ports.values()],
            }
            server = prometheus(stack, targets, options.for_s)
            load = SteadyLoad([gateway.url], key, options.rate_per_s, chat()).start()
            try:
                time.sleep(options.steady_s)
                # The fault: node-a's worker and its backend die at once.
                fault_at = time.time()
                workers["node-a"].send(signal.SIGKILL)
                backends["node-a"].kill()
                detected_at = server.wait_firing(ALERT, options.timeout_s)
                # The runbook's mitigation: drain the node, time-boxed.
                cli(
                    stack,
                    gateway.url,
                    "routing",
                    "drain",
                    "node-a",
                    "--reason",
                    "drill: node-a down",
                    "--ttl-s",
                    "900",
                )
                mitigated_at = time.time()
                resolved_at = wait_resolved(server, ALERT, options.timeout_s)
                time.sleep(options.observe_s)  # service after the mitigation, watched
            finally:
                samples = load.stop()
                server.stop()
            recovered_at = max(resolved_at, impact_ended(samples, fault_at))
            # Every answered request's record, read back from the topic.
            wait_until(lambda: spool_empty(gateway.url), 60, "usage shipped")
            records = read_usage(stack.broker.bootstrap, stack.usage_topic)
    finally:
        backends["node-b"].kill()
    timeline = Timeline(fault_at, detected_at, mitigated_at, recovered_at)
    notes = (
        f"load {options.rate_per_s}/s; alerts' for: {options.for_s} s; "
        f"accept timeout {options.accept_timeout_s} s"
    )
    return DrillFigures.measured("backend-failover", ALERT, timeline, samples, records, notes)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=Options.rate_per_s, help="requests/s")
    parser.add_argument("--steady-s", type=float, default=Options.steady_s)
    parser.add_argument("--for-s", type=float, default=Options.for_s, help="alerts' for:")
    args = parser.parse_args(argv)
    run(Options(rate_per_s=args.rate, steady_s=args.steady_s, for_s=args.for_s)).print()


if __name__ == "__main__":
    main()
