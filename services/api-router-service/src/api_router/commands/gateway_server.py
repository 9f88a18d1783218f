"""uvicorn's server with the gateway's own shutdown in front of uvicorn's, and the garbage
collector tuned once start-up is done (``gc_tuning``).

uvicorn, on SIGTERM, stops listening at once, waits for in-flight requests and cancels
those still running at its timeout: a load balancer's requests then meet a closed port,
and the cancelled ones become 500s with a traceback. Here the app's
:class:`~api_router.graceful_shutdown.GracefulShutdown` runs first, while the server still
listens (it refuses new requests, drains, answers the rest itself), and only then do
uvicorn's own steps run: stop listening, close the connections (none is busy by then),
and the lifespan's shutdown (background tasks, then clients).
"""

from __future__ import annotations

import socket

import uvicorn

from api_router.gc_tuning import tune_for_serving
from api_router.graceful_shutdown import SHUTDOWN_STATE, GracefulShutdown

# uvicorn's own wait for requests, after the app's drain: for stragglers only.
AFTER_DRAIN_S = 1


class GatewayServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # the app and its lifespan's clients exist now
        tune_for_serving()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown = self.lifespan.state.get(SHUTDOWN_STATE)
        if isinstance(shutdown, GracefulShutdown) and not self.force_exit:
            # Connections stay as they are: closing the idle ones now would also drop a
            # request that has just arrived on one. Every answer during the drain closes
            # its connection instead (the shutdown middleware says `Connection: close`).
            await shutdown.run(give_up=lambda: self.force_exit)
        await super().shutdown(sockets)
