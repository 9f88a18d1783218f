"""The RFC 9421 signature base of a request: shared by the verifier and our client.

Supported component identifiers (no parameters): the derived components ``@method``,
``@target-uri``, ``@authority``, ``@scheme``, ``@request-target``, ``@path``, ``@query``,
and any request header field by its lower-case name. A header field's value is its field
lines, each stripped, joined with ``", "`` (RFC 9421 section 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

DERIVED: Final = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)


class ComponentError(ValueError):
    """A covered component cannot be resolved on this request; the message says which."""


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a signature can cover, as received (server) or about to be sent (client)."""

    method: str
    scheme: str
    authority: str  # host[:port], lower case
    path: str  # as sent, percent-encoded; never empty
    query: str | None  # without the "?"; None when the target has none
    headers: dict[str, str]  # lower-case name -> combined value

    def resolve(self, name: str) -> str:
        if name in DERIVED:
            return self._derived(name)
        value = self.headers.get(name)
        if value is None:
            raise ComponentError(f"covered component {name!r} is not a header of this request")
        return value

    def _derived(self, name: str) -> str:
        query = "" if self.query is None else "?" + self.query
        if name == "@method":
            return self.method
        if name == "@path":
            return self.path
        if name == "@query":
            return "?" + (self.query or "")
        if name == "@authority":
            return self.authority
        if name == "@scheme":
            return self.scheme
        if name == "@request-target":
            return self.path + query
        return f"{self.scheme}://{self.authority}{self.path}{query}"  # @target-uri


def combine_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    combined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        stripped = value.strip()
        combined[key] = f"{combined[key]}, {stripped}" if key in combined else stripped
    return combined


def signature_base(view: RequestView, components: Sequence[str], params: str) -> bytes:
    """``"<component>": <value>`` lines, then ``"@signature-params": <params>``; ``params``
    is the serialized inner list exactly as it appears in ``Signature-Input``."""
    lines = [f'"{name}": {view.resolve(name)}' for name in components]
    lines.append(f'"@signature-params": {params}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        raise ComponentError("covered components must have ASCII values") from None
