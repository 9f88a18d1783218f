"""The HTTP client of the HTTP backends (aiohttp), and the one place its errors become ours.

aiohttp rather than httpx on this hop: against the same fake Ollama, a pooled aiohttp
session spends 0.23 ms per call at the median where an httpx.AsyncClient spends 0.78 ms
(bench/backend_hop.py), and this hop is on every request's path.
"""

from __future__ import annotations

from typing import TypeVar

import aiohttp
import msgspec

from api_router.backends.base import BackendError
from api_router.dispatch.protocol import ErrorReason

T = TypeVar("T")


class JsonHttpClient:
    """JSON requests to one backend base URL, raising only ``BackendError``."""

    def __init__(self, base_url: str, backend: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._backend = backend
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self,
        path: str,
        body: object,
        reply: msgspec.json.Decoder[T],
        timeout_s: float,
        model: str = "",
    ) -> T:
        content = await self._request("POST", path, msgspec.json.encode(body), timeout_s, model)
        return self._decode(reply, content)

    async def get(self, path: str, reply: msgspec.json.Decoder[T], timeout_s: float) -> T:
        return self._decode(reply, await self._request("GET", path, None, timeout_s, ""))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None, timeout_s: float, model: str
    ) -> bytes:
        if self._session is None:  # created on first use, inside the running loop
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            async with self._session.request(
                method, self._base_url + path, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:  # fmt: skip
                content = await response.read()
        except TimeoutError:
            raise self._error("backend_timeout", "did not answer in time", True) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._error("backend_unavailable", f"unreachable ({exc!r})", True) from None
        except aiohttp.ClientError as exc:
            raise self._error("backend_error", f"failed ({exc!r})", True) from None
        if response.status == 404 and model:
            raise self._error("model_not_found", f"does not serve {model!r}", True)
        if response.status >= 400:
            status = response.status
            raise self._error("backend_error", f"answered HTTP {status}", status >= 500)
        return content

    def _decode(self, reply: msgspec.json.Decoder[T], content: bytes) -> T:
        try:
            return reply.decode(content)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise self._error("backend_error", f"sent an unreadable answer: {exc}", False) from None

    def _error(self, reason: ErrorReason, what: str, retryable: bool) -> BackendError:
        return BackendError(reason, f"{self._backend} {what}", retryable=retryable)
