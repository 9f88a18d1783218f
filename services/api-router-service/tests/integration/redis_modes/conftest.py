"""A real Redis Cluster (per session) and a real Sentinel setup (per test: tests kill its
primary), with the stacks built on them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.redis_topologies import RedisClusterNodes, SentinelRedis
from tests.support.servers import TansuBroker
from tests.support.stack import Stack

_stacks = itertools.count(1)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    cluster = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_stack(
    redis_cluster: RedisClusterNodes, broker: TansuBroker, fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[Stack[RedisClusterNodes]]:
    """A stack whose gateways, workers and CLI use the cluster (flushed, own key prefix)."""
    redis_cluster.flush()
    stack = Stack(redis_cluster, broker, f"c{next(_stacks)}", tmp_path, fake_ollama.url)
    yield stack
    stack.stop_all()


@pytest.fixture
def sentinel_stack(
    broker: TansuBroker, fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[Stack[SentinelRedis]]:
    """A stack on a primary, its replica and three Sentinels of this test's own."""
    redis = SentinelRedis(tmp_path / "sentinel").start()
    stack = Stack(redis, broker, f"s{next(_stacks)}", tmp_path, fake_ollama.url)
    yield stack
    stack.stop_all()
    redis.stop()
