"""The bounded client's retry: what cannot have reached Redis is sent again, a command that
timed out is not (Redis may have run it)."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff

from api_router.redis_store import RetryUnsent


async def _calls_until_done(error: Exception) -> tuple[int, BaseException | None]:
    calls = 0

    async def do() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return "done"

    async def fail(_: Exception) -> None:
        return None

    try:
        await RetryUnsent(NoBackoff(), 1).call_with_retry(do, fail)
    except redis_errors.RedisError as raised:
        return calls, raised
    return calls, None


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.TimeoutError("Timeout connecting to server"),
        redis_errors.ConnectionError("Connection refused"),
    ],
)
async def test_what_was_not_sent_is_sent_again(error: Exception) -> None:
    assert await _calls_until_done(error) == (2, None)


async def test_a_command_that_timed_out_is_not_sent_again() -> None:
    error = redis_errors.TimeoutError("Timeout reading from 127.0.0.1:6379")
    assert await _calls_until_done(error) == (1, error)
