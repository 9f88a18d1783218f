"""Translates httpx and decoding failures of HTTP backends into ``BackendError``, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import msgspec

from api_router.backends.base import BackendError


@contextmanager
def backend_errors(backend: str, model: str = "") -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise BackendError(
            "backend_timeout", f"{backend} did not answer in time", retryable=True
        ) from None
    except httpx.HTTPStatusError as exc:
        raise _status_error(backend, model, exc.response) from None
    except httpx.TransportError as exc:
        raise BackendError(
            "backend_unavailable", f"{backend} unreachable: {type(exc).__name__}", retryable=True
        ) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BackendError(
            "backend_error", f"{backend} sent an unreadable answer: {exc}", retryable=False
        ) from None


def _status_error(backend: str, model: str, response: httpx.Response) -> BackendError:
    status = response.status_code
    if status == 404 and model:
        return BackendError(
            "model_not_found", f"{backend} does not serve {model!r}", retryable=True
        )
    return BackendError(
        "backend_error", f"{backend} answered HTTP {status}", retryable=status >= 500
    )
