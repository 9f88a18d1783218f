"""Route middleware of the chat routes: ``Idempotency-Key`` (IETF httpapi draft).

A request without the header passes straight through (no Redis call). With one: the key
is checked (400), the body read and fingerprinted with the method and path, and the key
claimed for this tenant in one script (``idempotency/key_claims.py``):

- claimed: the request runs as any other; its final answer (status, the fields that
  describe the body, the body: a stream's whole event sequence) is stored before its
  last byte leaves, so a retry that follows the answer finds it. Answers worth retrying
  (5xx, 429, 402, 408, a stream that ended in such an error or that the client left)
  release the key instead;
- done: the stored answer is replayed byte for byte with ``Idempotent-Replayed: true``;
  nothing is admitted, dispatched or billed, and the audit record says what it replays;
- running: 409 ``idempotency_in_progress`` with ``Retry-After``, unless the client sent
  ``Prefer: wait=N``: then the key is asked again until it is done (or freed: then this
  request claims it and runs), for up to N seconds;
- used with another method, path or body: 422 ``idempotency_key_mismatch``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_router.api.body import read_json_body
from api_router.api.error_responses import render_error
from api_router.api.prefer import preferences
from api_router.api.request_context import RequestContext, context_of
from api_router.errors import CATALOG, ApiError
from api_router.idempotency.key_claims import Claimed, ClaimResult, Done, KeyClaims, Running
from api_router.idempotency.request_key import RequestKey, parse_key, request_key
from api_router.idempotency.stored_answer import StoredAnswer, retryable
from api_router.services import services_of

_HEADER: Final = b"idempotency-key"
# Not part of the stored answer: this request's own id and framing; the RateLimit fields
# describe the first request's debit, which a replay does not make.
_NOT_STORED: Final = frozenset({b"x-request-id", b"content-length", b"connection"})
# Set on the context by the routing stage; they describe the answer, so they are stored.
_ROUTE_HEADERS: Final[tuple[str, ...]] = ("X-Route-Node", "X-Route-Attempts")
_REPLAYED: Final = (b"idempotent-replayed", b"true")
_FIRST_PAUSE_S: Final = 0.05
_LONGEST_PAUSE_S: Final = 1.0


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        value = next((v for k, v in scope["headers"] if k == _HEADER), None)
        if value is None:
            await self.app(scope, receive, send)
            return
        services = services_of(scope)
        context = context_of(scope)
        key_text = parse_key(value.decode("latin-1"))
        body = await read_json_body(Request(scope, receive), services.settings.server)
        tenant = context.authenticated().tenant
        key = request_key(tenant, key_text, scope["method"], scope["path"], body)
        wait_s = min(
            preferences(Headers(scope=scope)).wait_s or 0.0,
            services.settings.idempotency.max_wait_s,
        )
        found = await _claim(services.idempotency, key, context.request_id, wait_s)
        if isinstance(found, Done):
            await _replay(found.answer, context, scope, receive, send)
            return
        recorder = _AnswerRecorder(services.idempotency, found, context, send)
        try:
            await self.app(scope, _body_once(body, receive), recorder.send)
        except ApiError as exc:
            if recorder.started or retryable(exc.status):
                raise
            # Rendered here, as the error handler would, so that its bytes are stored.
            response = await render_error(Request(scope), exc)
            await response(scope, receive, recorder.send)
        finally:
            if not recorder.ended:  # no last byte: a failure, a bug, or cancelled
                await services.idempotency.release(found)


async def _claim(
    claims: KeyClaims, key: RequestKey, request_id: str, wait_s: float
) -> Claimed | Done:
    """Claim ``key``, or its stored answer; while it runs elsewhere, ask again (with
    growing pauses) for ``wait_s``, then 409."""
    give_up_at = time.monotonic() + wait_s
    pause_s = _FIRST_PAUSE_S
    while True:
        found: ClaimResult = await claims.claim(key, request_id)
        if found == "mismatch":
            raise ApiError(
                "idempotency_key_mismatch",
                "this Idempotency-Key was used for a request with another method, path or "
                "body; use a new key for a new request",
            )
        if not isinstance(found, Running):
            return found
        left_s = give_up_at - time.monotonic()
        if left_s <= 0:
            raise ApiError(
                "idempotency_in_progress",
                f"the request {found.request_id} with this Idempotency-Key is still running; "
                "retry after a moment, or send 'Prefer: wait=<seconds>'",
            )
        await asyncio.sleep(min(pause_s, left_s))
        pause_s = min(pause_s * 2, _LONGEST_PAUSE_S)


class _AnswerRecorder:
    """Passes the answer on, keeping a copy; at its last byte (before it is sent) stores
    it under the key, or releases the key when the answer is worth retrying."""

    def __init__(
        self, claims: KeyClaims, claim: Claimed, context: RequestContext, send: Send
    ) -> None:
        self._claims = claims
        self._claim = claim
        self._context = context
        self._send = send
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self.started = False
        self.ended = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self._status = message["status"]
            self._headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
                if name.lower() not in _NOT_STORED
            ]
        elif message["type"] == "http.response.body":
            self._body.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = True
                await self._end()
        await self._send(message)

    async def _end(self) -> None:
        context = self._context
        # A stream's error travels inside its 200: its code says whether to keep it.
        failed = context.error_code is not None and retryable(CATALOG[context.error_code].status)
        if retryable(self._status) or failed:
            await self._claims.release(self._claim)
            return
        routed = [
            (n, context.response_headers[n])
            for n in _ROUTE_HEADERS
            if n in context.response_headers
        ]
        answer = StoredAnswer(
            request_id=context.request_id,
            model=context.usage.model,
            status=self._status,
            headers=self._headers + routed,
            body=b"".join(self._body),
        )
        await self._claims.store(self._claim, answer)


async def _replay(
    answer: StoredAnswer, context: RequestContext, scope: Scope, receive: Receive, send: Send
) -> None:
    context.replay_of = answer.request_id
    context.usage.model = answer.model
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in answer.headers]
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = [
        *headers,
        (b"content-length", str(len(answer.body)).encode()),
        _REPLAYED,
    ]
    await response(scope, receive, send)


def _body_once(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the handler: the body already read, then the client's own messages
    (a disconnect ends a stream)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
