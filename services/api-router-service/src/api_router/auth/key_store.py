"""API key records in Redis, cached in-process, and every change made to them.

A change is a compare-and-set of the whole record (``swap_record.lua``) that also publishes
the key id on ``Keyspace.key_events``: every replica's :class:`KeyEventListener` drops its
cached copy as soon as the message arrives. The cache TTL is only the safety net: while
notices are live, a record past its TTL is still served once and read again off the
request path (refresh-ahead), so an active key never waits for Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from api_router.auth import api_keys
from api_router.auth.key_record import (
    MAX_SIGNING_SECRETS,
    SCOPES,
    AuthMode,
    IssuedKey,
    KeyEntry,
    KeyRecord,
    Scope,
    ShownSecret,
    SigningSecret,
    Tenant,
    bound_to,
)
from api_router.auth.secret_box import SealedSecretError, SecretBox
from api_router.errors import ApiError, StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, get_many, lua_script, store_errors
from api_router.task_cancellation import stop_task

__all__ = ["SCOPES", "IssuedKey", "KeyRecord", "KeyStore", "Scope", "Tenant"]

log = logging.getLogger(__name__)

# Bounds the cache of misses, so random key ids cannot grow it without limit.
_MAX_CACHED = 100_000
# While change notices may be missed (no live subscription), nothing is cached longer.
_UNSUBSCRIBED_TTL_S = 1.0
_SWAP_ATTEMPTS = 5

_decoder = msgspec.json.Decoder(KeyRecord)
Change = Callable[[KeyRecord], KeyRecord]


class KeyStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        pepper: str,
        cache_ttl_s: float,
        box: SecretBox,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.pepper = pepper.encode()
        self._box = box
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyEntry | None]] = {}
        # The last record read of each key, kept through blanket invalidations: what the
        # gateway serves by while Redis cannot be read (local-only mode).
        # With the time each was read (for the last-known-good cache's age).
        self._verified: dict[str, tuple[float, KeyEntry | None]] = {}
        # Bumped by every invalidation: a lookup that raced one does not cache what it read.
        self._generation = 0
        self.subscribed = False
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._swap = redis.register_script(lua_script(__package__, "swap_record"))

    # -- the hot path -----------------------------------------------------------------

    async def lookup(self, key_id: str) -> KeyEntry | None:
        """The record of ``key_id`` with its signing keys opened, from the cache while fresh."""
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None:
            expires, entry = cached
            if expires > now:
                return entry
            if self.subscribed and now < expires + self._cache_ttl_s:
                # No change notice dropped it, so it is still what Redis holds (a lost
                # subscription clears the cache): serve it, and read it again off the path.
                self._refresh(key_id)
                return entry
        return await self._load(key_id)

    async def _load(self, key_id: str) -> KeyEntry | None:
        """Read ``key_id`` from Redis and cache it (unless an invalidation raced the read)."""
        now, generation = self._clock(), self._generation
        try:
            record = await self.read(key_id)
        except StoreUnavailable:
            if key_id not in self._verified:
                raise
            # Local-only mode: Redis is away, so nobody can change the key there either;
            # its last verified record serves until Redis answers again.
            return self._verified[key_id][1]
        entry = None if record is None else KeyEntry(record, self._open_secrets(record))
        if generation == self._generation:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
                self._verified.clear()
            self._verified[key_id] = (time.time(), entry)
            ttl = (
                self._cache_ttl_s
                if self.subscribed
                else min(self._cache_ttl_s, _UNSUBSCRIBED_TTL_S)
            )
            self._cache[key_id] = (now + ttl, entry)
        return entry

    def _refresh(self, key_id: str) -> None:
        """Re-read ``key_id`` in the background, once at a time per key."""
        if key_id in self._refreshing:
            return
        task = asyncio.create_task(self._refresh_one(key_id), name="key_refresh")
        self._refreshing[key_id] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key_id, None))

    async def _refresh_one(self, key_id: str) -> None:
        try:
            await self._load(key_id)
        except StoreUnavailable:
            # The stale record stays until its grace ends; the next lookup tries again.
            log.info("key record not refreshed; Redis unavailable", extra={"key_id": key_id})

    async def aclose(self) -> None:
        """Stop the refreshes in flight (before the Redis client closes)."""
        await asyncio.gather(*map(stop_task, list(self._refreshing.values())))

    def verified(self) -> list[tuple[float, KeyRecord]]:
        """The records read from Redis and still believed, each with when it was read."""
        return [(at, entry.record) for at, entry in self._verified.values() if entry is not None]

    def restore(self, records: Iterable[tuple[float, KeyRecord]]) -> None:
        """Records from the last-known-good cache: served only while Redis is away (a
        read that succeeds replaces them)."""
        for at, record in records:
            self._verified[record.id] = (at, KeyEntry(record, self._open_secrets(record)))

    async def get(self, key_id: str) -> KeyRecord | None:
        entry = await self.lookup(key_id)
        return None if entry is None else entry.record

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget ``key_id`` (or, with ``None``, everything: notices may have been missed)."""
        self._generation += 1
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)
            self._verified.pop(key_id, None)

    # -- reads for the admin API ------------------------------------------------------

    async def read(self, key_id: str) -> KeyRecord | None:
        with store_errors("the key store"):
            blob = await self._redis.get(self._keys.api_key(key_id))
        return None if blob is None else _decoder.decode(blob)

    async def of_tenant(self, tenant: str) -> list[KeyRecord]:
        with store_errors("the key store"):
            ids = sorted(await self._redis.smembers(self._keys.tenant_keys(tenant)))
            blobs = await get_many(self._redis, [self._keys.api_key(_text(i)) for i in ids])
        # An id whose record is missing, or is another tenant's, was left by a `create` that
        # stopped (or collided) after listing it: not this tenant's key.
        records = (_decoder.decode(b) for b in blobs if b is not None)
        return sorted((r for r in records if r.tenant == tenant), key=lambda r: r.created_at)

    async def tenants(self) -> dict[str, int]:
        """Every tenant that has had a key, with its number of keys (revoked ones too)."""
        with store_errors("the key store"):
            names = sorted(_text(t) for t in await self._redis.smembers(self._keys.tenants))
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant in names:
                    pipe.scard(self._keys.tenant_keys(tenant))
                counts: list[int] = await pipe.execute()
        return dict(zip(names, counts, strict=True))

    async def last_used(self, key_ids: list[str]) -> dict[str, float]:
        if not key_ids:
            return {}
        with store_errors("the key store"):
            values = await self._redis.hmget(self._keys.key_last_used, key_ids)
        return {k: float(v) for k, v in zip(key_ids, values, strict=True) if v is not None}

    # -- changes ----------------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        scopes: Iterable[Scope],
        name: str = "",
        expires_at: float | None = None,
        auth: AuthMode = "signature_or_key",
    ) -> IssuedKey:
        key_id = api_keys.new_key_id()
        secret = api_keys.new_secret()
        shown = self._new_signing_secret(key_id)
        record = msgspec.convert(
            {
                "id": key_id,
                "tenant": tenant,
                "name": name,
                "scopes": sorted(set(scopes)),
                "created_at": time.time(),
                "expires_at": expires_at,
                "secret_hash": api_keys.hash_secret(self.pepper, secret),
                "signing_secrets": [_builtins(shown[0])],
                "auth": auth,
            },
            KeyRecord,
        )
        # Three keys in three slots (a cluster cannot write them in one step), so listed
        # first, written last: a create that stops half-way leaves at most a listed id
        # with no record, which listings skip, never a live key that no listing shows.
        with store_errors("the key store"):
            await self._redis.sadd(self._keys.tenants, tenant)
            await self._redis.sadd(self._keys.tenant_keys(tenant), record.id)
            created = await self._redis.set(
                self._keys.api_key(record.id), msgspec.json.encode(record), nx=True
            )
            # A replica may hold a cached miss for this id: drop it.
            await self._redis.publish(self._keys.key_events, record.id)
        if not created:  # a 60-bit id collided; astronomically rare, so just try again
            return await self.create(tenant, scopes, name, expires_at, auth)
        return IssuedKey(record, api_keys.format_key(record.id, secret), (shown[1],))

    async def revoke(self, key_id: str) -> KeyRecord:
        def revoked(record: KeyRecord) -> KeyRecord:
            if record.status == "revoked":
                return record
            return msgspec.structs.replace(record, status="revoked", revoked_at=time.time())

        return await self._change(key_id, revoked)

    async def add_signing_secret(self, key_id: str) -> tuple[KeyRecord, ShownSecret]:
        sealed, shown = self._new_signing_secret(key_id)

        def added(record: KeyRecord) -> KeyRecord:
            if record.status != "active":
                raise ApiError("conflict", f"key {key_id} is revoked; create a new key")
            if len(record.signing_secrets) >= MAX_SIGNING_SECRETS:
                raise ApiError(
                    "conflict",
                    f"key {key_id} already has {MAX_SIGNING_SECRETS} signing secrets; "
                    "delete the one no longer in use first",
                )
            return msgspec.structs.replace(
                record, signing_secrets=(*record.signing_secrets, sealed)
            )

        return await self._change(key_id, added), shown

    async def remove_signing_secret(self, key_id: str, secret_id: str) -> KeyRecord:
        def removed(record: KeyRecord) -> KeyRecord:
            kept = tuple(s for s in record.signing_secrets if s.id != secret_id)
            if len(kept) == len(record.signing_secrets):
                raise ApiError("not_found", f"key {key_id} has no signing secret {secret_id}")
            return msgspec.structs.replace(record, signing_secrets=kept)

        return await self._change(key_id, removed)

    async def _change(self, key_id: str, change: Change) -> KeyRecord:
        key = self._keys.api_key(key_id)
        for _ in range(_SWAP_ATTEMPTS):
            with store_errors("the key store"):
                blob = await self._redis.get(key)
            if blob is None:
                raise ApiError("not_found", f"no key {key_id}")
            new = change(_decoder.decode(blob))
            encoded = msgspec.json.encode(new)
            with store_errors("the key store"):
                swapped = await self._swap(
                    keys=[key], args=[blob, encoded, self._keys.key_events, key_id]
                )
            if swapped:
                self.invalidate(key_id)
                return new
        raise ApiError("conflict", f"key {key_id} is being changed concurrently; retry")

    def _new_signing_secret(self, key_id: str) -> tuple[SigningSecret, ShownSecret]:
        secret_id = api_keys.new_signing_secret_id()
        secret = api_keys.new_signing_secret()
        created_at = time.time()
        sealed = self._box.seal(secret, bound_to(key_id, secret_id))
        return SigningSecret(id=secret_id, sealed=sealed, created_at=created_at), ShownSecret(
            secret_id, secret, created_at
        )

    def _open_secrets(self, record: KeyRecord) -> tuple[bytes, ...]:
        try:
            return tuple(
                self._box.open(s.sealed, bound_to(record.id, s.id)) for s in record.signing_secrets
            )
        except SealedSecretError:
            # A KEK that is not the one the secrets were sealed under (or a tampered record):
            # the key's signatures cannot verify, its bearer use is unaffected.
            log.error("signing secrets do not open under this KEK", extra={"key_id": record.id})
            return ()


def _builtins(secret: SigningSecret) -> dict[str, Any]:
    return {"id": secret.id, "sealed": secret.sealed, "created_at": secret.created_at}


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member
