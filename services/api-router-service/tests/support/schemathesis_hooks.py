"""Hooks of the schema-driven fuzz run (loaded by schemathesis through SCHEMATHESIS_HOOKS).

Importing this module is what registers them, as schemathesis expects of a hooks module:

- with ``FUZZ_SIGNING_KEY_ID`` and ``FUZZ_SIGNING_SECRET`` set, every request is signed
  (RFC 9421, the gateway's own signer) over its final bytes, as a ``requests`` auth that
  schemathesis treats as the configured credentials (its probes without them must fail);
- three adjustments, each with its reason below: whole floats are sent as integers, the
  run's own key (``FUZZ_KEY_ID``) is never revoked or stripped of a signing secret, and
  each call's Idempotency-Key is its own.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import schemathesis
from requests import PreparedRequest
from requests.auth import AuthBase

from api_router.api.public.idempotency_openapi import KEY_PATTERN
from api_router.auth.signature_base import RequestView, combine_headers
from api_router.client.signer import RequestSigner


class SignedRequests(AuthBase):
    """Signs a prepared request: method, path, query and the body's digest as sent."""

    def __init__(self, signer: RequestSigner) -> None:
        self.signer = signer

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body or b""
        assert isinstance(body, str | bytes), "schemathesis sends whole bodies"
        body = body.encode() if isinstance(body, str) else body
        headers = [(name, str(value)) for name, value in request.headers.items()]
        url = urlsplit(request.url or "")
        view = RequestView(
            method=(request.method or "GET").upper(),
            scheme=url.scheme,
            authority=url.netloc.lower(),
            path=url.path or "/",
            query=url.query or None,
            headers=combine_headers(headers),
        )
        request.headers.update(self.signer.sign(view, body))
        return request


if key_id := os.environ.get("FUZZ_SIGNING_KEY_ID"):
    signer = RequestSigner(key_id, os.environ["FUZZ_SIGNING_SECRET"])
    schemathesis.auth.set_from_requests(SignedRequests(signer))  # type: ignore[attr-defined]


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Whole floats (``5.0``) are sent as integers. Reason: JSON Schema's ``integer``
    admits ``5.0``, while the gateway decodes bodies strictly (msgspec), like the typed
    decoders of most languages (Go, Rust, Java): a count written with a fraction is
    refused with a 400 naming the field. A number field is still a number as ``5``."""
    return _whole_floats_as_integers(body)


# The calls that would take the run's own credentials away.
_LOCKOUTS = frozenset(
    {
        "POST /v1/admin/keys/{key_id}/revoke",
        "DELETE /v1/admin/keys/{key_id}/signing-secrets/{secret_id}",
    }
)
_NO_SUCH_KEY = "k" + "a" * 12


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    """A call that would revoke the run's own key, or delete a signing secret of it, goes to
    a key id nobody has (answered 404) instead. Reason: the fuzzer learns every key id from
    the key listing and the audit records, and once it has locked the run out, every later
    call is a 401 and tests nothing. Revoking and deleting are still exercised on the keys
    the run creates."""
    own = os.environ.get("FUZZ_KEY_ID")
    if case.operation.label in _LOCKOUTS and case.path_parameters.get("key_id") == own:
        case.path_parameters["key_id"] = _NO_SUCH_KEY
    _own_idempotency_key(case)


_calls = itertools.count()
_RUN = uuid.uuid4().hex[:8]  # the two runs share a gateway, and so their keys' tenant


def _own_idempotency_key(case: schemathesis.Case[Any]) -> None:
    """A generated Idempotency-Key that fits the document gets a suffix of its own call.
    Reason: the fuzzer sends the same few keys (``0``, ``A``...) with different bodies,
    which is rightly a 422 (a key reused for another request), and a valid body answered
    422 reads as a rejection of valid data. Keys that do not fit are sent as generated
    (still answered 400)."""
    if case.headers is None:
        return
    key = case.headers.get("Idempotency-Key")
    if isinstance(key, str) and re.fullmatch(KEY_PATTERN, key) and len(key) < 240:
        case.headers["Idempotency-Key"] = f"{key}-{_RUN}-{next(_calls)}"


def _whole_floats_as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_integers(item) for item in value]
    return value
