"""Who is calling: turns request headers into a :class:`Principal` or an ``ApiError``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from api_router.api.errors import ApiError
from api_router.auth import api_keys
from api_router.auth.key_store import KeyRecord, KeyStore, Scope

# Hashed when the key id is unknown, so unknown ids and wrong secrets cost the same time.
_DECOY_HASH = "0" * 64
_DECOY_SECRET = "a" * 32


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    scopes: frozenset[str]


class Authenticator:
    def __init__(self, key_store: KeyStore, clock: Callable[[], float] = time.time) -> None:
        self._keys = key_store
        self._clock = clock

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        presented = _presented_key(authorization, api_key)
        parsed = api_keys.parse_key(presented)
        if parsed is None:
            raise ApiError("invalid_api_key", "the API key is malformed")
        record = await self._keys.get(parsed.key_id)
        stored_hash = record.secret_hash if record is not None else _DECOY_HASH
        secret = parsed.secret if record is not None else _DECOY_SECRET
        if not api_keys.secret_matches(self._keys.pepper, secret, stored_hash) or record is None:
            raise ApiError("invalid_api_key", "the API key is not valid")
        if record.status != "active":
            raise KeyRefused("key_revoked", "the API key has been revoked", record)
        if record.expires_at is not None and record.expires_at <= self._clock():
            raise KeyRefused("key_expired", "the API key has expired", record)
        return Principal(record.id, record.tenant, frozenset(record.scopes))


class KeyRefused(ApiError):
    """A genuine key (its secret matched) that may no longer be used: the refusal is
    recorded against its tenant, unlike a key nobody can show to be theirs."""

    def __init__(self, code: str, message: str, record: KeyRecord) -> None:
        super().__init__(code, message)
        self.key_id = record.id
        self.tenant = record.tenant


def require_scope(principal: Principal, scopes: tuple[Scope, ...]) -> None:
    """Pass when the key holds any one of ``scopes``."""
    if principal.scopes.isdisjoint(scopes):
        wanted = " or ".join(repr(scope) for scope in scopes)
        raise ApiError("insufficient_scope", f"this API key lacks the {wanted} scope")


def _presented_key(authorization: str | None, api_key: str | None) -> str:
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ApiError(
                "invalid_api_key", "the Authorization header must read 'Bearer <API key>'"
            )
        return credentials.strip()
    if api_key is not None:
        return api_key.strip()
    raise ApiError(
        "missing_credentials",
        "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    )
