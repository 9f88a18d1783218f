"""Refuses new requests while the gateway shuts down, and answers the requests its grace
could not wait for (see ``graceful_shutdown.py`` for the steps).

Every request but the operational ones runs under a cut-off timeout with no deadline; the
shutdown's last step sets it to "now". The request's task is then cancelled where it
waits, and this middleware, not the server, answers: 503 ``shutting_down`` if nothing was
sent yet, else the end of the body. So a shutdown never turns into a 500 or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_router.api.error_responses import render_error
from api_router.api.routes import OPERATIONAL_PATHS
from api_router.errors import ShuttingDown
from api_router.graceful_shutdown import GracefulShutdown
from api_router.services import services_of

log = logging.getLogger(__name__)

# How long the end of a cut-off body may take to go out (its client may not be reading).
_FAREWELL_S = 0.1


class ShutdownMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL_PATHS:
            await self.app(scope, receive, send)
            return
        shutdown = services_of(scope).shutdown
        if shutdown.draining:
            await _answer(scope, receive, send, ShuttingDown("the gateway is shutting down"))
            return
        response = _ResponseState(send, shutdown)
        try:
            async with asyncio.timeout(None) as cut_off:
                shutdown.enter(cut_off)
                try:
                    await self.app(scope, receive, response.send)
                finally:
                    shutdown.leave(cut_off)
        except TimeoutError:
            if not cut_off.expired():
                raise  # not ours: a bug below, for the error middleware
            log.warning("request cut off by the shutdown", extra={"answered": response.started})
            if not response.started:
                error = ShuttingDown("the gateway shut down before the request was answered")
                await _answer(scope, receive, send, error)
            elif not response.complete:
                with contextlib.suppress(TimeoutError):  # best effort: it may not be reading
                    async with asyncio.timeout(_FAREWELL_S):
                        await send({"type": "http.response.body", "more_body": False})


class _ResponseState:
    """What of the response has gone out; an answer that starts while the gateway drains
    closes its connection, so the client's next request goes to another replica."""

    def __init__(self, send: Send, shutdown: GracefulShutdown) -> None:
        self._send = send
        self._shutdown = shutdown
        self.started = False
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self._shutdown.draining:
                MutableHeaders(scope=message)["connection"] = "close"
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)


async def _answer(scope: Scope, receive: Receive, send: Send, error: ShuttingDown) -> None:
    response = await render_error(Request(scope, receive), error)
    await response(scope, receive, send)
