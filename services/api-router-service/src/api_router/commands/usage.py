"""``api-router usage`` and ``api-router tenants list|show``: a tenant's month (requests,
tokens, cost, budget, limits) as the gateway counts it for its budget."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from api_router.commands.admin_api import ADMIN_KEY, TENANT_KEY, run_admin
from api_router.commands.table import fields, table, text


def usage(args: argparse.Namespace) -> int:
    """One tenant's month: ``--tenant`` through the admin API, else the key's own."""
    if args.tenant:
        return show_tenant(args)
    return run_admin(
        args,
        lambda api: api.get("/v1/usage", month=args.month),
        render_usage,
        key=args.key,
        key_names=(TENANT_KEY, ADMIN_KEY),
    )


def show_tenant(args: argparse.Namespace) -> int:
    path = f"/v1/admin/tenants/{quote(args.tenant, safe='')}/usage"
    return run_admin(args, lambda api: api.get(path, month=args.month), render_usage)


def list_tenants(args: argparse.Namespace) -> int:
    return run_admin(args, lambda api: api.get("/v1/admin/tenants", month=args.month), _tenants)


def render_usage(report: dict[str, Any]) -> str:
    summary = fields(
        [
            ("tenant", report["tenant"]),
            ("month", report["month"]),
            ("plan", _plan(report)),
            ("requests", report["requests"]),
            ("tokens", _tokens(report)),
            ("cost", report["cost"]),
            ("budget", _budget(report["budget"])),
        ]
    )
    models = table(
        ("MODEL", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "COST"),
        (
            (name, m["requests"], m["prompt_tokens"], m["completion_tokens"], m["cost"])
            for name, m in report["models"].items()
        ),
    )
    return summary + ("\n\n" + models if report["models"] else "")


def _tenants(listing: dict[str, Any]) -> str:
    rows = [
        (
            t["tenant"],
            t["plan"],
            t["keys"],
            t["requests"],
            t["total_tokens"],
            t["cost"],
            _budget(t["budget"]),
        )
        for t in listing["data"]
    ]
    headers = ("TENANT", "PLAN", "KEYS", "REQUESTS", "TOKENS", "COST", "BUDGET")
    return f"month {listing['month']}\n" + (table(headers, rows) if rows else "no tenants")


def _plan(report: dict[str, Any]) -> str:
    limits = report["limits"]
    if report["plan"] is None or limits is None:
        return "none (no limits)"
    parts = []
    if limits["requests_per_second"] is not None:
        parts.append(f"{text(limits['requests_per_second'])} req/s, burst {limits['burst']}")
    if limits["tokens_per_minute"] is not None:
        parts.append(f"{limits['tokens_per_minute']} tokens/min")
    if limits["max_concurrent"] is not None:
        parts.append(f"{limits['max_concurrent']} at once")
    return f"{report['plan']} ({'; '.join(parts) or 'no rate limits'})"


def _tokens(report: dict[str, Any]) -> str:
    return (
        f"{report['total_tokens']} ({report['prompt_tokens']} prompt, "
        f"{report['completion_tokens']} completion)"
    )


def _budget(budget: dict[str, Any] | None) -> str:
    if budget is None:
        return "none"
    unit = " tokens" if budget["unit"] == "tokens" else ""
    return (
        f"{text(budget['spent'])} of {text(budget['per_month'])}{unit} spent, "
        f"{text(budget['remaining'])} left"
    )
