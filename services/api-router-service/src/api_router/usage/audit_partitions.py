"""The audit tables' day partitions: created ahead of time, dropped whole past retention.

Each partitioned table (``audit_requests`` on ``finished_at``, ``audit_admin_actions`` on
``at``) has one partition per UTC day, named ``<table>_YYYYMMDD``. The sink creates today's
and the next days' ahead, creates a missing day's on demand when a late record needs it,
and drops every partition older than the retention: a ``DROP TABLE`` of a day, never a
``DELETE`` of rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from psycopg import AsyncConnection, sql

from api_router.usage.audit_migrations import SCHEMA_LOCK

log = logging.getLogger(__name__)

TABLES = ("audit_requests", "audit_admin_actions")
# Partitions made ahead of today, so midnight never waits on DDL.
DAYS_AHEAD = 2


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_{day:%Y%m%d}"


def first_kept_day(today: dt.date, retention_days: int) -> dt.date:
    """The oldest day whose partition is kept: ``retention_days`` whole days before today
    (so a record is kept at least ``retention_days`` days, at most one day more)."""
    return today - dt.timedelta(days=retention_days)


async def existing_days(conn: AsyncConnection, table: str) -> set[dt.date]:
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (table,),
    )
    days = set()
    for (name,) in await cursor.fetchall():
        suffix = str(name).removeprefix(f"{table}_")
        if len(suffix) == 8 and suffix.isdigit():
            days.add(dt.datetime.strptime(suffix, "%Y%m%d").date())
    return days


async def create(conn: AsyncConnection, table: str, days: Iterable[dt.date]) -> None:
    """Create the partitions of ``days`` that are missing (inside the caller's transaction)."""
    wanted = sorted(set(days))
    if not wanted:
        return
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    for day in wanted:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
        ).format(
            sql.Identifier(partition_name(table, day)),
            sql.Identifier(table),
            sql.Literal(start),
            sql.Literal(start + dt.timedelta(days=1)),
        )
        await conn.execute(statement)


async def maintain(
    conn: AsyncConnection, retention_days: int, today: dt.date
) -> dict[str, list[dt.date]]:
    """Create the coming days' partitions and drop those past retention; returns, per table,
    the days dropped."""
    dropped: dict[str, list[dt.date]] = {}
    oldest = first_kept_day(today, retention_days)
    async with conn.transaction():
        for table in TABLES:
            await create(conn, table, (today + dt.timedelta(days=n) for n in range(DAYS_AHEAD + 1)))
            old = sorted(day for day in await existing_days(conn, table) if day < oldest)
            for day in old:
                name = sql.Identifier(partition_name(table, day))
                await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
            if old:
                dropped[table] = old
                log.info(
                    "dropped audit partitions past retention",
                    extra={"table": table, "days": [d.isoformat() for d in old]},
                )
    return dropped
