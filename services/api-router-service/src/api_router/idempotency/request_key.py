"""A request's ``Idempotency-Key``: what the client sent, checked, and what identifies it.

The draft spells the field as a Structured Field string (``Idempotency-Key: "8e03..."``);
most clients send the bare value (Stripe's spelling). Both are taken: a value that starts
with a double quote must be a valid sf-string and its content is the key, any other value
is the key as sent. Either way the key is 1-255 printable ASCII characters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from http_sfv.item import Item

from api_router.errors import ApiError

MAX_KEY_LENGTH: Final = 255
_PRINTABLE: Final = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class RequestKey:
    """One tenant's key for one request: ``scope`` names it in Redis (tenant and key
    hashed together), ``fingerprint`` is what the request must match to be a retry."""

    scope: str
    fingerprint: str


def parse_key(value: str) -> str:
    """The key in an ``Idempotency-Key`` field value; 400 ``invalid_idempotency_key``
    when it is not 1-255 printable characters (or a malformed quoted string)."""
    key = value.strip()
    if key.startswith('"'):
        item = Item()
        try:
            item.parse(key.encode("latin-1"))
        except ValueError:
            raise _invalid("is not a valid quoted string") from None
        if not isinstance(item.value, str) or item.params:
            raise _invalid("is not a valid quoted string")
        key = item.value
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise _invalid(f"must be 1 to {MAX_KEY_LENGTH} characters long")
    if not _PRINTABLE.issuperset(key.encode("latin-1")):
        raise _invalid("may hold printable ASCII characters only")
    return key


def request_key(tenant: str, key: str, method: str, path: str, body: bytes) -> RequestKey:
    """The key's scope (per tenant) and the request's fingerprint: a hash of its method,
    path and body (the body as sent: a client that retries re-sends the same bytes)."""
    scope = hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()[:40]
    digest = hashlib.sha256(f"{method}\0{path}\0".encode("latin-1"))
    digest.update(body)
    return RequestKey(scope, digest.hexdigest())


def _invalid(why: str) -> ApiError:
    return ApiError("invalid_idempotency_key", f"the Idempotency-Key header {why}")
