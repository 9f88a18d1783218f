"""Request and response bodies of the admin key API (``/v1/admin/keys``). Secrets appear
only in :class:`CreatedKey` and :class:`NewSigningSecret`, the answers that show them once."""

from __future__ import annotations

from typing import Annotated

import msgspec

from api_router.auth.key_record import AuthMode, IssuedKey, KeyRecord, Scope, Tenant


class CreateKeyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tenant: Tenant
    name: Annotated[str, msgspec.Meta(max_length=128)] = ""
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["inference"]
    )
    # Epoch seconds; absent: the key does not expire.
    expires_at: Annotated[float, msgspec.Meta(gt=0)] | None = None
    auth: AuthMode = "signature_or_key"


class SigningSecretInfo(msgspec.Struct, frozen=True):
    id: str
    created_at: float


class NewSigningSecret(msgspec.Struct, frozen=True):
    """A signing secret as shown once: the HMAC key is ``secret``'s ASCII bytes."""

    id: str
    secret: str
    created_at: float


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: str
    name: str
    scopes: list[Scope]
    status: str
    auth: AuthMode
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    signing_secrets: list[SigningSecretInfo]


class CreatedKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: str
    name: str
    scopes: list[Scope]
    auth: AuthMode
    created_at: float
    expires_at: float | None
    # `Authorization: Bearer <api_key>`, where the key and its tenant allow it.
    api_key: str
    signing_secrets: list[NewSigningSecret]


class KeyList(msgspec.Struct, frozen=True):
    data: list[KeyInfo]


def key_info(record: KeyRecord, last_used_at: float | None) -> KeyInfo:
    return KeyInfo(
        id=record.id,
        tenant=record.tenant,
        name=record.name,
        scopes=list(record.scopes),
        status=record.status,
        auth=record.auth,
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        last_used_at=last_used_at,
        signing_secrets=[SigningSecretInfo(s.id, s.created_at) for s in record.signing_secrets],
    )


def created_key(issued: IssuedKey) -> CreatedKey:
    """A new key as shown once: its record with the API key and the signing secret."""
    record = issued.record
    return CreatedKey(
        id=record.id,
        tenant=record.tenant,
        name=record.name,
        scopes=list(record.scopes),
        auth=record.auth,
        created_at=record.created_at,
        expires_at=record.expires_at,
        api_key=issued.api_key,
        signing_secrets=[
            NewSigningSecret(s.id, s.secret, s.created_at) for s in issued.signing_secrets
        ],
    )
