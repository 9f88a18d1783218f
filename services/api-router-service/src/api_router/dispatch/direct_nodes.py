"""The direct nodes of this gateway (``direct.nodes``): each one's backend adapter, the
same ``ollama`` / ``openai`` adapters the workers call, all on one pooled ``aiohttp``
session per gateway, and its count of requests in flight from this gateway.

One session (keep-alive, DNS cache, one connector) serves every direct node; a node's
``max_concurrency`` bounds the requests, and so the connections, this gateway has open to
it: a node at its limit is skipped as full, like a worker node whose backlog is full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from api_router.backends.api_key import ApiKeyFile, key_from_env
from api_router.backends.base import Backend
from api_router.backends.ollama import OllamaBackend
from api_router.backends.openai import OpenAIBackend
from api_router.config.settings import DirectNode, DirectSettings

# How long an idle connection to a direct node is kept for the next request.
_KEEPALIVE_S: Final = 30.0
_ADAPTERS: Final[dict[str, type[OllamaBackend] | type[OpenAIBackend]]] = {
    "ollama": OllamaBackend,
    "openai": OpenAIBackend,
}


@dataclass(slots=True)
class DirectTarget:
    """One direct node as this gateway calls it."""

    config: DirectNode
    backend: Backend
    inflight: int = 0

    def take(self) -> bool:
        """A slot for one request; False when the node is at its ``max_concurrency``."""
        if self.inflight >= self.config.max_concurrency:
            return False
        self.inflight += 1
        return True

    def give_back(self) -> None:
        self.inflight -= 1


class DirectNodes:
    """The configured direct nodes by id. Built inside the running loop (the session
    binds to it); ``aclose`` closes the pool."""

    def __init__(self, settings: DirectSettings) -> None:
        """Reads each node's API key now: a missing variable or file stops start-up."""
        self.settings = settings
        widest = max((node.max_concurrency for node in settings.nodes), default=1)
        connector = aiohttp.TCPConnector(
            limit=0,  # bounded per node, by its max_concurrency, instead
            limit_per_host=widest,
            keepalive_timeout=_KEEPALIVE_S,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        self._targets = {
            node.node_id: DirectTarget(node, self._adapter(node)) for node in settings.nodes
        }

    def _adapter(self, node: DirectNode) -> Backend:
        adapter = _ADAPTERS[node.flavour]
        backend: Backend = adapter(
            node.base_url, _api_key(node), self._session, self.settings.connect_timeout_s
        )
        return backend

    def get(self, node_id: str) -> DirectTarget | None:
        return self._targets.get(node_id)

    def __iter__(self) -> Iterator[DirectTarget]:
        return iter(self._targets.values())

    def __len__(self) -> int:
        return len(self._targets)

    async def aclose(self) -> None:
        await self._session.close()


def _api_key(node: DirectNode) -> Callable[[], str | None] | None:
    if node.api_key_file is not None:
        return ApiKeyFile(Path(node.api_key_file))
    if node.api_key_env is not None:
        key = key_from_env(node.api_key_env)
        return lambda: key
    return None
