"""API key records in Redis, cached in-process for ``auth.key_cache_ttl_s``.

A record carries what every later check needs (tenant, scopes, status, expiry) and room to
grow: signing secrets and rotation add fields, not a new store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from api_router.auth import api_keys
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors

Scope = Literal["inference", "audit:read", "admin"]
SCOPES: tuple[Scope, ...] = ("inference", "audit:read", "admin")
Tenant = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]

# Bounds the cache of misses, so random key ids cannot grow it without limit.
_MAX_CACHED = 100_000


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: Tenant
    name: str
    scopes: tuple[Scope, ...]
    status: Literal["active", "revoked"] = "active"
    created_at: float
    expires_at: float | None = None
    secret_hash: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key; ``api_key`` is shown once and never stored."""

    record: KeyRecord
    api_key: str


_decoder = msgspec.json.Decoder(KeyRecord)


class KeyStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        pepper: str,
        cache_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.pepper = pepper.encode()
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def create(
        self,
        tenant: str,
        scopes: Iterable[Scope],
        name: str = "",
        expires_at: float | None = None,
    ) -> IssuedKey:
        secret = api_keys.new_secret()
        record = msgspec.convert(
            {
                "id": api_keys.new_key_id(),
                "tenant": tenant,
                "name": name,
                "scopes": sorted(set(scopes)),
                "created_at": time.time(),
                "expires_at": expires_at,
                "secret_hash": api_keys.hash_secret(self.pepper, secret),
            },
            KeyRecord,
        )
        with store_errors("the key store"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._keys.api_key(record.id), msgspec.json.encode(record), nx=True)
            pipe.sadd(self._keys.tenant_keys(tenant), record.id)
            created, _ = await pipe.execute()
        if not created:  # a 60-bit id collided; astronomically rare, so just try again
            return await self.create(tenant, scopes, name, expires_at)
        return IssuedKey(record, api_keys.format_key(record.id, secret))

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id`` (or ``None``), from the cache while it is fresh."""
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        with store_errors("the key store"):
            blob = await self._redis.get(self._keys.api_key(key_id))
        record = _decoder.decode(blob) if blob is not None else None
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key_id] = (now + self._cache_ttl_s, record)
        return record
