"""``api-router routing show|weights|pin|unpin|drain|undrain|remove``: the routing in force
and the admins' overrides, through a gateway's admin API (``/v1/admin/routing``). Each
change is checked, stored and audited by the gateway, under the admin key's id."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from api_router.client.client import GatewayError
from api_router.commands.admin_api import AdminApi, CommandError, run_admin
from api_router.commands.table import fields, table, text, when

_BASE = "/v1/admin/routing"


def run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "show":
        return run_admin(args, lambda api: api.get(_BASE), render_routing)
    if action in ("undrain", "unpin", "remove"):
        return run_admin(args, lambda api: _remove(api, args), _removed)
    return run_admin(args, lambda api: _change(api, args), render_override)


def _change(api: AdminApi, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"reason": args.reason}
    if args.ttl_s is not None:
        body["ttl_s"] = args.ttl_s
    if args.action == "drain":
        return api.call("POST", _path("nodes", args.node, "drain"), json=body)
    if args.action == "pin":
        body["nodes"] = args.nodes
        return api.call("PUT", _path("models", args.model, "pin"), json=body)
    body["weights"] = dict(_weight(item) for item in args.weights)
    return api.call("PUT", _path("models", args.model, "weights"), json=body)


def _remove(api: AdminApi, args: argparse.Namespace) -> Any:
    if args.action == "undrain":
        return api.call("POST", _path("nodes", args.node, "undrain"))
    if args.action == "remove":
        return api.call("DELETE", _path("overrides", args.override_id))
    # A model's pin is an override like any other: find it, then delete it by its id.
    overrides = api.get(_BASE)["overrides"]
    found = [o["id"] for o in overrides if o["kind"] == "pin" and o["target"] == args.model]
    if not found:
        raise GatewayError(404, "not_found", f"model {args.model!r} is not pinned")
    for override_id in found:
        api.call("DELETE", _path("overrides", override_id))
    return {"unpinned": args.model, "override_ids": found}


def _weight(item: str) -> tuple[str, float]:
    pool, _, weight = item.partition("=")
    try:
        return pool, float(weight)
    except ValueError:
        raise CommandError(f"weights are POOL=NUMBER, not {item!r}") from None


def _path(*parts: str) -> str:
    return "/".join([_BASE, *(quote(part, safe="") for part in parts)])


def render_routing(view: dict[str, Any]) -> str:
    nodes = table(
        ("NODE", "POOL", "TRANSPORT", "STATE", "BREAKER", "INFLIGHT", "DRAINED", "MODELS LOADED"),
        (
            (
                n["node_id"],
                n["pool"],
                n.get("transport", "streams"),
                n["state"],
                n["breaker"],
                f"{n['inflight']}/{n['max_concurrency']}",
                "yes" if n["drained"] else "no",
                ",".join(n["models_loaded"]) or "-",
            )
            for n in view["nodes"]
        ),
    )
    models = table(
        ("MODEL", "TIERS (FAILOVER ORDER)", "PINNED TO"),
        (
            (name, _tiers(m["tiers"]), ",".join(m["pinned"]) if m["pinned"] else None)
            for name, m in view["models"].items()
        ),
    )
    overrides = table(
        ("OVERRIDE", "KIND", "TARGET", "SETTING", "AUTHOR", "REASON", "EXPIRES"),
        (
            (o["id"], o["kind"], o["target"], _setting(o), o["author"], o["reason"], _expiry(o))
            for o in view["overrides"]
        ),
    )
    return "\n\n".join([nodes, models, overrides if view["overrides"] else "no overrides"])


def render_override(override: dict[str, Any]) -> str:
    return fields(
        [
            ("override", override["id"]),
            ("kind", override["kind"]),
            ("target", override["target"]),
            ("setting", _setting(override)),
            ("author", override["author"]),
            ("reason", override["reason"]),
            ("created at", when(override["created_at"])),
            ("expires at", _expiry(override)),
        ]
    )


def _removed(answer: dict[str, Any]) -> str:
    if "deleted" in answer:
        return f"removed override {answer['deleted']}"
    target = answer.get("undrained") or answer.get("unpinned")
    return f"{target}: removed {', '.join(answer['override_ids'])}"


def _tiers(tiers: list[dict[str, float]]) -> str:
    return " > ".join(",".join(f"{p}={text(w)}" for p, w in tier.items()) for tier in tiers)


def _setting(override: dict[str, Any]) -> str:
    if override["kind"] == "weights":
        return _tiers([override["weights"]])
    if override["kind"] == "pin":
        return ",".join(override["nodes"])
    return "drained"


def _expiry(override: dict[str, Any]) -> str:
    return when(override["expires_at"], "never")
