"""One background reader per replica: reads the replica's reply stream and hands each event
to the request waiting for it.

Events for requests nobody waits for any more (answered, timed out, a stale attempt) are
dropped here, which is what guarantees one answer per request. A wait can also be ended
from outside (:meth:`ReplyWaiter.interrupt`): by the attempt watch when the node is lost,
and by the shutdown when its grace is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from api_router.dispatch.protocol import Event, ProtocolError
from api_router.errors import StoreUnavailable
from api_router.keyspace import REPLY_STREAM_TTL_S
from api_router.redis_store import Redis, connection_lost, lua_script, store_errors

log = logging.getLogger(__name__)

_BLOCK_MS = 1000
_BATCH = 512
# Trimming what was read and refreshing the TTL happen at most this often, off the
# per-event path: each read is then a single XREAD.
_UPKEEP_INTERVAL_S = 1.0
_RETRY_DELAY_S = (0.05, 0.1, 0.25, 0.5, 1.0)
_UNREADABLE = "the reply stream is unavailable, retry shortly"


class ReplyWaiter:
    """The events of one request attempt on one node, in arrival order, at most
    ``max_events`` held (0: no bound). The reader never waits for a request: when a
    request's buffer is full, its later events are dropped and ``overflowed`` is set, and
    that request is over.

    Once its worker has accepted, the attempt is watched (``watch``): ``last_event_at``
    (``time.monotonic``) tells the attempt watch how long the worker has been silent."""

    __slots__ = (
        "attempt",
        "request_id",
        "node_id",
        "overflowed",
        "watched",
        "idle_s",
        "last_event_at",
        "_events",
        "_error",
        "_error_due",
    )

    def __init__(
        self,
        request_id: str,
        attempt: int,
        node_id: str = "",
        max_events: int = 0,
        overflowed: asyncio.Event | None = None,
    ) -> None:
        self.request_id = request_id
        self.attempt = attempt
        self.node_id = node_id
        # Shared by the attempts of one stream, so its relay watches one flag throughout.
        self.overflowed = overflowed or asyncio.Event()
        self.watched = False
        self.idle_s: float | None = None
        self.last_event_at = time.monotonic()
        self._events: asyncio.Queue[Event | Exception] = asyncio.Queue(max_events)
        self._error: Exception | None = None  # what the wait was interrupted with
        self._error_due = False  # `ready` came across it: `next` raises it at once

    def deliver(self, event: Event, now: float | None = None) -> None:
        self.last_event_at = time.monotonic() if now is None else now
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()

    def watch(self, idle_s: float | None) -> None:
        """The worker accepted: from now on the attempt is lost when its node leaves, and
        (``idle_s``, for workers that send keepalives) when it is silent that long."""
        self.watched = True
        self.idle_s = idle_s
        self.last_event_at = time.monotonic()

    def interrupt(self, error: Exception) -> None:
        """End the wait: ``next`` raises ``error`` once the events before it are taken."""
        if self._error is None:
            self._error = error
            try:
                self._events.put_nowait(error)
            except asyncio.QueueFull:  # overflowed already: no event is worth waiting for
                self._error_due = True

    @property
    def interrupted(self) -> bool:
        return self._error is not None

    async def next(self, timeout_s: float) -> Event:
        """The next event; raises ``TimeoutError`` when none arrives in time, or the error
        the wait was interrupted with."""
        if self._error_due and self._error is not None:
            raise self._error  # come across by `ready`, or the buffer was full
        async with asyncio.timeout(max(timeout_s, 0.0)):
            item = await self._events.get()
        if isinstance(item, Exception):
            raise item
        return item

    def ready(self) -> list[Event]:
        """The events that have arrived and not been taken yet, without waiting (up to an
        interruption, which the next call to ``next`` raises)."""
        events = []
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, Exception):
                self._error_due = True
                break
            events.append(item)
        return events


class ReplyReader:
    def __init__(self, redis: Redis, stream: str) -> None:
        self._redis = redis
        self._open = redis.register_script(lua_script(__package__, "open_reply_stream"))
        self.stream = stream
        self._waiters: dict[str, ReplyWaiter] = {}
        self._last_id = b"0-0"
        self._next_upkeep = 0.0

    async def open(self) -> None:
        """Create this replica's (empty) reply stream; workers never create it."""
        await self._create_stream()

    def register(
        self,
        request_id: str,
        attempt: int = 1,
        node_id: str = "",
        max_events: int = 0,
        overflowed: asyncio.Event | None = None,
    ) -> ReplyWaiter:
        waiter = ReplyWaiter(request_id, attempt, node_id, max_events, overflowed)
        self._waiters[request_id] = waiter
        return waiter

    def unregister(self, request_id: str) -> None:
        self._waiters.pop(request_id, None)

    def waiting(self) -> list[ReplyWaiter]:
        """Every attempt waiting for events now."""
        return list(self._waiters.values())

    async def run(self) -> None:
        """Read forever; survives Redis outages by retrying with a growing delay."""
        failures = 0
        while True:
            try:
                batch = await self._read_batch()
            except StoreUnavailable as exc:
                delay = _RETRY_DELAY_S[min(failures, len(_RETRY_DELAY_S) - 1)]
                if failures == 0:
                    log.warning("reply stream unreadable; retrying", extra={"stream": self.stream})
                # Refused or dropped after redis-py's own retries: Redis is gone, not
                # blinking, and the events of the requests waiting now may never come (a
                # failover loses what the old primary had not replicated yet). They end now
                # with the 503 rather than wait out their timeouts. A Redis that is only
                # slow keeps them: it still holds their events.
                if connection_lost(exc):
                    for waiter in self.waiting():
                        waiter.interrupt(StoreUnavailable(_UNREADABLE, server=exc.server))
                failures += 1
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("reply stream readable again", extra={"stream": self.stream})
                failures = 0
            self._dispatch(batch)

    async def _read_batch(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        with store_errors("the reply stream"):
            if time.monotonic() >= self._next_upkeep:
                await self._upkeep()
            found = await self._redis.xread(
                {self.stream: self._last_id}, count=_BATCH, block=_BLOCK_MS
            )
        # With decode_responses=False: [[stream, [(entry id, {field: value})...]]] or [].
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], found)
        if not streams:
            return []
        entries = streams[0][1]
        self._last_id = entries[-1][0]
        return entries

    def _dispatch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        now = time.monotonic()
        for entry_id, fields in entries:
            try:
                event = Event.from_fields(fields)
            except ProtocolError as exc:
                log.warning(
                    "dropping malformed reply", extra={"entry": entry_id, "reason": str(exc)}
                )
                continue
            waiter = self._waiters.get(event.id)
            if waiter is not None and waiter.attempt == event.attempt:
                waiter.deliver(event, now)

    async def _upkeep(self) -> None:
        """Drop what was already read and keep the stream alive (recreating it if Redis
        lost it), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xtrim(self.stream, minid=self._last_id)
        pipe.expire(self.stream, REPLY_STREAM_TTL_S)
        _, alive = await pipe.execute()
        if not alive:
            await self._create_stream()
        self._next_upkeep = time.monotonic() + _UPKEEP_INTERVAL_S

    async def _create_stream(self) -> None:
        with store_errors("the reply stream"):
            entry_id = await self._open(keys=[self.stream], args=[REPLY_STREAM_TTL_S])
        if self._last_id == b"0-0":
            self._last_id = entry_id
