"""The one adapter to Redis: builds clients and translates redis-py errors into ours.

Everything outside this module catches :class:`~api_router.errors.StoreUnavailable`,
never ``redis.exceptions``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from api_router.config.settings import RedisSettings
from api_router.errors import StoreUnavailable

# The client of every mode: a standalone server or a Sentinel-managed primary (both
# ``redis.asyncio.Redis``), or a Redis Cluster.
Redis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
T = TypeVar("T")

# Connection trouble, timeouts, a server that is loading or read-only (a demoted primary
# during a failover) and a cluster that is down or moving a slot are "unavailable";
# anything else (a wrong type, a script error) is a bug and must surface as one.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    OSError,
)
# redis-py raises its generic cluster exception when no seed node answers or the nodes
# that answer do not cover every slot: unavailable too. Its other uses are bugs.
_CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")
# uvloop raises RuntimeError, not an OSError, when redis-py writes to a connection that the
# server has just closed (seen when a Sentinel-managed primary dies mid-handshake).
_CLOSED_TRANSPORT = "unable to perform operation on <TCPTransport closed=True"
# What the adapter catches to look at: `_unavailable` tells which of them mean "Redis is
# unavailable"; the rest are re-raised untouched.
_CAUGHT = (*_UNAVAILABLE, redis_errors.RedisClusterException, RuntimeError)
# redis-py's text for a connection that timed out before it was made: nothing was sent.
_CONNECT_TIMEOUT = "Timeout connecting to server"


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, RuntimeError):
        return str(exc).startswith(_CLOSED_TRANSPORT)
    return isinstance(exc, redis_errors.RedisClusterException) and str(exc).startswith(
        _CLUSTER_UNREACHABLE
    )


class RedisUnreachable(redis_errors.ConnectionError):
    """Redis did not answer a command; ``server`` is its URL (or nodes) without
    credentials, so that an operator reading the error knows which server was tried."""

    def __init__(self, server: str, cause: BaseException) -> None:
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
    """A pooled client of ``settings.mode``; connections are opened lazily on first use.

    ``bounded_s``: every command answers or fails within twice this long (connect and read
    timeouts of ``bounded_s``, one immediate retry so that a connection Redis closed, by a
    restart or a failover say, is replaced rather than failing a request), for callers that
    must decide without Redis rather than wait. ``errors``: where this client counts its
    failures.

    A command that timed out is never sent again (a lost connection, or one that timed out
    while being made, is retried): it may have run, and running a script that debits a
    bucket, or an XADD, again would do it twice.
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
            "retry": RetryUnsent(NoBackoff(), 1),
        }
    options.update(max_connections=settings.max_connections, decode_responses=False)
    client: _CountingRedis | _CountingCluster
    if settings.mode == "cluster":
        client = _cluster(settings, options)
    elif settings.mode == "sentinel":
        client = _sentinel_primary(settings, options)
    else:
        client = cast(_CountingRedis, _CountingRedis.from_url(settings.url, **options))
        client.server = shown_url(settings.url)
    client.errors = errors or StoreErrors()
    return client


def _cluster(settings: RedisSettings, options: dict[str, Any]) -> _CountingCluster:
    client = _CountingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in settings.node_addresses],
        username=settings.username,
        password=settings.password,
        ssl=settings.tls,
        **options,
    )
    client.server = f"redis cluster {settings.nodes}"
    return client


def _sentinel_primary(settings: RedisSettings, options: dict[str, Any]) -> _CountingRedis:
    """The primary named ``master_name``, looked up from the Sentinels whenever a connection
    is made: a connection to a primary that was demoted (ReadOnlyError) or died is dropped,
    and the next one goes to the primary the Sentinels name then."""
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # untyped in redis-py
        settings.node_addresses,
        sentinel_kwargs={
            "password": settings.sentinel_password,
            "ssl": settings.tls,
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
        },
    )
    client = cast(
        _CountingRedis,
        sentinel.master_for(
            settings.master_name,
            redis_class=_CountingRedis,
            username=settings.username,
            password=settings.password,
            ssl=settings.tls,
            **options,
        ),
    )
    client.sentinels = sentinel
    client.server = f"redis sentinel {settings.master_name} via {settings.nodes}"
    return client


class RetryUnsent(Retry):
    """redis-py's retry, for errors that show the command was not sent: a lost connection
    (refused, reset, closed by a restart) or a timeout while connecting. Under a burst, a
    starved event loop let connections time out while being made (138 of 200 requests
    admitted by the local fallback once timeouts were not retried at all)."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        return await super().call_with_retry(do, fail, is_retryable or _unsent, with_failure_count)


def _unsent(error: Exception) -> bool:
    return not isinstance(error, redis_errors.TimeoutError) or str(error) == _CONNECT_TIMEOUT


def shown_url(url: str) -> str:
    """``url`` without its user, password and query (which may carry a password)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))


class _CountingRedis(aioredis.Redis):
    """A client that counts the commands Redis failed to answer (after redis-py's own
    retries), where every command passes: no call site has to remember to."""

    errors: StoreErrors
    server: str
    sentinels: Sentinel | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _CAUGHT as exc:
            if not _unavailable(exc):
                raise
            self.errors.by_command[str(args[0]).upper()] += 1
            raise RedisUnreachable(self.server, exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _CountingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.errors = self.errors
        pipe.server = self.server
        return pipe

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:  # its connections to the Sentinels are ours to close
            await self.sentinels.aclose()


class _CountingPipeline(aioredis.client.Pipeline):
    errors: StoreErrors
    server: str

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except _CAUGHT as exc:
            if not _unavailable(exc):
                raise
            self.errors.by_command["MULTI" if self.is_transaction else "PIPELINE"] += 1
            raise RedisUnreachable(self.server, exc) from exc


class _CountingCluster(aioredis.RedisCluster):
    """``_CountingRedis`` for a Redis Cluster."""

    # redis-py's cluster retries by this list (exact types), not by ``retry``: its own, less
    # TimeoutError, for the reason ``connect`` gives (so a connection that timed out while
    # being made is not retried on a cluster either).
    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # typed as exactly redis-py's four
        redis_errors.ConnectionError,
        redis_errors.ClusterDownError,
        redis_errors.SlotNotCoveredError,
    )
    errors: StoreErrors
    server: str

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._initialize:
                # Learn the slot map before sending: commands that raced a first (or
                # renewed) discovery were seen going to the wrong node, and the MOVED
                # storm that followed made redis-py reset connections other commands
                # were using (lost commands; a limiter that failed open).
                await self.initialize()
            return await super().execute_command(*args, **kwargs)
        except _CAUGHT as exc:
            if not _unavailable(exc):
                raise
            self.errors.by_command[str(args[0]).upper()] += 1
            raise RedisUnreachable(self.server, exc) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if transaction or shard_hint:
            # Every multi-key write is a Lua script (one slot, atomic) or a sequence of
            # single-slot steps in a safe order; see keyspace.py.
            raise redis_errors.RedisClusterException("no MULTI on a cluster: use a script")
        pipe = _CountingClusterPipeline(self)  # type: ignore[abstract]  # set in __init__
        pipe.errors = self.errors
        pipe.server = self.server
        return pipe


class _CountingClusterPipeline(ClusterPipeline):
    errors: StoreErrors
    server: str

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _CAUGHT as exc:
            if not _unavailable(exc):
                raise
            self.errors.by_command["PIPELINE"] += 1
            raise RedisUnreachable(self.server, exc) from exc


async def learn_topology(redis: Redis) -> None:
    """Make a cluster client learn which node serves which slot, if it has not yet: its
    pub/sub picks the node to subscribe on from that map. Nothing to do in other modes."""
    if isinstance(redis, aioredis.RedisCluster) and redis._initialize:
        await redis.initialize()


async def get_many(redis: Redis, keys: Sequence[str]) -> list[bytes | None]:
    """``GET`` of each of ``keys`` in one round trip per node: unlike ``MGET``, the keys
    need not share a slot on a cluster. Not atomic (nothing that calls it needs that)."""
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        return cast(list[bytes | None], await pipe.execute())


class MissingConsumerGroup(Exception):
    """A stream's consumer group is gone (the stream was deleted, or Redis lost its data)."""


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn Redis being unreachable during ``what`` into ``StoreUnavailable``."""
    try:
        yield
    except _CAUGHT as exc:
        if not _unavailable(exc):
            raise
        server = exc.server if isinstance(exc, RedisUnreachable) else None
        raise StoreUnavailable(f"{what} is unavailable, retry shortly", server=server) from None
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise MissingConsumerGroup(str(exc)) from None
        raise


def connection_lost(error: StoreUnavailable) -> bool:
    """``error`` came from Redis refusing or dropping the connection (a server that went
    away or was demoted, a cluster that is down), not from an answer that was too slow:
    what Redis held may be gone (a failover loses what was not replicated yet), whereas a
    slow Redis still has it."""
    cause = error.__context__
    if isinstance(cause, RedisUnreachable):
        cause = cause.__cause__
    return not isinstance(cause, redis_errors.TimeoutError | TimeoutError)


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
