"""Admission against a real Redis, without an app: policies written to a file, and the
Admission stage built the way the lifespan builds it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from api_router.chat import ChatMessage, Usage
from api_router.config.settings import RedisSettings
from api_router.errors import ApiError
from api_router.keyspace import Keyspace
from api_router.limiter.admission import Admission, AdmissionRequest, Grant
from api_router.limiter.decision import LimitDecision
from api_router.limiter.policy_source import PolicySource
from api_router.redis_store import connect

_ids = itertools.count(1)


def write_policies(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


# Plenty of room, so limits never interfere with what is tested.
OPEN_PLAN: dict[str, Any] = {"plans": {"default": {"requests_per_second": 1000, "burst": 1000}}}


def routes(tmp: Path, *tiers: dict[str, float], **plan: Any) -> dict[str, Any]:
    """Gateway ``limits`` settings with a policies file whose `*` routes are ``tiers`` and
    whose default plan has room (and ``plan``'s limits, if given)."""
    default = {**OPEN_PLAN["plans"]["default"], **plan}
    tree = {"plans": {"default": default}, "models": {"*": {"routes": list(tiers)}}}
    return {"policies_file": str(write_policies(tmp / "policies.yaml", tree))}


def one_plan(**plan: Any) -> dict[str, Any]:
    """Policies where tenant ``acme`` has the given plan."""
    return {"plans": {"p": plan}, "tenants": {"acme": {"plan": "p"}}}


def request(
    tenant: str = "acme",
    key_id: str = "key1",
    model: str = "m",
    prompt_tokens: int = 0,
    max_tokens: int | None = 1,
) -> AdmissionRequest:
    return AdmissionRequest(f"req_{next(_ids)}", tenant, key_id, model, prompt_tokens, max_tokens)


def usage(prompt: int, completion: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


@dataclass
class Limiter:
    admission: Admission
    policies: PolicySource
    keys: Keyspace
    decisions: list[LimitDecision] = field(default_factory=list)

    async def acquire(self, req: AdmissionRequest | None = None) -> Grant:
        return await self.admission.acquire(req or request(), self.decisions.append)

    async def try_acquire(self, req: AdmissionRequest | None = None) -> Grant | ApiError:
        try:
            return await self.acquire(req)
        except ApiError as exc:
            return exc


@asynccontextmanager
async def limiter(
    redis_url: str,
    prefix: str,
    policies_file: Path,
    lease_ms: int = 60_000,
    store_timeout_s: float = 0.25,
    reload_interval_s: float = 0.05,
) -> AsyncIterator[Limiter]:
    settings = RedisSettings(url=redis_url, key_prefix=prefix)
    keys = Keyspace(prefix)
    bounded = connect(settings, bounded_s=store_timeout_s)
    plain = connect(settings)
    try:
        source = PolicySource(keys, str(policies_file), reload_interval_s)
        admission = Admission(bounded, plain, keys, source, lease_ms)
        yield Limiter(admission, source, keys)
        await admission.aclose()
    finally:
        await bounded.aclose()
        await plain.aclose()


def messages(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]
