"""The last-known-good cache: what a gateway needs to serve its direct nodes when it starts
while Redis is away (local-only mode, docs/architecture.md).

It holds the routing overrides and the verified API key records as Redis last held them
(secrets only in the hashed or sealed form Redis holds), each with the time it was last
read from Redis; what is older than ``last_known_good.max_age_s`` is not trusted. The
direct nodes themselves come from the configuration and are probed before the gateway
serves, so their health is always first-hand. A background task rewrites the file every
``last_known_good.save_interval_s`` (sqlitedict, off the event loop); the gateway reads it
once, at start-up, only when Redis does not answer then.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import msgspec
from sqlitedict import SqliteDict

from api_router.auth.key_record import KeyRecord
from api_router.config.settings import LastKnownGoodSettings
from api_router.routing.override_set import Override

log = logging.getLogger(__name__)

_TABLE = "last_known_good"
_ENTRY = "state"


class Saved(msgspec.Struct, frozen=True):
    """One snapshot of the cache; times are epoch seconds of the last read from Redis."""

    overrides_read_at: float | None
    overrides: list[Override]
    keys: list[tuple[float, KeyRecord]]


_decoder = msgspec.json.Decoder(Saved)


class LastKnownGood:
    def __init__(
        self, settings: LastKnownGoodSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._path = Path(settings.path)
        self._clock = clock
        self.loaded_from: float | None = None  # when the snapshot served from was saved

    async def run(self, snapshot: Callable[[], Saved]) -> None:
        """Rewrite the file with ``snapshot()`` every ``save_interval_s``, forever."""
        while True:
            await asyncio.sleep(self._settings.save_interval_s)
            try:
                await self.save(snapshot())
            except (OSError, sqlite3.Error) as exc:  # a full disk: serving goes on
                log.warning("last-known-good cache not written", extra={"reason": str(exc)})

    async def save(self, saved: Saved) -> None:
        await asyncio.to_thread(self._write, msgspec.json.encode(saved))

    async def load(self) -> Saved | None:
        """What is still trusted of the last snapshot; None without one."""
        blob = await asyncio.to_thread(self._read)
        if blob is None:
            return None
        try:
            saved = _decoder.decode(blob)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("last-known-good cache unreadable; ignored", extra={"reason": str(exc)})
            return None
        oldest = self._clock() - self._settings.max_age_s
        fresh_overrides = saved.overrides_read_at is not None and saved.overrides_read_at >= oldest
        trusted = Saved(
            saved.overrides_read_at if fresh_overrides else None,
            saved.overrides if fresh_overrides else [],
            [(at, record) for at, record in saved.keys if at >= oldest],
        )
        self.loaded_from = (
            max([at for at, _ in trusted.keys] + [trusted.overrides_read_at or 0.0]) or None
        )
        return trusted

    def _write(self, blob: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with SqliteDict(self._path, tablename=_TABLE, encode=_as_is, decode=_as_is) as db:
            db[_ENTRY] = blob.decode()
            db.commit(blocking=True)

    def _read(self) -> bytes | None:
        if not self._path.exists():
            return None
        try:
            with closing(sqlite3.connect(self._path)) as conn:
                row = conn.execute(
                    f'SELECT value FROM "{_TABLE}" WHERE key = ?', (_ENTRY,)
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            log.warning("last-known-good cache unreadable; ignored", extra={"reason": str(exc)})
            return None
        return None if row is None else str(row[0]).encode()


def _as_is(value: str) -> str:
    return value
