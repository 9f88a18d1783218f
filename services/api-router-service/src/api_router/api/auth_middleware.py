"""Route-level middleware: authenticate the caller and require the route's scope."""

from __future__ import annotations

from functools import partial

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api_router.api.request_context import context_of
from api_router.auth.authenticator import KeyRefused, SignedParts, require_scope
from api_router.auth.key_store import Scope as KeyScope
from api_router.auth.signature_base import RequestView, combine_headers
from api_router.services import services_of


class AuthMiddleware:
    def __init__(self, app: ASGIApp, scopes: tuple[KeyScope, ...], billable: bool) -> None:
        self.app = app
        self.required_scopes = scopes  # any one of them will do
        self.billable = billable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        context = context_of(scope)
        context.billable = self.billable
        usage = context.usage
        signed = SignedParts(
            signature_input=headers.get("signature-input"),
            signature=headers.get("signature"),
            view=partial(request_view, scope, headers),
            has_body=_has_body(headers),
        )
        usage.auth_method = "signature" if signed.signature_input is not None else "api_key"
        try:
            authenticated = await services_of(scope).authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key"), signed
            )
        except KeyRefused as refused:
            usage.tenant, usage.key_id = refused.tenant, refused.key_id
            raise
        principal = authenticated.principal
        context.principal = principal
        context.body_check = authenticated.body_check
        usage.auth_method = principal.auth_method
        usage.tenant, usage.key_id = principal.tenant, principal.key_id
        context.telemetry.set_principal(principal.tenant, principal.key_id)
        require_scope(principal, self.required_scopes)
        await self.app(scope, receive, send)


def request_view(scope: Scope, headers: Headers) -> RequestView:
    """The request as its signature sees it: the target as sent (``raw_path``), not as
    decoded, and header fields combined per RFC 9421."""
    # Some servers (httpx's ASGI transport) put the query in raw_path too.
    raw_path: bytes = (scope.get("raw_path") or scope["path"].encode()).partition(b"?")[0]
    query: bytes = scope.get("query_string", b"")
    return RequestView(
        method=scope["method"],
        scheme=scope.get("scheme", "http"),
        authority=headers.get("host", "").lower(),
        path=raw_path.decode("latin-1") or "/",
        query=query.decode("latin-1") if query else None,
        headers=combine_headers(headers.items()),
    )


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("0", "")
    return "transfer-encoding" in headers
