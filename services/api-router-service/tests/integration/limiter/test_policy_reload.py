"""The policies file reloads while admission runs: the next request sees the new limits; a
broken file is refused and the old policies stay."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from api_router.errors import ApiError
from api_router.limiter.admission import Grant
from tests.support.limits import limiter, one_plan, request, write_policies
from tests.support.servers import eventually
from tests.support.stack import Stack


async def test_a_changed_file_changes_the_limits_of_the_next_request(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=0.001, burst=1))
    async with limiter(stack.redis.url, stack.prefix, path) as lim:
        watcher = asyncio.create_task(lim.policies.run())
        try:
            await lim.acquire()
            assert isinstance(await lim.try_acquire(), ApiError)
            write_policies(path, one_plan(requests_per_second=1000, burst=1000))
            os.utime(path, ns=(1, 1))  # a new stamp even within the file system's resolution
            await eventually(
                lambda: (
                    lim.policies.policies is not None
                    and lim.policies.policies.plans["p"].burst == 1000
                ),
                what="the reload",
            )
            assert isinstance(await lim.try_acquire(), Grant)
        finally:
            watcher.cancel()


async def test_an_invalid_file_is_rejected_and_the_old_policies_stay(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=0.001, burst=1))
    async with limiter(stack.redis.url, stack.prefix, path) as lim:
        await lim.acquire()
        tree = one_plan(requests_per_second=1000, burst=1000)
        tree["tenants"]["acme"]["plan"] = "missing"
        write_policies(path, tree)
        with caplog.at_level(logging.ERROR):
            assert lim.policies.reload() is False
        denied = await lim.try_acquire()
    assert isinstance(denied, ApiError) and denied.code == "rate_limited"
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert record.__dict__["error_path"] == "tenants.acme.plan"


async def test_a_reload_request_reloads_at_once(stack: Stack, tmp_path: Path) -> None:
    path = write_policies(tmp_path / "p.yaml", one_plan(max_concurrent=1))
    # The file is not watched in this test (an hour between looks): only the request counts.
    async with limiter(stack.redis.url, stack.prefix, path, reload_interval_s=3600) as lim:
        await lim.acquire(request())
        write_policies(path, one_plan(max_concurrent=2))
        lim.policies.request_reload()  # what SIGHUP does
        watcher = asyncio.create_task(lim.policies.run())
        try:
            await eventually(
                lambda: (
                    lim.policies.policies is not None
                    and lim.policies.policies.plans["p"].max_concurrent == 2
                ),
                what="the reload",
            )
        finally:
            watcher.cancel()
        assert isinstance(await lim.try_acquire(request()), Grant)
