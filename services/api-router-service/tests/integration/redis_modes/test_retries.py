"""A command that timed out is not sent again: Redis may have run it, and a script that
debits a bucket must not debit it twice. Seen as a request refused 429 with exactly its own
reservation taken twice, when admission's answer came after the bounded client's timeout."""

from __future__ import annotations

import asyncio

import pytest

from api_router.config.settings import RedisSettings
from api_router.redis_store import RedisUnreachable, connect
from tests.support.redis_topologies import RedisClusterNodes
from tests.support.servers import RedisServer

# Busy for ARGV[1] microseconds, then counts one run.
_SLOW_INCR = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1])
return redis.call('INCR', KEYS[1])
"""


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
@pytest.mark.parametrize("bounded_s", [0.1, None])
async def test_a_script_that_timed_out_runs_once(
    mode: str, bounded_s: float | None, request: pytest.FixtureRequest
) -> None:
    server: RedisServer | RedisClusterNodes = request.getfixturevalue(
        "redis_server" if mode == "standalone" else "redis_cluster"
    )
    settings = RedisSettings(**server.settings, socket_timeout_s=1.1)
    client = connect(settings, bounded_s=bounded_s)
    key = f"api-router:test:runs:{mode}:{bounded_s}"
    try:
        await client.delete(key)
        timeout_s = bounded_s or 1.1
        # Longer than the client waits, short enough that a reconnection's handshake, which
        # waits for the script too, is answered in time and a retry would be sent.
        busy_us = int(timeout_s * 1.5 * 1_000_000)
        with pytest.raises(RedisUnreachable):
            await client.eval(_SLOW_INCR, 1, key, busy_us)
        await asyncio.sleep(timeout_s * 2 + 0.5)  # a second run would have ended by now
        assert await client.get(key) == b"1"
    finally:
        await client.aclose()
