"""The key cache past its TTL: refreshed off the request path while change notices are
live, read on the path when they are not (or when the record has sat unused too long)."""

from __future__ import annotations

import asyncio
import base64

import msgspec

from api_router.auth.key_events import KeyEventListener
from api_router.auth.key_record import KeyRecord
from api_router.auth.key_store import KeyStore
from api_router.auth.secret_box import SecretBox
from api_router.redis_store import connect
from api_router.task_cancellation import stop_task
from tests.support.servers import eventually
from tests.support.stack import KEK, PEPPER, Stack

TTL_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def renamed_behind_the_cache(stack: Stack, key_id: str, name: str) -> None:
    """Change the record in Redis without a change notice (the TTL's case)."""
    with stack.redis.client() as client:
        stored = stack.keys.api_key(key_id)
        record = msgspec.json.decode(client.get(stored), type=KeyRecord)
        client.set(stored, msgspec.json.encode(msgspec.structs.replace(record, name=name)))


async def name_of(store: KeyStore, key_id: str) -> str:
    entry = await store.lookup(key_id)
    assert entry is not None
    return entry.record.name


async def test_a_stale_record_is_served_once_and_read_again_off_the_path(stack: Stack) -> None:
    key_id = (await stack.issue_key()).record.id
    clock = Clock()
    redis = connect(stack.settings().redis)
    store = KeyStore(redis, stack.keys, PEPPER, TTL_S, SecretBox(base64.b64decode(KEK)), clock)
    listener = asyncio.create_task(KeyEventListener(redis, stack.keys.key_events, store).run())
    try:
        await eventually(lambda: store.subscribed, what="change notices subscribed")
        assert await name_of(store, key_id) == "test"
        renamed_behind_the_cache(stack, key_id, "renamed")

        clock.now += TTL_S + 1  # past its TTL: served as cached, re-read in the background
        assert await name_of(store, key_id) == "test"

        names = [await name_of(store, key_id)]
        while names[-1] == "test" and len(names) < 500:  # the refresh is one round trip
            await asyncio.sleep(0.01)
            names.append(await name_of(store, key_id))
        assert names[-1] == "renamed", "the stale record was not read again"

        # Unused for a TTL past its expiry: too old to serve, read on the path.
        renamed_behind_the_cache(stack, key_id, "renamed again")
        clock.now += 2 * TTL_S + 1
        assert await name_of(store, key_id) == "renamed again"

        # Without live notices nothing stale is served.
        await stop_task(listener)
        assert not store.subscribed
        assert await name_of(store, key_id) == "renamed again"
        renamed_behind_the_cache(stack, key_id, "unsubscribed")
        clock.now += 1.5  # past the 1 s an unsubscribed store caches for
        assert await name_of(store, key_id) == "unsubscribed"
    finally:
        await stop_task(listener)
        await store.aclose()
        await redis.aclose()
