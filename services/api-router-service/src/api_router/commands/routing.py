"""``api-router routing show|weights|drain|undrain|pin|unpin``: the admin overrides from
the command line, straight against Redis (no gateway needed), audited as ``cli:<user>``.

The checks are the admin API's (``routing_contract``, ``override_rules``); the nodes and
pools are read from the health registry and the policies file, as a gateway would see them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec

from api_router.api.admin.routing_contract import (
    DrainRequest,
    OverrideRequest,
    PinRequest,
    WeightsRequest,
)
from api_router.commands.cli_audit import cli_actor, record_cli_action
from api_router.config.loader import load_settings
from api_router.config.policies import Policies, load_policies
from api_router.errors import ApiError
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, connect, store_errors
from api_router.routing.node_health import health_decoder
from api_router.routing.override_set import Override
from api_router.routing.override_store import OverrideStore
from api_router.routing.routing_view import routing_view
from api_router.routing.snapshot import RoutingSnapshot
from api_router.usage.audit_store import AuditStore


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    keys = Keyspace(settings.redis.key_prefix)
    redis = connect(settings.redis)
    audit = AuditStore(redis, keys, settings.audit)
    try:
        store = OverrideStore(redis, keys)
        await store.refresh()
        policies = _policies(settings.limits.policies_file)
        snapshot = await _snapshot(redis, keys, settings.health)
        if args.action == "show":
            view = routing_view(snapshot, policies, store.current, None)
            sys.stdout.write(msgspec.json.format(msgspec.json.encode(view)).decode() + "\n")
            return 0
        done = await _change(args, store, snapshot, policies)
        for action, target, details in done:
            record_cli_action(audit, action, target, details)
        return 0
    except ApiError as exc:
        sys.stderr.write(f"api-router routing {args.action}: {exc.message}\n")
        return 1 if exc.code == "not_found" else 2
    finally:
        await audit.aclose()
        await redis.aclose()


async def _change(
    args: argparse.Namespace,
    store: OverrideStore,
    snapshot: RoutingSnapshot,
    policies: Policies | None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """Apply the command; what was done, for the audit store."""
    action = args.action
    if action in ("undrain", "unpin"):
        kind, target = ("drain", args.node) if action == "undrain" else ("pin", args.model)
        found = [o.id for o in await store.read() if o.kind == kind and o.target == target]
        if not found:
            raise ApiError("not_found", f"no {kind} override for {target!r}")
        await store.delete(*found)
        sys.stdout.write(f"{action}: removed {', '.join(found)}\n")
        return [(f"routing.{action}", target, {"override_ids": found})]
    fields: dict[str, Any] = {"reason": args.reason, "ttl_s": args.ttl_s}
    wanted: type[OverrideRequest] = DrainRequest
    if action == "weights":
        wanted, fields["weights"] = WeightsRequest, dict(_weight(item) for item in args.weights)
    elif action == "pin":
        wanted, fields["nodes"] = PinRequest, args.nodes
    try:
        body = msgspec.convert(fields, wanted)
    except msgspec.ValidationError as exc:
        raise ApiError("invalid_request", str(exc)) from None
    target = args.node if action == "drain" else args.model
    override = body.override(snapshot, policies, target, cli_actor())
    await store.put(override)
    sys.stdout.write(f"{action}: {override.id}\n")
    return [(f"routing.{action}", override.target, _details(override))]


def _weight(item: str) -> tuple[str, float]:
    pool, _, weight = item.partition("=")
    try:
        return pool, float(weight)
    except ValueError:
        raise ApiError("invalid_request", f"weights are POOL=NUMBER, not {item!r}") from None


def _details(override: Override) -> dict[str, Any]:
    details: dict[str, Any] = msgspec.to_builtins(override)
    return details


def _policies(path: str | None) -> Policies | None:
    return load_policies(path) if path is not None else None


async def _snapshot(redis: Redis, keys: Keyspace, limits: Any) -> RoutingSnapshot:
    with store_errors("the health registry"):
        raw = await redis.hgetall(keys.health)
    nodes = []
    for blob in raw.values():
        try:
            nodes.append(health_decoder.decode(blob))
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
    return RoutingSnapshot.build(nodes, time.time(), limits)
