"""A small synchronous client of the gateway that signs every request."""

from __future__ import annotations

import time
from typing import Any

import httpx

from api_router.client.auth import SignatureAuth
from api_router.client.signer import RequestSigner


class GatewayError(Exception):
    """The gateway answered an error; ``code`` is its catalog code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Client:
    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        signing_secret: str,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            auth=SignatureAuth(RequestSigner(key_id, signing_secret)),
            timeout=timeout_s,
            transport=transport,
        )

    def inference(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """``POST /v1/inference`` (not streamed); ``options``: temperature, max_tokens, ...
        With ``idempotency_key``, a retry with the same key and request gets the first
        answer again instead of a second run (and a second bill)."""
        headers = _keyed({}, idempotency_key)
        return self.request(
            "POST", "/v1/inference", json=_body(model, messages, options), headers=headers
        )

    def submit(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> str:
        """Submit an asynchronous job (``Prefer: respond-async``) and return its request id
        at once; :meth:`result` fetches its answer. With ``idempotency_key``, submitting
        again (after a timeout, say) returns the same job."""
        headers = _keyed({"Prefer": "respond-async"}, idempotency_key)
        job = self.request(
            "POST", "/v1/inference", json=_body(model, messages, options), headers=headers
        )
        request_id: str = job["id"]
        return request_id

    def result(self, request_id: str, *, wait_s: float = 0.0) -> dict[str, Any] | None:
        """The answer of job ``request_id`` (as :meth:`inference` returns it), or None if
        it is still running after ``wait_s`` seconds of polling (at the pace the gateway's
        ``Retry-After`` asks for). Raises ``GatewayError`` when the job failed, was
        cancelled (410 ``job_cancelled``) or is unknown (404)."""
        give_up_at = time.monotonic() + wait_s
        while True:
            response = self._http.get(f"/v1/inference/{request_id}")
            if response.status_code != 202:
                return _answer(response)
            pause_s = float(response.headers.get("retry-after", "1"))
            left_s = give_up_at - time.monotonic()
            if left_s <= 0:
                return None
            time.sleep(min(pause_s, left_s))

    def cancel(self, request_id: str) -> dict[str, Any]:
        """Cancel job ``request_id`` (``DELETE``): its node stops generating."""
        return self.request("DELETE", f"/v1/inference/{request_id}")

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _answer(self._http.request(method, path, **kwargs))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _answer(response: httpx.Response) -> dict[str, Any]:
    answer: dict[str, Any] = response.json()
    if response.is_error:
        error = answer.get("error", {})
        raise GatewayError(response.status_code, error.get("code", ""), error.get("message", ""))
    return answer


def _body(model: str, messages: list[dict[str, str]], options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages}
    if options:
        body["options"] = options
    return body


def _keyed(headers: dict[str, str], idempotency_key: str | None) -> dict[str, str]:
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers
