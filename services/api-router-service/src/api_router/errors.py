"""The error catalog and the exception tree: every error the gateway answers.

Exception tree::

    ApiError                    an answer to the client: code -> (HTTP status, type)
     ├── raised by handlers and stages (auth, routing, dispatch) with a catalog code
     ├── StoreUnavailable       Redis could not be reached (translated at the adapter)
     └── ShuttingDown           the gateway is shutting down: refused, or its grace is over

The HTTP layer renders every error as ``{"error": {"type", "code", "message",
"request_id"}}`` (``api/error_responses.py``); on the OpenAI-compatible routes the same
error also carries OpenAI's ``param``. Messages say how to fix the request; they never
carry a stack trace or a secret. Anything that is not an ``ApiError`` is a bug and is
answered ``internal_error``.

This module imports nothing of ours: every layer (auth, limiter, routing, dispatch, usage,
the worker) raises these errors without depending on the HTTP package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple


class ErrorKind(NamedTuple):
    status: int
    type: str
    # Sent as Retry-After unless the error sets its own: how soon trying again makes sense.
    retry_after_s: int | None = None


CATALOG: Final[Mapping[str, ErrorKind]] = {
    # 400: the request cannot be understood; the message names the field path.
    "invalid_request": ErrorKind(400, "invalid_request_error"),
    # An OpenAI parameter the gateway cannot honour (the error's `param` names it).
    "unsupported_parameter": ErrorKind(400, "invalid_request_error"),
    # 401 / 403: who is calling, and may they.
    "missing_credentials": ErrorKind(401, "authentication_error"),
    "invalid_api_key": ErrorKind(401, "authentication_error"),
    "key_revoked": ErrorKind(401, "authentication_error"),
    "key_expired": ErrorKind(401, "authentication_error"),
    # Signed requests (RFC 9421): the message names the component, parameter or clock skew.
    "malformed_signature": ErrorKind(401, "authentication_error"),
    "invalid_signature": ErrorKind(401, "authentication_error"),
    "signature_expired": ErrorKind(401, "authentication_error"),
    "replayed_request": ErrorKind(401, "authentication_error"),
    "digest_mismatch": ErrorKind(401, "authentication_error"),
    # The key (or its tenant) must sign; its API key alone is refused.
    "signature_required": ErrorKind(401, "authentication_error"),
    "insufficient_scope": ErrorKind(403, "permission_error"),
    "forbidden": ErrorKind(403, "permission_error"),
    # 402 / 429: limits and budgets (limiter/); 429s carry Retry-After.
    "budget_exhausted": ErrorKind(402, "budget_error"),
    "rate_limited": ErrorKind(429, "rate_limit_error"),
    "concurrency_limited": ErrorKind(429, "rate_limit_error"),
    # 404 / 405: what is being asked for does not exist.
    "not_found": ErrorKind(404, "not_found_error"),
    "model_not_found": ErrorKind(404, "not_found_error"),
    "method_not_allowed": ErrorKind(405, "invalid_request_error"),
    # 409: the change cannot be made in the resource's current state (admin API).
    "conflict": ErrorKind(409, "invalid_request_error"),
    # Idempotency-Key (api/idempotency_middleware.py): a key that is not 1-255 printable
    # characters (400); the first request with the key still running (409, or the client's
    # `Prefer: wait=N` ran out); the key used before with another method, path or body (422).
    "invalid_idempotency_key": ErrorKind(400, "invalid_request_error"),
    "idempotency_in_progress": ErrorKind(409, "invalid_request_error", retry_after_s=1),
    "idempotency_key_mismatch": ErrorKind(422, "invalid_request_error"),
    # 410: the asynchronous job asked for was cancelled (DELETE) before it finished.
    "job_cancelled": ErrorKind(410, "invalid_request_error"),
    # 408 / 413 / 415 / 431: how the request arrived.
    "request_timeout": ErrorKind(408, "invalid_request_error"),
    # Only ever an in-stream `error` event (the 200 has been sent): the client read a
    # stream so slowly that the gateway's bounded buffer for it filled up.
    "slow_reader": ErrorKind(408, "invalid_request_error"),
    "payload_too_large": ErrorKind(413, "invalid_request_error"),
    "unsupported_media_type": ErrorKind(415, "invalid_request_error"),
    # 431: the request head is larger, or has more fields, than server.max_head_bytes /
    # server.max_headers allow; refused before it is read whole.
    "headers_too_large": ErrorKind(431, "invalid_request_error"),
    # 5xx: the gateway or the nodes behind it.
    "internal_error": ErrorKind(500, "api_error"),
    "upstream_error": ErrorKind(502, "upstream_error"),
    # Every node that may take the model is drained, full, unhealthy or behind an open
    # breaker; health and breakers move within seconds, so come back shortly.
    "no_capacity": ErrorKind(503, "overloaded_error", retry_after_s=2),
    "service_unavailable": ErrorKind(503, "api_error"),
    "usage_unavailable": ErrorKind(503, "api_error"),
    "limiter_unavailable": ErrorKind(503, "api_error"),
    "budget_unavailable": ErrorKind(503, "api_error"),
    # The replica is shutting down: a new request is refused at once, a request still
    # running when the shutdown grace ends is answered with it. Retry on another replica.
    "shutting_down": ErrorKind(503, "api_error"),
    "upstream_timeout": ErrorKind(504, "upstream_error"),
}


class ApiError(Exception):
    """An error answered to the client; ``code`` must be in :data:`CATALOG`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        kind = CATALOG.get(code)
        if kind is None:
            raise ValueError(f"error code {code!r} is not in the catalog")
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        if kind.retry_after_s is not None:
            self.headers.setdefault("Retry-After", str(kind.retry_after_s))
        self.param = param  # the request field at fault, where one is (OpenAI's `param`)

    @property
    def status(self) -> int:
        return CATALOG[self.code].status


class StoreUnavailable(ApiError):
    """Redis did not answer in time; raised only by the Redis adapter. ``server`` (its URL
    without credentials, when known) is for operators, in logs and the command line: the
    message a client reads does not carry the gateway's internal addresses."""

    def __init__(
        self,
        message: str = "a backing store is unavailable, retry shortly",
        server: str | None = None,
    ) -> None:
        super().__init__("service_unavailable", message, headers={"Retry-After": "1"})
        self.server = server

    @property
    def for_operators(self) -> str:
        """The message with the Redis URL that was tried, and where it is configured."""
        if self.server is None:
            return self.message
        # A cluster's or Sentinels' label (redis_store.connect) names the nodes tried.
        setting = (
            "redis.nodes"
            if self.server.startswith(("redis cluster", "redis sentinel"))
            else "redis.url"
        )
        return f"{self.message} (Redis at {self.server}: check it runs, or set {setting})"


class ShuttingDown(ApiError):
    """The gateway is shutting down; the client should retry (another replica answers), on
    a new connection."""

    def __init__(self, message: str = "the gateway is shutting down, retry shortly") -> None:
        super().__init__(
            "shutting_down", message, headers={"Retry-After": "1", "Connection": "close"}
        )
