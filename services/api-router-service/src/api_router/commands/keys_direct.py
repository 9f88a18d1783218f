"""``api-router keys create --direct``: a key written to Redis by this process, with the
server's pepper and KEK, for the one moment no admin key exists yet (bootstrapping). Audited
as ``cli:<user>``; every other key change goes through a gateway's admin API."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from api_router.api.admin.key_contract import CreatedKey, created_key
from api_router.auth.key_store import KeyStore
from api_router.auth.secret_box import SecretBox
from api_router.commands.cli_audit import record_cli_action
from api_router.config.loader import load_settings, require_kek, require_pepper
from api_router.errors import ApiError, StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import connect
from api_router.usage.audit_store import AuditStore
from api_router.usage.exporter import UsageExporter


def create(args: argparse.Namespace, render: Callable[[dict[str, Any]], str]) -> int:
    settings = load_settings(args.config)
    pepper = require_pepper(settings)
    box = SecretBox(require_kek(settings))
    expires = time.time() + args.expires_in_days * 86_400 if args.expires_in_days else None

    async def create_key() -> CreatedKey:
        redis = connect(settings.redis)
        keys = Keyspace(settings.redis.key_prefix)
        # The action goes to Kafka through a spool of this command's own (beside the
        # gateway's, never shared): shipped before the command exits, or by its next run.
        spool = str(Path(settings.usage.spool_dir) / "cli-direct")
        exporter = UsageExporter(
            settings.kafka,
            msgspec.structs.replace(settings.usage, spool_dir=spool),
            client_id="api-router-cli",
            audit_topic=settings.audit.topic,
        )
        audit = AuditStore(redis, keys, settings.audit, exporter.record, None)
        try:
            store = KeyStore(redis, keys, pepper, 0.0, box)
            issued = await store.create(
                args.tenant, args.scope or ["inference"], args.name, expires, args.auth
            )
            record = issued.record
            details = {"tenant": record.tenant, "scopes": list(record.scopes)}
            record_cli_action(audit, "keys.create", record.id, details)
            return created_key(issued)
        finally:
            await audit.aclose()  # writes the queued admin action to the recent window
            await exporter.aclose()  # and ships it to Kafka
            await redis.aclose()

    try:
        created = msgspec.to_builtins(asyncio.run(create_key()))
    except msgspec.ValidationError as exc:
        print(f"api-router keys create: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"api-router keys create: {exc.for_operators}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"api-router keys create: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(created) if args.json else render(created))
    return 0
