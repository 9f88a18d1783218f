"""The audit database's schema: numbered SQL files in ``audit_sql/``, applied in order at
the sink's start, each once, in its own transaction.

A table ``audit_schema_migrations`` remembers what was applied; a transaction-scoped
advisory lock lets several sinks start at once. A dozen lines over psycopg do what a
migration library would, with nothing to configure (no ORM here to generate them from).
"""

from __future__ import annotations

import logging
import re
from importlib import resources

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys of the sinks' schema changes (migrations and partitions).
SCHEMA_LOCK = 0x61756469  # "audi"

_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, SQL)`` of every migration, in order."""
    found = []
    for entry in resources.files("api_router.usage").joinpath("audit_sql").iterdir():
        named = _FILE.fullmatch(entry.name)
        if named:
            found.append((int(named[1]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: AsyncConnection) -> list[str]:
    """Apply the migrations not applied yet; returns their file names."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS audit_schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM audit_schema_migrations")
        done = {row[0] for row in await cursor.fetchall()}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql.encode())
            await conn.execute(
                "INSERT INTO audit_schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(name)
    if applied:
        log.info("audit database migrated", extra={"applied": applied})
    return applied
