"""The one place errors become HTTP responses: the catalog (``api_router.errors``) rendered
as the one JSON error shape, registered as Starlette's exception handlers."""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from api_router.api.public.openai_answers import OPENAI_PATHS, openai_error_body
from api_router.errors import CATALOG, ApiError, StoreUnavailable

log = logging.getLogger(__name__)


class ErrorBody(msgspec.Struct, frozen=True):
    type: str
    code: str
    message: str
    request_id: str | None


class ErrorResponse(msgspec.Struct, frozen=True):
    error: ErrorBody


def error_body(error: ApiError, request_id: str | None) -> bytes:
    kind = CATALOG[error.code]
    return msgspec.json.encode(
        ErrorResponse(ErrorBody(kind.type, error.code, error.message, request_id))
    )


def error_for_status(status: int) -> ApiError:
    """The catalog error for a bare HTTP status raised by the framework (404, 405...)."""
    if status == 404:
        return ApiError("not_found", "no such route")
    if status == 405:
        return ApiError("method_not_allowed", "method not allowed on this route")
    return ApiError("invalid_request", f"request rejected with status {status}")


async def render_error(request: Request, exc: Exception) -> Response:
    """Render any exception in the one JSON error shape.

    ``ApiError`` is ours; ``HTTPException`` comes from routing (404, 405); anything else is
    a bug, answered ``internal_error`` without details (the server log has them). The
    OpenAI-compatible routes get the same error in OpenAI's shape (with ``param``).
    """
    store = exc if isinstance(exc, StoreUnavailable) else exc.__cause__  # a node skipped
    if isinstance(store, StoreUnavailable):
        log.warning(store.for_operators)  # the client's answer does not name the server
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = error_for_status(exc.status_code)
    else:
        error = ApiError("internal_error", "internal error; the request id identifies it in logs")
    context = request.scope.get("api_router.context")
    request_id = context.request_id if context is not None else None
    headers = dict(error.headers)
    if error.status == 405:
        headers["Allow"] = _allowed_methods(request)
    if context is not None:
        context.error_code = error.code
        headers["x-request-id"] = context.request_id
    openai = request.scope.get("path") in OPENAI_PATHS
    return Response(
        openai_error_body(error, request_id) if openai else error_body(error, request_id),
        status_code=error.status,
        headers=headers,
        media_type="application/json",
    )


def _allowed_methods(request: Request) -> str:
    """Every method the path takes (RFC 9110 §15.5.6), over all of its routes: Starlette's
    own ``Allow`` names only the methods of the first route that matched the path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))
