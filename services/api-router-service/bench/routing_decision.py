"""Cost of one routing decision over a 200-node snapshot, in microseconds.

``Router.plan`` as a request calls it: the engine over a snapshot of 200 healthy nodes in
4 pools (every node serves the model, half have it loaded), two failover tiers with
weights, a drain and a weight override in force, some breakers open. Cases: plain, with
a session id (affinity: rendezvous over the tier's resident nodes), and with a pin.
Building the snapshot (once per refresh, off the request path) is measured apart.

    cd services/api-router-service && python -m bench.routing_decision [--decisions N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import msgspec

from api_router.config.policies import ModelPolicy, Policies
from api_router.config.settings import HealthSettings, RoutingSettings
from api_router.routing.node_health import NodeHealth
from api_router.routing.override_set import Override, OverrideSet
from api_router.routing.router import Router
from api_router.routing.snapshot import RoutingSnapshot

POOLS = ("gpu", "edge-a", "edge-b", "cloud")
NODES = 200


def nodes(now: float, rng: random.Random) -> list[NodeHealth]:
    return [
        NodeHealth(
            node_id=f"node-{i:03d}",
            pool=POOLS[i % len(POOLS)],
            models_loaded=["llama3.2:latest"] if i % 2 == 0 else [],
            models_available=["llama3.2:latest", "qwen2.5:7b"],
            ram_percent=rng.uniform(20, 85),
            cpu_percent=rng.uniform(0, 100),
            temp_celsius=rng.uniform(40, 70),
            inflight=rng.randrange(0, 4),
            max_concurrency=4,
            available=True,
            last_seen=now,
            version="bench",
        )
        for i in range(NODES)
    ]


def percentile_us(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6, 2)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(statistics.median(samples) * 1e6, 2),
        "p99_us": percentile_us(samples, 0.99),
        "mean_us": round(statistics.fmean(samples) * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    now = time.time()
    health = nodes(now, rng)
    build: list[float] = []
    snapshot = RoutingSnapshot()
    for _ in range(50):
        started = time.perf_counter()
        snapshot = RoutingSnapshot.build(health, now, HealthSettings(), snapshot)
        build.append(time.perf_counter() - started)
    routes = [{"gpu": 3.0, "edge-a": 1.0, "edge-b": 1.0}, {"cloud": 1.0}]
    policies = Policies(models={"*": ModelPolicy(routes=routes)})
    base = Override(id="o", kind="drain", target="", author="bench", reason="bench", created_at=now)
    replace = msgspec.structs.replace
    overrides = OverrideSet.of(
        [
            replace(base, id="o1", target="node-004"),
            replace(base, id="o2", kind="weights", target="llama3.2", weights={"edge-b": 2.0}),
        ],
        now,
    )
    pin = [f"node-{i:03d}" for i in range(0, NODES, 5)]
    pinned = OverrideSet.of([replace(base, id="o3", kind="pin", target="llama3.2", nodes=pin)], now)
    current = {"overrides": overrides}
    router = Router(
        RoutingSettings(),
        lambda: snapshot,
        lambda: policies,
        lambda: current["overrides"],
        random.Random(1),
    )
    for node_id in ("node-008", "node-016", "node-024"):
        for _ in range(5):
            router.breakers.failure(node_id)
    results: dict[str, object] = {
        "nodes": NODES,
        "decisions": args.decisions,
        "snapshot_build": summary(build),
    }
    for case, session, active in (
        ("plain", None, overrides),
        ("affinity", "session-{i}", overrides),
        ("pinned", None, pinned),
    ):
        current["overrides"] = active
        samples: list[float] = []
        for i in range(args.decisions + 1000):
            session_id = session.format(i=i % 500) if session else None
            started = time.perf_counter()
            router.plan("llama3.2", session_id)
            elapsed = time.perf_counter() - started
            if i >= 1000:  # warm-up
                samples.append(elapsed)
        results[case] = summary(samples)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
