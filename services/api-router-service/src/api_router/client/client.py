"""A small synchronous client of the gateway that signs every request."""

from __future__ import annotations

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
        self, model: str, messages: list[dict[str, str]], **options: Any
    ) -> dict[str, Any]:
        """``POST /v1/inference`` (not streamed); ``options``: temperature, max_tokens, ..."""
        body: dict[str, Any] = {"model": model, "messages": messages}
        if options:
            body["options"] = options
        return self.request("POST", "/v1/inference", json=body)

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        answer: dict[str, Any] = response.json()
        if response.is_error:
            error = answer.get("error", {})
            raise GatewayError(
                response.status_code, error.get("code", ""), error.get("message", "")
            )
        return answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
