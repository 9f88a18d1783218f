"""API key format and hashing.

A key reads ``ark_<key id>_<secret>``: the key id is public (it names the key in logs, the
admin API and, as ``keyid``, in request signatures); the secret is 160 random bits. Only
HMAC-SHA256(pepper, secret) is stored, so a leaked store does not leak usable keys.

A signing secret reads ``arks_<52 base32 characters>`` (256 random bits); a client's HMAC
key is exactly those ASCII characters. Each has a short public id (``s<8 characters>``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from base64 import b32encode
from typing import Final, NamedTuple

PREFIX: Final = "ark"
_KEY = re.compile(r"^ark_(k[a-z2-7]{12})_([a-z2-7]{32})$")
# Any real key fits in this; longer input is rejected before a regex ever sees it.
MAX_KEY_LENGTH: Final = 64
# Anchored for JSON Schema (the OpenAPI document states them); match with re.fullmatch.
KEY_ID_PATTERN: Final = r"^k[a-z2-7]{12}$"
SIGNING_SECRET_ID_PATTERN: Final = r"^s[a-z2-7]{8}$"


class ParsedKey(NamedTuple):
    key_id: str
    secret: str


def _random_base32(n_bytes: int) -> str:
    return b32encode(secrets.token_bytes(n_bytes)).decode().lower().rstrip("=")


def new_key_id() -> str:
    return "k" + _random_base32(8)[:12]


def new_secret() -> str:
    return _random_base32(20)


def new_signing_secret_id() -> str:
    return "s" + _random_base32(5)[:8]


def new_signing_secret() -> str:
    return "arks_" + _random_base32(32)


def is_key_id(text: str) -> bool:
    return re.fullmatch(KEY_ID_PATTERN, text) is not None


def is_signing_secret_id(text: str) -> bool:
    return re.fullmatch(SIGNING_SECRET_ID_PATTERN, text) is not None


def format_key(key_id: str, secret: str) -> str:
    return f"{PREFIX}_{key_id}_{secret}"


def parse_key(presented: str) -> ParsedKey | None:
    """Split a presented key, or ``None`` when it is not shaped like one of ours."""
    if len(presented) > MAX_KEY_LENGTH:
        return None
    found = _KEY.match(presented)
    return ParsedKey(found.group(1), found.group(2)) if found else None


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(pepper: bytes, secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(pepper, secret), stored_hash)
