"""What the key store keeps per API key, and what it hands out once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec

from api_router.errors import ApiError

Scope = Literal["inference", "audit:read", "admin"]
SCOPES: tuple[Scope, ...] = ("inference", "audit:read", "admin")
TENANT_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
Tenant = Annotated[str, msgspec.Meta(pattern=TENANT_PATTERN)]
# signature_required: bearer use of the key is refused; signature_or_key: either works.
AuthMode = Literal["signature_required", "signature_or_key"]

# A client rotates by adding a second secret, moving its signers, then deleting the first.
MAX_SIGNING_SECRETS = 2


class SigningSecret(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    # AES-256-GCM under the KEK, bound to "<key id>:<secret id>" (auth/secret_box.py).
    sealed: str
    created_at: float


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: Tenant
    name: str
    scopes: tuple[Scope, ...]
    status: Literal["active", "revoked"] = "active"
    created_at: float
    expires_at: float | None = None
    secret_hash: str
    # Records written before signatures existed have neither: bearer use keeps working.
    signing_secrets: tuple[SigningSecret, ...] = ()
    auth: AuthMode = "signature_or_key"
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A cached record with its signing secrets opened (HMAC keys, in memory only)."""

    record: KeyRecord
    signing_keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ShownSecret:
    id: str
    secret: str
    created_at: float


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key; ``api_key`` and the signing secret are shown once and never stored."""

    record: KeyRecord
    api_key: str
    signing_secrets: tuple[ShownSecret, ...]


def bound_to(key_id: str, secret_id: str) -> str:
    """The associated data a signing secret is sealed under."""
    return f"{key_id}:{secret_id}"


class KeyRefused(ApiError):
    """A genuine key (its secret or signature matched) that may not be used now: the
    refusal is recorded against its tenant, unlike a key nobody can show to be theirs."""

    def __init__(self, code: str, message: str, record: KeyRecord) -> None:
        super().__init__(code, message)
        self.key_id = record.id
        self.tenant = record.tenant
