"""Revocation reaches another gateway process within 1 s although it caches key records."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.signing import SigningKey, sign
from tests.support.stack import Stack


async def test_a_revocation_is_seen_by_a_second_gateway_process_within_1_s(stack: Stack) -> None:
    # A cache TTL of 60 s: only the change notice can make the second replica notice.
    cached = {"auth": {"key_cache_ttl_s": 60}}
    first = stack.gateway_process("gateway-1", check="healthz", **cached)
    second = stack.gateway_process("gateway-2", check="healthz", **cached)
    admin = SigningKey.of(await stack.issue_key(tenant="ops", scopes=("admin",)))
    key = SigningKey.of(await stack.issue_key())
    async with httpx.AsyncClient() as client:

        async def models_status() -> int:
            headers = sign(key, "GET", "/v1/models")
            headers["host"] = "gateway"  # the authority is not covered; keep it stable
            return (await client.get(f"{second.url}/v1/models", headers=headers)).status_code

        assert await models_status() == 200  # the second replica now caches the key
        path = f"/v1/admin/keys/{key.key_id}/revoke"
        revoked = await client.post(first.url + path, headers=sign(admin, "POST", path))
        assert revoked.status_code == 200, revoked.text
        seen_at = time.monotonic() + 1.0
        statuses = []
        while time.monotonic() < seen_at:
            statuses.append(await models_status())
            if statuses[-1] == 401:
                break
            await asyncio.sleep(0.02)
    assert statuses[-1] == 401, f"still accepted 1 s after revocation: {statuses}"
