"""What verifying a signed request costs, beside the bearer-key check it replaces.

A real redis-server on loopback holds the key; every case runs with the key record already
in the in-process cache (the steady state: a miss costs one GET per key per cache TTL).
Cases, each timed per call (µs):

- ``bearer_check``: ``Authenticator.authenticate`` with ``Authorization: Bearer`` (parse,
  cached lookup, HMAC of the secret under the pepper, constant-time compare).
- ``signature_verify_cpu``: ``SignatureVerifier.verify`` with the nonce kept in memory:
  the verifier's own work (parse Signature-Input and Signature with http-sfv, coverage and
  freshness checks, signature base, two HMAC-SHA256, Content-Digest parse).
- ``signature_verify``: the same with the real nonce check (one ``SET NX EX``).
- ``unknown_key`` / ``wrong_secret``: refusals, which must cost the same.
- ``ping``: one Redis round trip, for scale.
- ``body_digest``: SHA-256 of a 1 KiB body against its Content-Digest (at body read).

    cd services/api-router-service && python -m bench.signature_verify [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from tests.support.servers import RedisServer
from tests.support.signing import SigningKey, sign

from api_router.auth.authenticator import Authenticator, SignedParts
from api_router.auth.content_digest import BodyCheck, content_digest
from api_router.auth.key_store import KeyStore
from api_router.auth.last_used import LastUsedRecorder
from api_router.auth.nonce_ledger import NonceLedger
from api_router.auth.secret_box import SecretBox
from api_router.auth.signature_base import RequestView
from api_router.auth.signature_verifier import SignatureVerifier
from api_router.config.settings import RedisSettings
from api_router.errors import ApiError
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, connect

BODY = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": "x" * 900}]})


class MemoryNonces(NonceLedger):
    """The nonce ledger without Redis, to time the verifier's own work."""

    def __init__(self) -> None:
        self.window_s = 600
        self._seen: set[str] = set()

    async def first_use(self, key_id: str, nonce: str) -> bool:
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        return True


def view_of(headers: dict[str, str]) -> RequestView:
    return RequestView("POST", "http", "gateway", "/v1/inference", None, headers)


async def timed(calls: list[Callable[[], Awaitable[object]]], warmup: int) -> dict[str, float]:
    samples = []
    for i, call in enumerate(calls):
        started = time.perf_counter()
        try:
            await call()
        except ApiError:
            pass  # the refusal cases
        if i >= warmup:
            samples.append((time.perf_counter() - started) * 1e6)
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
    }


async def measure(redis_url: str, requests: int, warmup: int) -> dict[str, object]:
    redis: Redis = connect(RedisSettings(url=redis_url, key_prefix="bench"))
    keys = Keyspace("bench")
    store = KeyStore(redis, keys, "p" * 32, 3600.0, SecretBox(bytes(32)))
    store.subscribed = True  # as with a live change-notice subscription: cache for the TTL
    issued = await store.create("acme", ["inference"])
    key = SigningKey.of(issued)
    unknown = SigningKey("kaaaaaaaaaaaa", key.secret)
    wrong = SigningKey(key.key_id, "arks_" + "a" * 52)
    await store.lookup(unknown.key_id)  # cached miss, as for repeated junk
    cpu = SignatureVerifier(store, MemoryNonces(), 300)
    real = SignatureVerifier(store, NonceLedger(redis, keys, 600), 300)
    bearer = Authenticator(
        store, real, lambda _t: "signature_or_key", LastUsedRecorder(redis, keys)
    )
    unsigned = SignedParts(None, None, lambda: view_of({}), False)
    body = BODY.encode()
    n = warmup + requests

    def signed(k: SigningKey) -> list[dict[str, str]]:
        return [
            sign(k, "POST", "/v1/inference", body, headers={"content-type": "application/json"})
            for _ in range(n)
        ]

    def verify_calls(
        verifier: SignatureVerifier, k: SigningKey
    ) -> list[Callable[[], Awaitable[object]]]:
        async def verify(h: dict[str, str]) -> object:
            return await verifier.verify(view_of(h), h["signature-input"], h["signature"], True)

        return [partial(verify, h) for h in signed(k)]

    async def ping() -> object:
        return await redis.ping()

    async def bearer_check() -> object:
        return await bearer.authenticate(f"Bearer {issued.api_key}", None, unsigned)

    check = BodyCheck.from_header(content_digest(body))

    async def body_digest() -> object:
        check.check(body)
        return None

    try:
        report: dict[str, object] = {
            "requests": requests,
            "bearer_check": await timed([bearer_check] * n, warmup),
            "signature_verify_cpu": await timed(verify_calls(cpu, key), warmup),
            "signature_verify": await timed(verify_calls(real, key), warmup),
            "unknown_key": await timed(verify_calls(cpu, unknown), warmup),
            "wrong_secret": await timed(verify_calls(cpu, wrong), warmup),
            "ping": await timed([ping] * n, warmup),
            "body_digest_1kib": await timed([body_digest] * n, warmup),
        }
    finally:
        await redis.aclose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="api-router-bench-"))
    redis = RedisServer(workdir / "redis").start()
    try:
        report = asyncio.run(measure(redis.url, args.requests, args.warmup))
        print(json.dumps(report, indent=2))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
