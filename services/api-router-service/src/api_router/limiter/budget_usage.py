"""This month's spend of budgeted tenants, for the metrics: re-read from Redis in the
background, so that a scrape never waits on Redis.

Admission tells it which tenants have a budget (``watch``) as it admits them; every
``interval_s`` one pipeline reads each watched tenant's spend for the current month. Every
replica reads the same hashes, so dashboards take the ``max`` across replicas.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal, cast

from api_router.errors import StoreUnavailable
from api_router.limiter.limit_set import LimitSet
from api_router.redis_store import Redis, store_errors


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    month: str  # "YYYY-MM", UTC
    spent: float  # in the budget's unit: tokens, or the currency of the model prices
    limit: float
    unit: Literal["tokens", "cost"]


class BudgetUsage:
    def __init__(self, redis: Redis, interval_s: float, max_tenants: int) -> None:
        self._redis = redis
        self._interval_s = interval_s
        self._max_tenants = max_tenants
        self._watched: dict[str, LimitSet] = {}
        self.current: dict[str, BudgetSpend] = {}

    def watch(self, tenant: str, limits: LimitSet) -> None:
        """Follow ``tenant``'s budget (its latest limits); beyond ``max_tenants`` tenants,
        new ones are not followed, like the metrics' tenant label."""
        if tenant in self._watched or len(self._watched) < self._max_tenants:
            self._watched[tenant] = limits

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.refresh()
            except StoreUnavailable:
                pass  # the last readings stay; Redis errors are counted by the client

    async def refresh(self) -> None:
        watched = [(t, limits) for t, limits in self._watched.items() if limits.budget]
        if not watched:
            return
        # The local clock's month: the scripts use Redis time, which differs only for a few
        # seconds around midnight at a month's end.
        month = time.strftime("%Y-%m", time.gmtime())
        with store_errors("the budget readings"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, limits in watched:
                    pipe.hget(limits.budget_key, month)
                values = cast(list[bytes | None], await pipe.execute())
        self.current = {
            tenant: BudgetSpend(
                month,
                limits.amount_of(int(value or 0)),
                limits.budget_amount(),
                limits.budget.unit,
            )
            for (tenant, limits), value in zip(watched, values, strict=True)
            if limits.budget is not None
        }
