"""What the OpenAPI document says of Idempotency-Key on the chat routes: the request
header fields, the two errors it adds, and the field that marks a replay."""

from __future__ import annotations

from typing import Final

from api_router.api.openapi_operation import Spec, matching, parameter

# The bare spelling: printable ASCII, no space at either end and (since a leading quote
# means the draft's quoted spelling, described in words) no leading quote.
KEY_PATTERN: Final = r"^[!#-~]([ -~]{0,253}[!-~])?$"

IDEMPOTENCY_KEY: Final[Spec] = parameter(
    "Idempotency-Key",
    "header",
    "IETF httpapi draft: 1 to 255 printable characters, bare or as a quoted string "
    '(`"..."`), scoped to the caller\'s tenant. The first request with a key runs and its '
    "final answer (a stream's whole event sequence) is kept for `idempotency.retention_s` "
    "(24 h); the same key with the same method, path and body then gets that answer again, "
    "byte for byte, with `Idempotent-Replayed: true`, and is neither run nor billed again. "
    "Answers worth retrying (5xx, 429, 402, 408) are not kept.",
    schema=matching(KEY_PATTERN),
)


def prefer(description: str) -> Spec:
    """The ``Prefer`` request field (RFC 7240) with the preferences a route honours. Any
    string: preferences a server does not know (or cannot parse) are ignored, not refused."""
    return parameter("Prefer", "header", description, schema={"type": "string"})


PREFER_WAIT: Final[Spec] = prefer(
    "`wait=N`: a retry whose first request (same Idempotency-Key) is still running waits "
    "up to N seconds (at most `idempotency.max_wait_s`) for its answer instead of 409."
)

# 409 idempotency_in_progress (with Retry-After), 422 idempotency_key_mismatch.
IDEMPOTENCY_ERRORS: Final = ("409", "422")

REPLAYED: Final[Spec] = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with "
        "the same Idempotency-Key",
        "schema": {"const": "true"},
    }
}
