"""The 400 for a JSON body with invalid UTF-8, naming the field that holds it.

msgspec reports invalid UTF-8 inside a JSON string as a bare ``UnicodeDecodeError``,
without a path. To name the field anyway (only ever on this error path), the body is
decoded again, untyped, with the first invalid sequence replaced by a marker no client
sends, and the marker is looked for (a key holding it is named by its object's path).
"""

from __future__ import annotations

import secrets

import msgspec

from api_router.errors import ApiError


def invalid_utf8_error(body: bytes) -> ApiError:
    """``invalid_request`` naming the field path (``$.messages[0].content``), the byte and
    its offset; ``param`` is the path without ``$.`` (OpenAI's spelling)."""
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        start, end = exc.start, exc.end
    else:  # msgspec found invalid UTF-8 where Python finds none: say so plainly
        return ApiError("invalid_request", "the body is not valid UTF-8")
    path = _field_path(body, start, end)
    where = f" in {path}" if path else ""
    return ApiError(
        "invalid_request",
        f"the body is not valid UTF-8{where} (byte 0x{body[start]:02x} at offset {start})",
        param=path.removeprefix("$.") if path and path != "$" else None,
    )


def _field_path(body: bytes, start: int, end: int) -> str | None:
    marker = "\ue000" + secrets.token_hex(8)  # a private-use character and 64 random bits
    text = body[:start].decode() + marker + body[end:].decode(errors="replace")
    try:
        tree = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # not JSON anyway: no path to name
        return None
    return _find(tree, marker)


def _find(tree: object, marker: str) -> str | None:
    """The path of the string, or of the object with the key, holding ``marker``
    (iteratively: a deeply nested body must not exhaust the interpreter's stack)."""
    pending: list[tuple[object, str]] = [(tree, "$")]
    while pending:
        node, path = pending.pop()
        if isinstance(node, str) and marker in node:
            return path
        if isinstance(node, dict):
            if any(marker in key for key in node):
                return path
            pending.extend((value, f"{path}.{key}") for key, value in node.items())
        elif isinstance(node, list):
            pending.extend((item, f"{path}[{i}]") for i, item in enumerate(node))
    return None
