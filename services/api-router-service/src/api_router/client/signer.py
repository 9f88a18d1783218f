"""Signs a request the way the gateway verifies it: RFC 9421 ``hmac-sha256`` over
``@method``, ``@path``, ``@query`` (when there is a query) and ``content-digest`` (when
there is a body, RFC 9530 ``sha-256``), with ``created``, a fresh ``nonce`` and ``keyid``.
The HMAC key is the signing secret's ASCII characters, exactly as the gateway showed them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence

from api_router.auth.content_digest import content_digest
from api_router.auth.signature_base import RequestView, signature_base


class RequestSigner:
    def __init__(
        self,
        key_id: str,
        signing_secret: str,
        *,
        label: str = "sig1",
        extra_components: Sequence[str] = (),
        expires_in_s: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_id = key_id
        self._secret = signing_secret.encode("ascii")
        self._label = label
        self._extra = tuple(extra_components)
        self._expires_in_s = expires_in_s
        self._clock = clock

    def sign(self, view: RequestView, body: bytes, nonce: str | None = None) -> dict[str, str]:
        """The headers to add: ``Content-Digest`` (with a body), ``Signature-Input`` and
        ``Signature``. ``view.headers`` must already hold every covered header."""
        added: dict[str, str] = {}
        headers = dict(view.headers)
        components = ["@method", "@path"]
        if view.query is not None:
            components.append("@query")
        if body:
            added["content-digest"] = headers["content-digest"] = content_digest(body)
            components.append("content-digest")
        components += [c for c in self._extra if c not in components]
        created = int(self._clock())
        params = "(" + " ".join(f'"{c}"' for c in components) + f");created={created}"
        if self._expires_in_s is not None:
            params += f";expires={created + self._expires_in_s}"
        nonce = nonce or secrets.token_urlsafe(24)
        params += f';keyid="{self.key_id}";nonce="{nonce}";alg="hmac-sha256"'
        signed_view = RequestView(
            view.method, view.scheme, view.authority, view.path, view.query, headers
        )
        base = signature_base(signed_view, components, params)
        mac = hmac.digest(self._secret, base, hashlib.sha256)
        added["signature-input"] = f"{self._label}={params}"
        added["signature"] = f"{self._label}=:{base64.b64encode(mac).decode()}:"
        return added
