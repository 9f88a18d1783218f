"""Reading the audit database back, as an auditor with SQL would."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from api_router.usage.audit_partitions import existing_days


def request_rows(url: str) -> list[dict[str, Any]]:
    """Every stored request record (its JSON), one per row, oldest first."""
    with psycopg.connect(url) as conn:
        if not _tables_exist(conn):
            return []
        rows = conn.execute("SELECT record FROM audit_requests ORDER BY finished_at").fetchall()
    return [row[0] for row in rows]


def action_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        if not _tables_exist(conn):
            return []
        rows = conn.execute("SELECT record FROM audit_admin_actions ORDER BY at").fetchall()
    return [row[0] for row in rows]


def migrated(url: str) -> bool:
    """Whether a sink has created the audit tables."""
    with psycopg.connect(url) as conn:
        return _tables_exist(conn)


async def partition_days(url: str, table: str) -> set[dt.date]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await existing_days(conn, table)


def _tables_exist(conn: psycopg.Connection[Any]) -> bool:
    found = conn.execute("SELECT to_regclass('audit_requests')").fetchone()
    return found is not None and found[0] is not None
