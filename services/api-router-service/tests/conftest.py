"""Session-wide real servers and the per-test stack built on them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.servers import PostgresServer, RedisServer, TansuBroker
from tests.support.stack import Stack

_test_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    server = TansuBroker().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_ollama_server() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def fake_ollama(fake_ollama_server: FakeOllama) -> FakeOllama:
    """The session's fake Ollama, reset to its defaults for this test."""
    fake_ollama_server.reset()
    return fake_ollama_server


@pytest.fixture
def second_ollama() -> Iterator[FakeOllama]:
    """A fake Ollama of this test's own (for a node whose backend misbehaves)."""
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_stack(
    tmp_path: Path, fake_ollama: FakeOllama, broker: TansuBroker
) -> Iterator[Stack]:
    """A stack on a redis-server of its own, which the test may stop, restart or freeze."""
    redis = RedisServer(tmp_path / "redis").start()
    test_stack = Stack(redis, broker, f"own{next(_test_numbers)}", tmp_path, fake_ollama.url)
    yield test_stack
    test_stack.stop_all()
    redis.resume()  # a frozen server would not stop
    redis.stop()


@pytest.fixture
def stack(
    redis_server: RedisServer, broker: TansuBroker, fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[Stack]:
    """A clean Redis (own key prefix, flushed), an own usage topic and a place for this
    test's processes."""
    with redis_server.client() as client:
        client.flushall()
    number = next(_test_numbers)
    test_stack = Stack(redis_server, broker, f"t{number}", tmp_path, fake_ollama.url)
    yield test_stack
    test_stack.stop_all()


@pytest.fixture
def audited_stack(stack: Stack, postgres: PostgresServer) -> Stack:
    """``stack`` with an audit database of its own (the audit API reads it; start the sink
    with ``stack.audit_sink()``)."""
    stack.database_url = postgres.database(f"audit_{stack.prefix}")
    return stack
