"""Fixtures of the integration tests that more than one module shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.fleet import Fleet, start_fleet
from tests.support.servers import RedisServer, TansuBroker


@pytest.fixture(scope="module")
def fleet(
    redis_server: RedisServer,
    broker: TansuBroker,
    fake_ollama_server: FakeOllama,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """One fleet per test module that asks for it (see tests/support/fleet.py)."""
    yield from start_fleet(
        redis_server, broker, fake_ollama_server, tmp_path_factory.mktemp("fleet")
    )
