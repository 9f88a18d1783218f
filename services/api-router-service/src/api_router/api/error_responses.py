"""The one place errors become HTTP responses (registered as Starlette exception handlers)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.errors import ApiError, error_body, error_for_status
from api_router.api.public.openai_contract import OPENAI_PATHS, openai_error_body


async def render_error(request: Request, exc: Exception) -> Response:
    """Render any exception in the one JSON error shape.

    ``ApiError`` is ours; ``HTTPException`` comes from routing (404, 405); anything else is
    a bug, answered ``internal_error`` without details (the server log has them). The
    OpenAI-compatible routes get the same error in OpenAI's shape (with ``param``).
    """
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = error_for_status(exc.status_code)
    else:
        error = ApiError("internal_error", "internal error; the request id identifies it in logs")
    context = request.scope.get("api_router.context")
    request_id = context.request_id if context is not None else None
    headers = dict(error.headers)
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
