"""A tenant's month as the limiter counted it: the budget's spend and, per model, the
requests, tokens and cost that settlement charged (``keyspace.budget`` lays out the hash).

These are the counters admission enforces the budget on, read as they are: what
``GET /v1/usage`` and the admins' tenant routes report is what the next request is
checked against.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors

MONTH_PATTERN: Final = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cost")


@dataclass(slots=True)
class ModelMonth:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_units: int = 0  # millionths of the currency

    def add(self, counter: str, value: int) -> None:
        if counter == "cost":
            self.cost_units += value
        elif counter in _COUNTERS:
            setattr(self, counter, getattr(self, counter) + value)


@dataclass(frozen=True, slots=True)
class TenantMonth:
    month: str
    # The budget's spend: tokens, or millionths of the currency (in-flight reservations in).
    budget_units: int = 0
    models: dict[str, ModelMonth] = field(default_factory=dict)

    def total(self) -> ModelMonth:
        whole = ModelMonth()
        for model in self.models.values():
            whole.requests += model.requests
            whole.prompt_tokens += model.prompt_tokens
            whole.completion_tokens += model.completion_tokens
            whole.cost_units += model.cost_units
        return whole


def current_month() -> str:
    """This calendar month, UTC (the scripts use Redis time: the same but within seconds
    of midnight at a month's end)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


def is_month(text: str) -> bool:
    return re.fullmatch(MONTH_PATTERN, text) is not None


class MonthUsage:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def read(self, tenants: Sequence[str], month: str) -> list[TenantMonth]:
        """Each tenant's ``month`` ("YYYY-MM"), in the order asked; one pipeline."""
        with store_errors("the usage counters"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.hgetall(self._keys.budget(tenant))
                hashes: list[dict[bytes, bytes]] = await pipe.execute()
        return [_month_of(fields, month) for fields in hashes]


def _month_of(fields: dict[bytes, bytes], month: str) -> TenantMonth:
    budget = 0
    models: dict[str, ModelMonth] = {}
    prefix = month + ":"
    for raw_name, raw_value in fields.items():
        name, value = raw_name.decode(), int(raw_value)
        if name == month:
            budget = value
        elif name.startswith(prefix):
            # "<month>:<model>:<counter>": a model name may itself hold colons.
            model, _, counter = name[len(prefix) :].rpartition(":")
            models.setdefault(model, ModelMonth()).add(counter, value)
    return TenantMonth(month, budget, dict(sorted(models.items())))
