"""``httpx.Auth`` that signs every request (see :class:`RequestSigner`)."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from api_router.auth.signature_base import RequestView, combine_headers
from api_router.client.signer import RequestSigner


class SignatureAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, signer: RequestSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.signer.sign(view_of(request), request.content))
        yield request


def view_of(request: httpx.Request) -> RequestView:
    url = request.url
    path = url.raw_path.partition(b"?")[0].decode("ascii") or "/"
    return RequestView(
        method=request.method.upper(),
        scheme=url.scheme,
        authority=request.headers.get("host", url.netloc.decode("ascii")).lower(),
        path=path,
        query=url.query.decode("ascii") if url.query else None,
        headers=combine_headers(request.headers.multi_items()),
    )
