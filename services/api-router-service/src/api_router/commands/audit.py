"""``api-router audit show|list``: requests' audit records through the gateway's audit API
(``/v1/audit/requests``), wherever the gateway keeps them."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from api_router.commands.admin_api import run_admin
from api_router.commands.table import fields, table


def show(args: argparse.Namespace) -> int:
    path = "/v1/audit/requests/" + quote(args.request_id, safe="")
    return run_admin(args, lambda api: api.get(path), render_record)


def list_records(args: argparse.Namespace) -> int:
    return run_admin(
        args,
        lambda api: api.get(
            "/v1/audit/requests",
            tenant=args.tenant,
            since=args.since,
            until=args.until,
            status=args.status,
            limit=args.limit,
            cursor=args.cursor,
        ),
        _record_table,
    )


def render_record(record: dict[str, Any]) -> str:
    timings = record["timings"]
    routing = record["routing"]
    tried = ", ".join(f"{t['node_id']} ({t['error'] or 'answered'})" for t in routing["tried"])
    decisions = "; ".join(f"{d['outcome']} {d['limit']}" for d in record["limit_decisions"])
    return fields(
        [
            ("request id", record["request_id"]),
            ("tenant", record["tenant"]),
            ("key", record["key_id"]),
            ("auth", record["auth_method"] or None),
            ("model", record["model"] or None),
            ("node", f"{record['node_id']} (pool {record['pool']})" if record["node_id"] else None),
            ("status", _status(record)),
            ("streamed", "yes" if record["streamed"] else "no"),
            (
                "tokens",
                f"{record['prompt_tokens']} prompt, {record['completion_tokens']} completion",
            ),
            ("cost", record["cost"]),
            ("started at", record["started_at"]),
            ("finished at", record["finished_at"]),
            ("total ms", timings["total_ms"]),
            ("gateway ms", timings["gateway_ms"]),
            ("queue ms", timings["queue_ms"]),
            ("inference ms", timings["inference_ms"]),
            ("ttft ms", timings["ttft_ms"]),
            ("routing", f"{routing['outcome']}, {routing['attempts']} attempt(s)"),
            ("tried", tried or None),
            ("limits", decisions or None),
            ("gateway", record["gateway_instance"]),
        ]
    )


def _record_table(page: dict[str, Any]) -> str:
    rows = [
        (
            r["finished_at"],
            r["request_id"],
            r["tenant"],
            r["model"] or None,
            r["node_id"] or None,
            _status(r),
            r["prompt_tokens"] + r["completion_tokens"],
            r["cost"],
            r["timings"]["total_ms"],
        )
        for r in page["data"]
    ]
    headers = ("FINISHED", "REQUEST", "TENANT", "MODEL", "NODE", "STATUS", "TOKENS", "COST", "MS")
    listing = table(headers, rows) if rows else "no records"
    if page["next_cursor"]:
        listing += f"\nolder records: add --cursor {page['next_cursor']}"
    return listing


def _status(record: dict[str, Any]) -> str:
    """The outcome and the HTTP status, with the error code where it says more."""
    status, code = record["status"], record["error_code"]
    detail = f" {code}" if code and code != status else ""
    return f"{status} ({record['http_status']}{detail})"
