"""Parses ``Signature-Input`` and ``Signature`` (RFC 8941 dictionaries) into candidates.

Bounded before parsing: a header over ``MAX_HEADER_BYTES`` or with more than
``MAX_SIGNATURES`` members is refused whole, so junk costs little to reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

_T = TypeVar("_T")

MAX_HEADER_BYTES: Final = 4096
MAX_SIGNATURES: Final = 8
MAX_COMPONENTS: Final = 32


class SignatureHeaderError(ValueError):
    """The signature headers cannot be used; the message tells the client why."""


@dataclass(frozen=True, slots=True)
class Candidate:
    label: str
    components: tuple[str, ...]
    params: str  # the serialized inner list: the value of "@signature-params"
    signature: bytes
    keyid: str | None
    created: int | None
    expires: int | None
    nonce: str | None
    alg: str | None


def parse_signatures(signature_input: str, signature: str) -> list[Candidate]:
    inputs = _dictionary("Signature-Input", signature_input)
    values = _dictionary("Signature", signature)
    candidates = []
    for label, member in inputs.items():
        if not isinstance(member, InnerList):
            raise SignatureHeaderError(f"Signature-Input member {label!r} must be an inner list")
        value = values.get(label)
        if not isinstance(value, Item) or not isinstance(value.value, bytes):
            raise SignatureHeaderError(
                f"Signature has no byte sequence (:base64:) for the label {label!r}"
            )
        candidates.append(_candidate(label, member, value.value))
    return candidates


def _dictionary(header: str, text: str) -> Dictionary:
    if len(text) > MAX_HEADER_BYTES:
        raise SignatureHeaderError(f"{header} is longer than {MAX_HEADER_BYTES} bytes")
    parsed = Dictionary()
    try:
        parsed.parse(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SignatureHeaderError(
            f"{header} is not a valid structured-field dictionary (RFC 8941)"
        ) from None
    if len(parsed) > MAX_SIGNATURES:
        raise SignatureHeaderError(f"{header} has more than {MAX_SIGNATURES} members")
    return parsed


def _candidate(label: str, member: InnerList, signature: bytes) -> Candidate:
    if len(member) > MAX_COMPONENTS:
        raise SignatureHeaderError(
            f"signature {label!r} covers more than {MAX_COMPONENTS} components"
        )
    components = []
    for item in member:
        if not isinstance(item.value, str) or item.params:
            raise SignatureHeaderError(
                f'signature {label!r}: components must be plain strings such as "@method" '
                "(component parameters are not supported)"
            )
        components.append(item.value)
    if len(set(components)) != len(components):
        raise SignatureHeaderError(f"signature {label!r} covers a component twice")
    params = member.params
    return Candidate(
        label=label,
        components=tuple(components),
        params=str(member),
        signature=signature,
        keyid=_typed(label, params.get("keyid"), str, "keyid"),
        created=_typed(label, params.get("created"), int, "created"),
        expires=_typed(label, params.get("expires"), int, "expires"),
        nonce=_typed(label, params.get("nonce"), str, "nonce"),
        alg=_typed(label, params.get("alg"), str, "alg"),
    )


def _typed(label: str, value: object, kind: type[_T], name: str) -> _T | None:
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SignatureHeaderError(f"signature {label!r}: {name} has the wrong type")
    return value
