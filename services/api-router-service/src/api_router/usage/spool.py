"""The usage spool: records not yet acknowledged by Kafka, on disk, oldest first.

A dict over SQLite (sqlitedict) keyed by ``record_id``, so a record spooled twice is kept
once. Values are the records' JSON text, never pickles. Every method blocks (sqlitedict
runs SQLite in its own thread and waits for it); the exporter calls them through
``asyncio.to_thread``.

Durability: a commit (``blocking=True``) returns once SQLite has the rows, so committed
records survive a crash of this process. sqlitedict opens SQLite with ``synchronous=OFF``,
so a power loss or kernel crash can lose the last commits.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from sqlitedict import SqliteDict

log = logging.getLogger(__name__)

_TABLE = "usage"
_FILE = "usage-spool.sqlite"
_CLOSE_WAIT_S = 5.0


class SpoolError(Exception):
    """The spool could not be written or read (a full disk, a broken file)."""


def _as_is(value: str) -> str:
    return value


def _intact(path: Path) -> bool:
    """Checked before sqlitedict opens the file: its thread dies on a broken one."""
    if not path.exists():
        return True
    try:
        with closing(sqlite3.connect(path)) as conn:
            return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False


class UsageSpool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / _FILE
        self._db = self._open()
        self.depth = self._count()

    def append(self, records: Sequence[tuple[str, str]]) -> None:
        """Store ``(record_id, json)`` pairs and commit them to disk."""
        with self._errors("write"):
            self._db.update(records)
            # Surfaces a failed insert before the commit, which would keep the rows that
            # went in before it; the caller reopens the spool, rolling them back.
            self._db.conn.select_one("SELECT 1")
            self._db.commit(blocking=True)
            self.depth = self._count()

    def oldest(self, limit: int) -> list[tuple[str, str]]:
        with self._errors("read"):
            rows = self._db.conn.select(
                f'SELECT key, value FROM "{_TABLE}" ORDER BY rowid LIMIT ?', (limit,)
            )
            return [(key, value) for key, value in rows]

    def delete(self, record_ids: Sequence[str]) -> None:
        """Forget records Kafka has acknowledged."""
        with self._errors("delete"):
            self._db.conn.executemany(
                f'DELETE FROM "{_TABLE}" WHERE key = ?', [(rid,) for rid in record_ids]
            )
            self._db.commit(blocking=True)
            self.depth = self._count()

    def reopen(self) -> None:
        """Start afresh after a failure: the failed transaction is rolled back when the old
        connection closes, and a new thread replaces one that may have died with it."""
        thread = self._db.conn
        self._db.close(force=True)
        thread.join(_CLOSE_WAIT_S)
        self._db = self._connect()
        self.depth = self._count()

    def close(self) -> None:
        self._db.close()

    def _open(self) -> SqliteDict:
        if not _intact(self.path):
            # Keep the broken file for inspection and carry on with an empty spool: serving
            # requests matters more than a file nobody can read anyway.
            aside = self.path.with_suffix(f".corrupt-{int(time.time())}")
            self.path.rename(aside)
            log.error(
                "usage spool unreadable, moved aside; starting an empty one",
                extra={"path": str(self.path), "moved_to": str(aside)},
            )
        return self._connect()

    def _connect(self) -> SqliteDict:
        return SqliteDict(
            str(self.path),
            tablename=_TABLE,
            autocommit=False,
            encode=_as_is,
            decode=_as_is,
            outer_stack=False,
        )

    def _count(self) -> int:
        row = self._db.conn.select_one(f'SELECT count(*) FROM "{_TABLE}"')
        return int(row[0]) if row else 0

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"usage spool {what} failed: {exc}") from None
