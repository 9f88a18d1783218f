"""Audit messages as rows of the audit tables, and the one statement per table that stores
a batch of them (multi-row, idempotent on the record's id)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
from psycopg import AsyncConnection

from api_router.usage.record import AuditMessage

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder(AuditMessage).decode

# unnest() turns the batch's column arrays into rows: one statement, one round trip, and
# ON CONFLICT DO NOTHING stores a record delivered twice once (the primary key holds the
# partition key, which comes from the record itself).
_INSERT_REQUESTS = (
    "INSERT INTO audit_requests (request_id, finished_at, tenant, status, record)"
    " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::jsonb[])"
    " ON CONFLICT DO NOTHING"
)
_INSERT_ACTIONS = (
    "INSERT INTO audit_admin_actions (action_id, at, actor, action, target, record)"
    " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],"
    " %s::jsonb[]) ON CONFLICT DO NOTHING"
)


@dataclass
class AuditRows:
    """One batch of messages, as column arrays per table."""

    requests: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    actions: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    unreadable: int = 0
    past_retention: int = 0

    def add(self, value: bytes, oldest_day: dt.date) -> None:
        try:
            message = _decode(value)
        except msgspec.DecodeError as exc:
            self.unreadable += 1
            log.error("skipping an unreadable audit message", extra={"error": str(exc)})
            return
        if day_of(message.finished_at) < oldest_day:
            self.past_retention += 1  # its partition is gone, or about to be
            return
        if message.request is not None:
            record = message.request
            self.requests.append(
                (
                    record.request_id,
                    record.finished_at,
                    record.tenant,
                    record.status,
                    msgspec.json.encode(record).decode(),
                )
            )
        elif message.action is not None:
            action = message.action
            self.actions.append(
                (
                    action.action_id,
                    action.at,
                    action.actor,
                    action.action,
                    action.target,
                    msgspec.json.encode(action).decode(),
                )
            )

    def days(self) -> tuple[set[dt.date], set[dt.date]]:
        """The days the batch's requests and actions fall on (their partitions)."""
        return {day_of(r[1]) for r in self.requests}, {day_of(a[1]) for a in self.actions}

    async def insert(self, conn: AsyncConnection) -> int:
        """Store the batch (inside the caller's transaction); returns the rows added."""
        added = 0
        for statement, rows in ((_INSERT_REQUESTS, self.requests), (_INSERT_ACTIONS, self.actions)):
            if rows:
                cursor = await conn.execute(statement, _columns(rows))
                added += max(cursor.rowcount, 0)
        return added


def _columns(rows: Iterable[tuple[str, ...]]) -> list[list[str]]:
    return [list(column) for column in zip(*rows, strict=True)]


def day_of(rfc3339: str) -> dt.date:
    return dt.datetime.fromisoformat(rfc3339).astimezone(dt.UTC).date()
