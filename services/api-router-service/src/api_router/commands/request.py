"""``api-router request [--sign] METHOD PATH [--data @file]``: one request to the gateway,
signed with the key in ``API_ROUTER_KEY_ID`` / ``API_ROUTER_SIGNING_SECRET`` or sent
with the API key in ``API_ROUTER_KEY``. Prints the answer; exit 1 on an error status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from api_router.client.auth import SignatureAuth
from api_router.client.signer import RequestSigner


def send(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("API_ROUTER_URL", "http://127.0.0.1:8080")
    body = _body(args.data)
    headers = {"content-type": "application/json"} if body else {}
    auth: httpx.Auth | None = None
    if args.sign:
        key_id = args.key_id or os.environ.get("API_ROUTER_KEY_ID")
        secret = args.signing_secret or os.environ.get("API_ROUTER_SIGNING_SECRET")
        if not key_id or not secret:
            need = "API_ROUTER_KEY_ID and API_ROUTER_SIGNING_SECRET (or --key-id, --signing-secret)"
            print(f"api-router request: --sign needs {need}", file=sys.stderr)
            return 2
        auth = SignatureAuth(RequestSigner(key_id, secret))
    elif os.environ.get("API_ROUTER_KEY"):
        headers["authorization"] = f"Bearer {os.environ['API_ROUTER_KEY']}"
    try:
        response = httpx.request(
            args.method.upper(),
            url + args.path,
            content=body,
            headers=headers,
            auth=auth,
            timeout=120,
        )
    except httpx.HTTPError as exc:
        print(f"api-router request: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    return 1 if response.is_error else 0


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        return Path(data[1:]).read_bytes()
    return data.encode()
