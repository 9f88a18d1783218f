"""Claims on Idempotency-Keys in Redis: the first request with a key claims it; a retry
finds it running, finds its stored answer, or finds it used for another request.

Both scripts touch one key, so the claim is atomic on a replica set and on Cluster alike.
A running claim expires with its request (deadline plus a grace), so a gateway that dies
mid-request never holds a key for longer; only the claim's owner stores or releases.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from api_router.errors import StoreUnavailable
from api_router.idempotency.request_key import RequestKey
from api_router.idempotency.stored_answer import StoredAnswer, decode_answer, encode_answer
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, lua_script, store_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request holds the key: it runs, then :meth:`KeyClaims.store` or
    :meth:`KeyClaims.release` ends the claim."""

    key: RequestKey
    owner: str


@dataclass(frozen=True, slots=True)
class Running:
    request_id: str  # of the request that holds the key
    left_s: float  # until its claim expires


@dataclass(frozen=True, slots=True)
class Done:
    answer: StoredAnswer


Mismatch = Literal["mismatch"]
ClaimResult = Claimed | Running | Done | Mismatch


class KeyClaims:
    def __init__(self, redis: Redis, keys: Keyspace, retention_s: int, lease_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_ms = retention_s * 1000
        self._lease_ms = int(lease_s * 1000)
        self._claim = redis.register_script(lua_script(__package__, "claim"))
        self._settle = redis.register_script(lua_script(__package__, "settle"))

    async def claim(self, key: RequestKey, request_id: str) -> ClaimResult:
        """Claim ``key`` for ``request_id``, or what holds it. Raises ``StoreUnavailable``:
        without Redis no request with a key runs (it could run twice)."""
        owner = secrets.token_hex(16)
        name = self._keys.idempotency(key.scope)
        with store_errors("the idempotency store"):
            reply = await self._claim(
                keys=[name], args=[key.fingerprint, owner, request_id, self._lease_ms]
            )
        state = reply[0]
        if state == b"claimed":
            return Claimed(key, owner)
        if state == b"mismatch":
            return "mismatch"
        if state == b"running":
            return Running(reply[1].decode(), max(int(reply[2]), 0) / 1000)
        return Done(decode_answer(reply[1]))

    async def store(self, claim: Claimed, answer: StoredAnswer) -> None:
        """Keep ``answer`` for the retention. A failure is logged, not raised: the answer
        still goes to the client, and the key frees itself when the claim expires."""
        await self._end(claim, encode_answer(answer))

    async def release(self, claim: Claimed) -> None:
        """Free the key: the request ended in an answer worth retrying (or none)."""
        await self._end(claim, b"")

    async def _end(self, claim: Claimed, value: bytes) -> None:
        name = self._keys.idempotency(claim.key.scope)
        args: list[str | bytes | int] = [
            claim.key.fingerprint,
            claim.owner,
            value,
            self._retention_ms,
        ]
        try:
            with store_errors("the idempotency store"):
                ended = await self._settle(keys=[name], args=args)
        except StoreUnavailable as exc:
            log.warning("idempotency key left to expire", extra={"reason": exc.for_operators})
            return
        if not ended:
            log.warning("idempotency claim expired before its request ended")
