"""The one adapter to Redis: builds clients and translates redis-py errors into ours.

Everything outside this module catches :class:`~api_router.errors.StoreUnavailable`,
never ``redis.exceptions``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api_router.config.settings import RedisSettings
from api_router.errors import StoreUnavailable

Redis = aioredis.Redis

# Connection trouble, timeouts and a server that is loading or read-only are "unavailable";
# anything else (a wrong type, a script error) is a bug and must surface as one.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    OSError,
)


class RedisUnreachable(redis_errors.ConnectionError):
    """Redis did not answer a command; ``server`` is its URL without credentials, so that
    an operator reading the error knows which server was tried."""

    def __init__(self, server: str, cause: Exception) -> None:
        super().__init__(f"{server}: {cause}")
        self.server = server


class StoreErrors:
    """Commands (and pipelines) that failed because Redis was unavailable, by command name:
    what the ``redis_errors`` metric reads. One per process, shared by its clients."""

    def __init__(self) -> None:
        self.by_command: Counter[str] = Counter()


def connect(
    settings: RedisSettings, *, bounded_s: float | None = None, errors: StoreErrors | None = None
) -> Redis:
    """A pooled client; connections are opened lazily on first use.

    ``bounded_s``: every command answers or fails within twice this long (connect and read
    timeouts of ``bounded_s``, one immediate retry so that a connection Redis closed, by a
    restart say, is replaced rather than failing a request), for callers that must decide
    without Redis rather than wait. ``errors``: where this client counts its failures.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.connect_timeout_s,
        "health_check_interval": 30,
    }
    if bounded_s is not None:
        options = {
            "socket_timeout": bounded_s,
            "socket_connect_timeout": min(bounded_s, settings.connect_timeout_s),
            "retry": Retry(NoBackoff(), 1),
        }
    client = cast(
        _CountingRedis,
        _CountingRedis.from_url(
            settings.url,
            max_connections=settings.max_connections,
            decode_responses=False,
            **options,
        ),
    )
    client.errors = errors or StoreErrors()
    client.server = shown_url(settings.url)
    return client


def shown_url(url: str) -> str:
    """``url`` without its user, password and query (which may carry a password)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))


class _CountingRedis(aioredis.Redis):
    """A client that counts the commands Redis failed to answer (after redis-py's own
    retries), where every command passes: no call site has to remember to."""

    errors: StoreErrors
    server: str

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _UNAVAILABLE as exc:
            self.errors.by_command[str(args[0]).upper()] += 1
            raise RedisUnreachable(self.server, exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _CountingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.errors = self.errors
        pipe.server = self.server
        return pipe


class _CountingPipeline(aioredis.client.Pipeline):
    errors: StoreErrors
    server: str

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except _UNAVAILABLE as exc:
            self.errors.by_command["MULTI" if self.is_transaction else "PIPELINE"] += 1
            raise RedisUnreachable(self.server, exc) from exc


class MissingConsumerGroup(Exception):
    """A stream's consumer group is gone (the stream was deleted, or Redis lost its data)."""


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn Redis being unreachable during ``what`` into ``StoreUnavailable``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        server = exc.server if isinstance(exc, RedisUnreachable) else None
        raise StoreUnavailable(f"{what} is unavailable, retry shortly", server=server) from None
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise MissingConsumerGroup(str(exc)) from None
        raise


def lua_script(package: str, name: str) -> str:
    """The text of the Lua script ``<name>.lua`` kept beside the modules of ``package``."""
    return resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")


async def ensure_consumer_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists. The group starts
    at id 0 so that jobs added before the first worker started are still delivered."""
    try:
        with store_errors("the job stream"):
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
