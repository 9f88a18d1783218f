"""The gateways' reads of the audit trail in PostgreSQL (written by ``api-router
audit-sink``): one request's record, and the admins' listing.

psycopg's errors and the pool's timeouts are translated to :class:`StoreUnavailable` here
and nowhere else. Tables not created yet (no sink has started) read as empty.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
from psycopg import AsyncConnection, errors, sql
from psycopg import Error as DatabaseError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api_router.errors import StoreUnavailable
from api_router.usage.record import AuditRecord, Status

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 2
# A read waits this long at most for a connection of the pool (the database away).
_POOL_WAIT_S = 2.0

_decode = msgspec.json.Decoder(AuditRecord).decode


@dataclass(frozen=True, slots=True)
class AuditQuery:
    tenant: str | None
    since_ms: int
    until_ms: int
    status: Status | None
    limit: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    # Pass back as the query's offset (with the same until_ms) for the next page.
    next_offset: int | None


class AuditDatabase:
    def __init__(self, url: str, pool_size: int) -> None:
        self._pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=_POOL_WAIT_S,
            kwargs={"connect_timeout": _CONNECT_TIMEOUT_S, "autocommit": True},
        )

    async def open(self) -> None:
        """Start filling the pool; never waits for the database (reads fail until it is up)."""
        await self._pool.open(wait=False)

    async def aclose(self) -> None:
        await self._pool.close()

    async def get(self, request_id: str) -> AuditRecord | None:
        try:
            async with self._reading() as conn:
                cursor = await conn.execute(
                    "SELECT record::text FROM audit_requests WHERE request_id = %s LIMIT 1",
                    (request_id,),
                )
                row = await cursor.fetchone()
        except _NoTables:
            return None
        return None if row is None else _decode(row[0])

    async def query(self, query: AuditQuery) -> AuditPage:
        """Records newest first within ``[since_ms, until_ms]``, of one tenant or all,
        filtered by status; ``offset`` counts the records that match."""
        conditions = [sql.SQL("finished_at BETWEEN %(since)s AND %(until)s")]
        if query.tenant is not None:
            conditions.append(sql.SQL("tenant = %(tenant)s"))
        if query.status is not None:
            conditions.append(sql.SQL("status = %(status)s"))
        statement = sql.SQL(
            "SELECT record::text FROM audit_requests WHERE {}"
            " ORDER BY finished_at DESC, request_id DESC OFFSET %(offset)s LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(conditions))
        params = {
            "since": _moment(query.since_ms),
            "until": _moment(query.until_ms),
            "tenant": query.tenant,
            "status": query.status,
            "offset": query.offset,
            "limit": query.limit + 1,  # one more tells whether there is a next page
        }
        try:
            async with self._reading() as conn:
                rows = await (await conn.execute(statement, params)).fetchall()
        except _NoTables:
            return AuditPage([], None)
        records = [_decode(text) for (text,) in rows[: query.limit]]
        more = len(rows) > query.limit
        return AuditPage(records, query.offset + query.limit if more else None)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except errors.UndefinedTable:
            raise _NoTables() from None
        except (DatabaseError, PoolTimeout) as exc:
            log.warning("audit database unavailable", extra={"error": str(exc)})
            raise StoreUnavailable("the audit database is unavailable, retry shortly") from None


class _NoTables(Exception):
    """No sink has created the audit tables yet: nothing is stored."""


# A cursor may carry any 15-digit time; Python's datetimes end with year 9999.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LAST_MS = (dt.datetime.max.replace(tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)


def _moment(epoch_ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=min(epoch_ms, _LAST_MS))
