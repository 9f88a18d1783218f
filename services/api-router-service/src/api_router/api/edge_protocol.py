"""uvicorn's httptools protocol with deadlines and limits on request heads.

ASGI middleware runs once a request head is complete: too late against a client that never
finishes one, or sends one without end. So the edge is guarded here, in the protocol that
reads the bytes (uvicorn takes the class as ``Config(http=...)``):

- **Idle**: a connection that sends nothing is closed after ``keep_alive_s``; uvicorn arms
  that timer only after a response, so a connection that never sent a byte was held forever.
- **Head deadline**: once a head's first byte arrives, the whole head has
  ``header_timeout_s``. Past it: 408 and close (only close, after the response, when an
  earlier pipelined request is still being answered). Trickled bytes do not extend it.
- **Head size and count**: more than ``max_head_bytes`` of head or more than
  ``max_headers`` fields is 431 ``headers_too_large``, refused before more than the limit
  (plus the one read that crossed it) reaches the parser, which buffers what it is fed.
- **Unread bodies**: a body still arriving after its response (a refusal answered before
  the body was read) gets ``header_timeout_s`` to finish, not forever.
- Malformed requests are answered in the one JSON error shape (uvicorn's is plain text).

The refusals here have no request context; each gets its own request id, in the answer and
in the log line, like every other answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from asyncio import TimerHandle
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from api_router.api.error_responses import error_body
from api_router.api.request_context import new_request_id
from api_router.config.settings import ServerSettings
from api_router.errors import ApiError

log = logging.getLogger(__name__)

# The empty line that ends a head (llhttp also takes bare LFs).
_HEAD_END = re.compile(rb"\n\r?\n")


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing; ``data_received`` answers."""


class EdgeProtocol(HttpToolsProtocol):
    limits: ClassVar[ServerSettings]  # bound by edge_protocol()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        # When the head being read (or a body left unread) must be done; None: nothing is
        # due. One timer at most, re-armed lazily when it fires early (see _deadline_passed),
        # so a request costs a clock read, not a timer of its own.
        self._due_at: float | None = None
        self._timer: TimerHandle | None = None
        # A head is awaited or being read (from the end of one message to the next head's
        # end); its bytes so far, and the last few of them (a head end split across reads).
        self._reading_head = True
        self._head_bytes = 0
        self._head_tail = b""
        self._read_size = 0  # of the read being parsed
        self._refusal: ApiError | None = None

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._reading_head:
            if self._due_at is None:
                self._set_deadline()
            if not self._head_fits(data):
                limit = self.limits.max_head_bytes
                self._refuse(_too_large(f"the request head exceeds {limit} bytes"))
                return
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # As uvicorn does; the gateway serves no WebSocket route, so the router says 404.
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self._refuse(self._refusal or ApiError("invalid_request", "malformed HTTP request"))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._reading_head and not self.transport.is_closing():
            self._set_deadline()  # the rest of an unread body: see the module docstring

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._due_at is None:
            # A head that began in the read that ended the previous message: its deadline
            # starts now, and the whole read counts against its size (never less than it).
            self._set_deadline()
            self._head_bytes = self._read_size

    def on_header(self, name: bytes, value: bytes) -> None:
        limit = self.limits.max_headers
        if len(self.headers) >= limit:
            self._refusal = _too_large(f"a request head may have at most {limit} header fields")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._due_at = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._due_at = None
        self._reading_head = True
        self._head_bytes = 0
        self._head_tail = b""

    # -- limits and deadlines ------------------------------------------------------------

    def _head_fits(self, data: bytes) -> bool:
        """Count ``data`` against the head limit. A read that crosses the limit is still
        fine when the head ends inside the room that was left (the rest is body)."""
        room = self.limits.max_head_bytes - self._head_bytes
        self._head_bytes += len(data)
        fits = len(data) <= room or (
            room > 0 and _HEAD_END.search(self._head_tail + data[:room]) is not None
        )
        self._head_tail = data[-3:] if len(data) >= 3 else (self._head_tail + data)[-3:]
        return fits

    def _set_deadline(self) -> None:
        self._due_at = self.loop.time() + self.limits.header_timeout_s
        if self._timer is None:
            self._timer = self.loop.call_later(self.limits.header_timeout_s, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._timer = None
        if self._due_at is None or self.transport.is_closing():
            return  # what was due is done (and nothing new is due yet)
        left = self._due_at - self.loop.time()
        if left > 0:  # a later head or body than the one the timer was set for
            self._timer = self.loop.call_later(left, self._deadline_passed)
            return
        self._due_at = None
        if not self._reading_head:  # a body left unread after its response
            self.transport.close()
        elif self.cycle is None or self.cycle.response_complete:
            seconds = f"{self.limits.header_timeout_s:g}"
            self._refuse(
                ApiError("request_timeout", f"the request head did not arrive within {seconds} s")
            )
        else:  # an earlier pipelined request is still being answered: close after it
            self.cycle.keep_alive = False
            self.flow.pause_reading()

    def _refuse(self, error: ApiError) -> None:
        """Answer ``error`` (the one JSON shape, a fresh request id) and close."""
        self._due_at = None
        request_id = new_request_id()
        body = error_body(error, request_id)
        head = (
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"x-request-id: %s\r\nconnection: close\r\n\r\n"
        ) % (len(body), request_id.encode())
        self.transport.write(STATUS_LINE[error.status] + head + body)
        self.transport.close()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.info(
            "request refused at the edge",
            extra={
                "request_id": request_id,
                "code": error.code,
                "status": error.status,
                "client": client,
            },
        )


def _too_large(message: str) -> ApiError:
    return ApiError("headers_too_large", message)


def edge_protocol(limits: ServerSettings) -> type[EdgeProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, bound to ``limits``."""
    return type("BoundEdgeProtocol", (EdgeProtocol,), {"limits": limits})
