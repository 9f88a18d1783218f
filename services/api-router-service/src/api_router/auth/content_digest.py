"""RFC 9530 ``Content-Digest`` (``sha-256``) of a signed request's body.

The signature covers the header; the body is checked against it when the handler reads
the body (``api/body.py``), within the body's size and time limits, so the body is read
once and never buffered beyond them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from http_sfv.dictionary import Dictionary
from http_sfv.item import Item

from api_router.errors import ApiError

_MAX_HEADER = 1024
_CANONICAL = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")
_HOW = "send Content-Digest: sha-256=:<base64 of the SHA-256 of the body>:"


def content_digest(body: bytes) -> str:
    """The header value for ``body`` (what a client sends)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


class BodyCheck:
    """What the body of a signed request must be: the digest its signature covers, or,
    when the signature covers no digest, empty."""

    def __init__(self, expected_sha256: bytes | None) -> None:
        self._expected = expected_sha256

    @classmethod
    def from_header(cls, value: str) -> BodyCheck:
        canonical = _CANONICAL.fullmatch(value)  # what clients send; http-sfv for the rest
        if canonical is not None:
            return cls(base64.b64decode(canonical[1]))
        parsed = Dictionary()
        try:
            if len(value) > _MAX_HEADER:
                raise ValueError
            parsed.parse(value.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ApiError("digest_mismatch", f"Content-Digest is malformed; {_HOW}") from None
        member = parsed.get("sha-256")
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise ApiError("digest_mismatch", f"Content-Digest has no sha-256 digest; {_HOW}")
        if len(member.value) != hashlib.sha256().digest_size:
            raise ApiError("digest_mismatch", "the sha-256 Content-Digest is not 32 bytes long")
        return cls(member.value)

    def check(self, body: bytes) -> None:
        if self._expected is None:
            if body:
                raise ApiError(
                    "malformed_signature",
                    'the request has a body: cover "content-digest" in the signature',
                )
            return
        if not hmac.compare_digest(hashlib.sha256(body).digest(), self._expected):
            raise ApiError(
                "digest_mismatch", "Content-Digest does not match the body the gateway received"
            )
