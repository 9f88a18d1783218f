"""``api-router keys create|list|show|revoke|rotate``: API keys through the admin API of a
running gateway (``keys create --direct`` writes to Redis itself, for the first admin key:
``keys_direct.py``)."""

from __future__ import annotations

import argparse
import time
from typing import Any
from urllib.parse import quote

from api_router.commands import keys_direct
from api_router.commands.admin_api import AdminApi, run_admin
from api_router.commands.table import fields, table, when

_ONCE = "The API key and the signing secret are shown once: store them now."


def create(args: argparse.Namespace) -> int:
    if args.direct:
        return keys_direct.create(args, render_created)
    body: dict[str, Any] = {
        "tenant": args.tenant,
        "name": args.name,
        "scopes": args.scope or ["inference"],
        "auth": args.auth,
    }
    if args.expires_in_days:
        body["expires_at"] = time.time() + args.expires_in_days * 86_400
    return run_admin(
        args, lambda api: api.call("POST", "/v1/admin/keys", json=body), render_created
    )


def list_keys(args: argparse.Namespace) -> int:
    return run_admin(args, lambda api: api.get("/v1/admin/keys", tenant=args.tenant), _key_table)


def show(args: argparse.Namespace) -> int:
    return run_admin(args, lambda api: api.get(_path(args.key_id)), render_key)


def revoke(args: argparse.Namespace) -> int:
    return run_admin(args, lambda api: api.call("POST", _path(args.key_id, "revoke")), render_key)


def rotate(args: argparse.Namespace) -> int:
    if args.retire:
        retire = _path(args.key_id, "signing-secrets", args.retire)
        return run_admin(args, lambda api: api.call("DELETE", retire), render_key)

    def add(api: AdminApi) -> Any:
        return api.call("POST", _path(args.key_id, "signing-secrets"))

    def shown(secret: dict[str, Any]) -> str:
        return (
            f"new signing secret {secret['id']}: {secret['secret']}   (shown once)\n"
            "once every signer uses it, retire the old one: "
            f"api-router keys rotate {args.key_id} --retire <old secret id>"
        )

    return run_admin(args, add, shown)


def render_created(key: dict[str, Any]) -> str:
    secret = key["signing_secrets"][0]
    details = fields(
        [
            *_identity(key),
            ("api key", key["api_key"]),
            ("signing secret", f"{secret['secret']}   (id {secret['id']})"),
        ]
    )
    return f"{details}\n{_ONCE}"


def render_key(key: dict[str, Any]) -> str:
    secrets = ", ".join(
        f"{s['id']} (created {when(s['created_at'])})" for s in key["signing_secrets"]
    )
    return fields(
        [
            *_identity(key),
            ("status", key["status"]),
            ("revoked at", when(key["revoked_at"])),
            ("last used at", when(key["last_used_at"], "never")),
            ("signing secrets", secrets or "none"),
        ]
    )


def _identity(key: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("id", key["id"]),
        ("tenant", key["tenant"]),
        ("name", key["name"] or "-"),
        ("scopes", ", ".join(key["scopes"])),
        ("auth", key["auth"]),
        ("created at", when(key["created_at"])),
        ("expires at", when(key["expires_at"], "never")),
    ]


def _key_table(listing: dict[str, Any]) -> str:
    rows = [
        (
            key["id"],
            key["name"] or "-",
            key["status"],
            ",".join(key["scopes"]),
            key["auth"],
            when(key["created_at"]),
            when(key["expires_at"], "never"),
            when(key["last_used_at"], "never"),
        )
        for key in listing["data"]
    ]
    headers = ("ID", "NAME", "STATUS", "SCOPES", "AUTH", "CREATED", "EXPIRES", "LAST USED")
    return table(headers, rows) if rows else "no keys"


def _path(key_id: str, *rest: str) -> str:
    return "/".join(["/v1/admin/keys", *(quote(part, safe="") for part in (key_id, *rest))])
