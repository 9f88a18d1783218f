"""``api-router keys create|list|show|revoke|rotate``: the admin key API against Redis
directly, for bootstrapping the first admin key. Changes are audited as ``cli:<user>``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from api_router.api.admin.key_contract import key_info
from api_router.auth.key_record import KeyRecord
from api_router.auth.key_store import KeyStore
from api_router.auth.secret_box import SecretBox
from api_router.commands.cli_audit import record_cli_action
from api_router.config.loader import load_settings, require_kek, require_pepper
from api_router.errors import ApiError
from api_router.keyspace import Keyspace
from api_router.redis_store import connect
from api_router.usage.audit_store import AuditStore

Action = Callable[[KeyStore, AuditStore], Awaitable[int]]


def create(args: argparse.Namespace) -> int:
    async def create_key(store: KeyStore, audit: AuditStore) -> int:
        expires = time.time() + args.expires_in_days * 86_400 if args.expires_in_days else None
        issued = await store.create(
            args.tenant, args.scope or ["inference"], args.name, expires, args.auth
        )
        record = issued.record
        _audit(audit, "keys.create", record.id, tenant=record.tenant, scopes=list(record.scopes))
        summary = {
            "id": record.id,
            "tenant": record.tenant,
            "name": record.name,
            "scopes": list(record.scopes),
            "auth": record.auth,
            "api_key": issued.api_key,
            "signing_secrets": [{"id": s.id, "secret": s.secret} for s in issued.signing_secrets],
        }
        if args.json:
            print(json.dumps(summary))
            return 0
        secret = issued.signing_secrets[0]
        for label in ("id", "tenant", "name", "scopes", "auth", "api_key"):
            value = summary[label]
            print(f"{label + ':':16}{' '.join(value) if isinstance(value, list) else value}")
        print(f"{'signing secret:':16}{secret.secret}   (id {secret.id})")
        print("The API key and the signing secret are shown once; store them now.")
        return 0

    return _run(args, create_key)


def list_keys(args: argparse.Namespace) -> int:
    async def listing(store: KeyStore, audit: AuditStore) -> int:
        records = await store.of_tenant(args.tenant)
        used = await store.last_used([r.id for r in records])
        infos = [key_info(r, used.get(r.id)) for r in records]
        if args.json:
            print(msgspec.json.encode(infos).decode())
        for info in [] if args.json else infos:
            print(f"{info.id}  {info.status:8} {' '.join(info.scopes):24} {info.name}")
        return 0

    return _run(args, listing)


def show(args: argparse.Namespace) -> int:
    async def show_key(store: KeyStore, audit: AuditStore) -> int:
        record = await store.read(args.key_id)
        if record is None:
            raise ApiError("not_found", f"no key {args.key_id}")
        _print_record(store, record, args.json, await store.last_used([record.id]))
        return 0

    return _run(args, show_key)


def revoke(args: argparse.Namespace) -> int:
    async def revoke_key(store: KeyStore, audit: AuditStore) -> int:
        record = await store.revoke(args.key_id)
        _audit(audit, "keys.revoke", record.id, tenant=record.tenant)
        _print_record(store, record, args.json, {})
        return 0

    return _run(args, revoke_key)


def rotate(args: argparse.Namespace) -> int:
    async def rotate_secret(store: KeyStore, audit: AuditStore) -> int:
        if args.retire:
            record = await store.remove_signing_secret(args.key_id, args.retire)
            _audit(
                audit,
                "keys.signing_secret.delete",
                record.id,
                tenant=record.tenant,
                signing_secret=args.retire,
            )
            _print_record(store, record, args.json, {})
            return 0
        record, shown = await store.add_signing_secret(args.key_id)
        _audit(
            audit,
            "keys.signing_secret.add",
            record.id,
            tenant=record.tenant,
            signing_secret=shown.id,
        )
        if args.json:
            print(json.dumps({"id": shown.id, "secret": shown.secret}))
        else:
            print(f"new signing secret {shown.id}: {shown.secret}   (shown once)")
            print(
                f"once every signer uses it: api-router keys rotate {record.id} --retire <old id>"
            )
        return 0

    return _run(args, rotate_secret)


def _print_record(
    store: KeyStore, record: KeyRecord, as_json: bool, used: dict[str, float]
) -> None:
    info = key_info(record, used.get(record.id))
    if as_json:
        print(msgspec.json.encode(info).decode())
        return
    for name, value in msgspec.structs.asdict(info).items():
        print(f"{name + ':':16}{value}")


def _audit(audit: AuditStore, action: str, target: str, **details: Any) -> None:
    record_cli_action(audit, action, target, details)


def _run(args: argparse.Namespace, action: Action) -> int:
    settings = load_settings(args.config)
    pepper = require_pepper(settings)
    box = SecretBox(require_kek(settings))

    async def run() -> int:
        redis = connect(settings.redis)
        keys = Keyspace(settings.redis.key_prefix)
        audit = AuditStore(redis, keys, settings.audit)
        try:
            return await action(KeyStore(redis, keys, pepper, 0.0, box), audit)
        finally:
            await audit.aclose()  # writes the queued admin action
            await redis.aclose()

    try:
        return asyncio.run(run())
    except msgspec.ValidationError as exc:
        print(f"api-router keys: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"api-router keys: {exc.message}", file=sys.stderr)
        return 1
