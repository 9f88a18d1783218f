"""Reads a JSON request body within the size limit and the receive deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from api_router.api.invalid_utf8 import invalid_utf8_error
from api_router.api.request_context import CONTEXT_KEY
from api_router.config.settings import ServerSettings
from api_router.errors import ApiError

T = TypeVar("T")


async def read_json_body(request: Request, limits: ServerSettings) -> bytes:
    """The body, refused with 415 (not JSON), 413 (too large, before it is read whole),
    408 (not received within ``receive_timeout_s``) or, for a signed request, 401
    ``digest_mismatch`` (not the body its ``Content-Digest`` names)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            "unsupported_media_type", "send the body as 'Content-Type: application/json'"
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError("invalid_request", "the Content-Length header is not a number")
        if int(declared) > limits.max_body_bytes:
            raise _too_large(limits.max_body_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.receive_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _too_large(limits.max_body_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            "request_timeout", f"the body did not arrive within {limits.receive_timeout_s:g} s"
        ) from None
    except ClientDisconnect:
        raise ApiError("invalid_request", "the client closed the connection mid-body") from None
    body = b"".join(chunks)
    context = request.scope.get(CONTEXT_KEY)
    if context is not None and context.body_check is not None:
        context.body_check.check(body)  # a signed request: the body its signature covers
    return body


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"the body exceeds the limit of {limit} bytes")


def invalid_body(message: str) -> ApiError:
    return ApiError("invalid_request", f"invalid request body: {message}")


def decode_body(
    body: bytes,
    decoder: msgspec.json.Decoder[T],
    invalid: Callable[[str], ApiError] = invalid_body,
) -> T:
    """The body as ``decoder``'s type. Every failure is a 400 naming the field path at
    fault where there is one: ``invalid`` turns a validation message
    (``... - at `$.messages[0].role```) into the error."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:  # before DecodeError, its base class
        raise invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError("invalid_request", f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec's word for invalid UTF-8 inside a string
        raise invalid_utf8_error(body) from None
