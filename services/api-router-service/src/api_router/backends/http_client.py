"""The HTTP client of the HTTP backends (aiohttp), and the one place its errors become ours.

aiohttp rather than httpx on this hop: against the same fake Ollama, a pooled aiohttp
session spends 0.23 ms per call at the median where an httpx.AsyncClient spends 0.78 ms
(bench/backend_hop.py), and this hop is on every request's path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
        return self.decode(reply, content)

    async def get(self, path: str, reply: msgspec.json.Decoder[T], timeout_s: float) -> T:
        return self.decode(reply, await self._request("GET", path, None, timeout_s, ""))

    async def post_streaming(
        self, path: str, body: object, timeout_s: float, model: str = ""
    ) -> AsyncIterator[bytes]:
        """The non-empty lines of a streamed answer (NDJSON or server-sent events) as they
        arrive. Closing the iterator early closes the connection, which is how a backend
        learns that nobody wants the rest (Ollama and vLLM then stop generating)."""
        session = self._open()
        finished = False
        try:
            async with session.post(
                self._base_url + path,
                data=msgspec.json.encode(body),
                headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                if response.status >= 400:
                    await response.read()
                    self._check(response.status, model)
                try:
                    async for line in response.content:
                        if line.strip():
                            yield line.strip()
                    finished = True
                finally:
                    if not finished:  # cancelled, or the consumer stopped: drop the connection
                        response.close()
        except TimeoutError:
            raise self._error("backend_timeout", "did not answer in time", True) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._error("backend_unavailable", f"unreachable ({exc!r})", True) from None
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a line over 128 KiB
            raise self._error("backend_error", f"failed ({exc!r})", True) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None, timeout_s: float, model: str
    ) -> bytes:
        session = self._open()
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            async with session.request(
                method,
                self._base_url + path,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                content = await response.read()
        except TimeoutError:
            raise self._error("backend_timeout", "did not answer in time", True) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._error("backend_unavailable", f"unreachable ({exc!r})", True) from None
        except aiohttp.ClientError as exc:
            raise self._error("backend_error", f"failed ({exc!r})", True) from None
        self._check(response.status, model)
        return content

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the running loop
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        return self._session

    def _check(self, status: int, model: str) -> None:
        if status == 404 and model:
            raise self._error("model_not_found", f"does not serve {model!r}", True)
        if status >= 400:
            raise self._error("backend_error", f"answered HTTP {status}", status >= 500)

    def decode(self, reply: msgspec.json.Decoder[T], content: bytes) -> T:
        try:
            return reply.decode(content)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise self._error("backend_error", f"sent an unreadable answer: {exc}", False) from None

    def _error(self, reason: ErrorReason, what: str, retryable: bool) -> BackendError:
        return BackendError(reason, f"{self._backend} {what}", retryable=retryable)
