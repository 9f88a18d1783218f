"""The demo keys of ``api-router dev``: kept across runs (in ``dev.env``) while the dev
Redis still has them, so that a restarted stack answers the keys a user already holds."""

from __future__ import annotations

import shlex
from pathlib import Path

from api_router.auth import api_keys
from api_router.auth.key_store import KeyStore, Scope
from api_router.auth.secret_box import SecretBox
from api_router.config.loader import require_kek, require_pepper
from api_router.config.settings import Settings
from api_router.keyspace import Keyspace
from api_router.redis_store import connect

# An API key and the signing secret that goes with it (empty when not kept).
DemoKey = tuple[str, str]


async def demo_keys(settings: Settings, dev_env: Path) -> tuple[DemoKey, DemoKey]:
    """The demo and admin keys of the previous run (read from ``dev_env``) when the dev
    Redis still has them, else new ones."""
    pepper = require_pepper(settings)
    box = SecretBox(require_kek(settings))
    previous = read_env_file(dev_env)
    client = connect(settings.redis)
    try:
        store = KeyStore(client, Keyspace(settings.redis.key_prefix), pepper, 0, box)
        key = await _reuse_or_create(
            store,
            previous.get("API_ROUTER_KEY"),
            previous.get("API_ROUTER_SIGNING_SECRET"),
            "demo",
            ("inference", "audit:read"),
        )
        admin = await _reuse_or_create(
            store, previous.get("API_ROUTER_ADMIN_KEY"), None, "ops", ("admin",)
        )
    finally:
        await client.aclose()
    return key, admin


async def _reuse_or_create(
    store: KeyStore,
    previous: str | None,
    signing_secret: str | None,
    tenant: str,
    scopes: tuple[Scope, ...],
) -> DemoKey:
    parsed = api_keys.parse_key(previous) if previous else None
    if previous and parsed:
        entry = await store.lookup(parsed.key_id)
        if (
            entry is not None
            and entry.record.status == "active"
            and api_keys.secret_matches(store.pepper, parsed.secret, entry.record.secret_hash)
            and (signing_secret is None or signing_secret.encode() in entry.signing_keys)
        ):
            return previous, signing_secret or ""
    issued = await store.create(tenant, scopes, name=f"dev {tenant} key")
    return issued.api_key, issued.signing_secrets[0].secret


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a file like ``dev.env`` (values quoted as a shell would)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.partition("=") for line in lines if "=" in line)
    return {name: shlex.split(value)[0] if value else "" for name, _, value in pairs}
