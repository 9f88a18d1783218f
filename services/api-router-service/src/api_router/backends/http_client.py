"""The HTTP client of the HTTP backends (aiohttp), and the one place its errors become ours.

aiohttp rather than httpx on this hop: against the same fake Ollama, a pooled aiohttp
session spends 0.23 ms per call at the median where an httpx.AsyncClient spends 0.78 ms
(bench/backend_hop.py), and this hop is on every request's path.

A backend that needs a key gets it as a bearer token on every call, and only on calls to
its own base URL: redirects are never followed (one would take the key elsewhere), and no
error message carries it (aiohttp's exceptions can hold the request's headers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import msgspec

from api_router.backends.base import BackendError
from api_router.dispatch.protocol import ErrorReason

T = TypeVar("T")
# A backend's own words on a refused request are kept, up to this length.
_DETAIL_CHARS = 500
_detail = msgspec.json.Decoder(dict[str, Any])


class JsonHttpClient:
    """JSON requests to one backend base URL, raising only ``BackendError``."""

    def __init__(
        self,
        base_url: str,
        backend: str,
        api_key: Callable[[], str | None] | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """``api_key``: the backend's key as of now (it may be rotated while we run).
        ``session``: a pool shared with other backends (the gateway's direct transport),
        which its owner closes; without one the client opens its own.
        ``connect_timeout_s``: bound on opening a connection (inside each call's own)."""
        self._base_url = base_url.rstrip("/")
        self._backend = backend
        self._api_key = api_key or (lambda: None)
        self._session = session
        self._owns_session = session is None
        self._connect_timeout_s = connect_timeout_s

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
                headers=self._headers(json=True),
                timeout=self._timeout(timeout_s),
                allow_redirects=False,
            ) as response:
                if response.status >= 300:
                    self._check(response.status, model, await response.read())
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
            raise self._error(
                "backend_unavailable", f"unreachable ({_describe(exc)})", True
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a line over 128 KiB
            raise self._error("backend_error", f"failed ({_describe(exc)})", True) from None

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None, timeout_s: float, model: str
    ) -> bytes:
        session = self._open()
        try:
            async with session.request(
                method,
                self._base_url + path,
                data=body,
                headers=self._headers(json=body is not None),
                timeout=self._timeout(timeout_s),
                allow_redirects=False,
            ) as response:
                content = await response.read()
        except TimeoutError:
            raise self._error("backend_timeout", "did not answer in time", True) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._error(
                "backend_unavailable", f"unreachable ({_describe(exc)})", True
            ) from None
        except aiohttp.ClientError as exc:
            raise self._error("backend_error", f"failed ({_describe(exc)})", True) from None
        self._check(response.status, model, content)
        return content

    def _headers(self, json: bool) -> dict[str, str]:
        headers = {"content-type": "application/json"} if json else {}
        key = self._api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _timeout(self, total_s: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total_s, sock_connect=self._connect_timeout_s)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the running loop
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        return self._session

    def _check(self, status: int, model: str, content: bytes) -> None:
        if status < 300:
            return
        if status < 400:
            raise self._error(
                "backend_error",
                f"answered a redirect (HTTP {status}), which is not followed: "
                "point the backend URL at where it leads",
                False,
            )
        if status == 404 and model:
            raise self._error("model_not_found", f"does not serve {model!r}", True)
        if status in (400, 422):  # the request itself: another node would refuse it too
            raise self._error("invalid_request", _refusal(status, content), False)
        raise self._error("backend_error", f"answered HTTP {status}", status >= 500)

    def decode(self, reply: msgspec.json.Decoder[T], content: bytes) -> T:
        try:
            return reply.decode(content)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise self._error("backend_error", f"sent an unreadable answer: {exc}", False) from None

    def _error(self, reason: ErrorReason, what: str, retryable: bool) -> BackendError:
        message = f"{self._backend} {what}"
        key = self._api_key()
        if key:  # whatever a backend or a library put in a message, the key stays here
            message = message.replace(key, "[redacted]")
        return BackendError(reason, message, retryable=retryable)


def _refusal(status: int, content: bytes) -> str:
    """What the backend said about the request it refused: OpenAI's ``{"error":
    {"message"}}``, Ollama's ``{"error": "..."}``, else just the status."""
    try:
        error = _detail.decode(content).get("error")
    except (msgspec.DecodeError, UnicodeDecodeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str) or not error:
        return f"refused the request (HTTP {status})"
    return f"refused the request (HTTP {status}): {error[:_DETAIL_CHARS]}"


def _describe(exc: Exception) -> str:
    """An aiohttp error without what its repr may hold: a response error's request info
    (headers included) is left out."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: HTTP {exc.status} {exc.message}"
    return repr(exc)
