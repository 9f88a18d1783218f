"""Who is calling: a signed request (RFC 9421) or an API key, turned into a
:class:`Principal` or an ``ApiError``.

A request carrying ``Signature-Input`` or ``Signature`` is authenticated by its signature
alone (an ``Authorization`` header beside it is ignored). Otherwise the API key is checked,
and refused with ``signature_required`` when the key or its tenant demands signatures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from api_router.auth import api_keys
from api_router.auth.content_digest import BodyCheck
from api_router.auth.key_record import AuthMode, KeyRecord, KeyRefused
from api_router.auth.key_store import KeyStore, Scope
from api_router.auth.last_used import LastUsedRecorder
from api_router.auth.signature_base import RequestView
from api_router.auth.signature_verifier import SignatureVerifier
from api_router.errors import ApiError

__all__ = ["Authenticator", "KeyRefused", "Principal", "SignedParts", "require_scope"]

# Hashed when the key id is unknown, so unknown ids and wrong secrets cost the same time.
_DECOY_HASH = "0" * 64
_DECOY_SECRET = "a" * 32


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    scopes: frozenset[str]
    auth_method: Literal["api_key", "signature"] = "api_key"


@dataclass(frozen=True, slots=True)
class SignedParts:
    """The signature headers of a request and what they may cover."""

    signature_input: str | None
    signature: str | None
    view: Callable[[], RequestView]  # built only when the request is signed
    has_body: bool


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    # For signed requests: what the body must hash to (checked when the body is read).
    body_check: BodyCheck | None = None


class Authenticator:
    def __init__(
        self,
        key_store: KeyStore,
        verifier: SignatureVerifier,
        tenant_auth: Callable[[str], AuthMode],
        last_used: LastUsedRecorder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = key_store
        self._verifier = verifier
        self._tenant_auth = tenant_auth
        self._last_used = last_used
        self._clock = clock

    async def authenticate(
        self, authorization: str | None, api_key: str | None, signed: SignedParts
    ) -> Authenticated:
        if signed.signature_input is not None or signed.signature is not None:
            if signed.signature_input is None or signed.signature is None:
                raise ApiError(
                    "malformed_signature", "send both Signature-Input and Signature headers"
                )
            verified = await self._verifier.verify(
                signed.view(), signed.signature_input, signed.signature, signed.has_body
            )
            record = verified.entry.record
            self._last_used.touch(record.id)
            return Authenticated(_principal(record, "signature"), verified.body_check)
        record = await self._bearer(authorization, api_key)
        if "signature_required" in (record.auth, self._tenant_auth(record.tenant)):
            raise KeyRefused(
                "signature_required",
                "this key must sign its requests (RFC 9421, hmac-sha256, with keyid "
                f"{record.id!r}); the API key alone is not accepted",
                record,
            )
        self._last_used.touch(record.id)
        return Authenticated(_principal(record, "api_key"))

    async def _bearer(self, authorization: str | None, api_key: str | None) -> KeyRecord:
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
        return record


def _principal(record: KeyRecord, method: Literal["api_key", "signature"]) -> Principal:
    return Principal(record.id, record.tenant, frozenset(record.scopes), method)


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
        "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>', "
        "or sign the request (RFC 9421 Signature-Input and Signature)",
    )
