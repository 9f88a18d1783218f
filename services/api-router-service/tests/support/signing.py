"""Hand-built RFC 9421 signatures for tests: every parameter can be set, dropped or broken."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from api_router.auth.content_digest import content_digest
from api_router.auth.key_record import IssuedKey
from api_router.auth.signature_base import RequestView, signature_base

# The host httpx's ASGI client sends (base_url "http://gateway").
AUTHORITY = "gateway"
_UNSET: object = object()


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: str
    api_key: str = ""

    @classmethod
    def of(cls, issued: IssuedKey, index: int = 0) -> SigningKey:
        return cls(issued.record.id, issued.signing_secrets[index].secret, issued.api_key)


def fresh_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign(
    key: SigningKey,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    query: str | None = None,
    components: Sequence[str] | None = None,
    created: int | None | object = _UNSET,
    expires: int | None = None,
    nonce: str | None | object = _UNSET,
    alg: str | None = "hmac-sha256",
    label: str = "sig1",
    headers: dict[str, str] | None = None,
    keyid: str | None = None,
) -> dict[str, str]:
    """The headers of a signed request (with ``content-digest`` of ``body`` when it has
    one, unless ``headers`` sets it). ``created``/``nonce`` default to now / a fresh one;
    ``None`` leaves them out."""
    extra = {k.lower(): v for k, v in (headers or {}).items()}
    if body and "content-digest" not in extra:
        extra["content-digest"] = content_digest(body)
    if components is None:
        components = ["@method", "@path"]
        if query is not None:
            components.append("@query")
        if "content-digest" in extra:
            components.append("content-digest")
    params = "(" + " ".join(f'"{c}"' for c in components) + ")"
    created_at = int(time.time()) if created is _UNSET else created
    if created_at is not None:
        params += f";created={created_at}"
    if expires is not None:
        params += f";expires={expires}"
    params += f';keyid="{keyid or key.key_id}"'
    nonce_value = fresh_nonce() if nonce is _UNSET else nonce
    if nonce_value is not None:
        params += f';nonce="{nonce_value}"'
    if alg is not None:
        params += f';alg="{alg}"'
    view = RequestView(method, "http", AUTHORITY, path, query, extra)
    base = signature_base(view, components, params)
    mac = hmac.digest(key.secret.encode(), base, hashlib.sha256)
    return {
        **extra,
        "signature-input": f"{label}={params}",
        "signature": f"{label}=:{base64.b64encode(mac).decode()}:",
    }
