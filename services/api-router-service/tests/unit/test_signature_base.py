"""The canonical signature base and header parsing, without servers."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from api_router.auth.content_digest import BodyCheck, content_digest
from api_router.auth.signature_base import ComponentError, RequestView, signature_base
from api_router.auth.signature_input import (
    SignatureHeaderError,
    parse_canonical,
    parse_general,
    parse_signatures,
)
from api_router.errors import ApiError

# RFC 9421 appendix B.2.5: hmac-sha256 over "date", "@authority" and "content-type".
RFC_KEY = base64.b64decode(
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
)
RFC_INPUT = (
    'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
)
RFC_SIGNATURE = "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:"
RFC_REQUEST = RequestView(
    "POST",
    "https",
    "example.com",
    "/foo",
    "param=Value&Pet=dog",
    {"date": "Tue, 20 Apr 2021 02:07:55 GMT", "content-type": "application/json"},
)


def test_the_rfc_9421_hmac_example_verifies() -> None:
    [candidate] = parse_signatures(RFC_INPUT, RFC_SIGNATURE)
    base = signature_base(RFC_REQUEST, candidate.components, candidate.params)
    assert base.decode().splitlines() == [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT',
        '"@authority": example.com',
        '"content-type": application/json',
        '"@signature-params": ("date" "@authority" "content-type");created=1618884473'
        ';keyid="test-shared-secret"',
    ]
    assert hmac.compare_digest(hmac.digest(RFC_KEY, base, hashlib.sha256), candidate.signature)


def test_derived_components() -> None:
    view = RFC_REQUEST
    assert view.resolve("@query") == "?param=Value&Pet=dog"
    assert view.resolve("@request-target") == "/foo?param=Value&Pet=dog"
    assert view.resolve("@target-uri") == "https://example.com/foo?param=Value&Pet=dog"
    assert RequestView("GET", "http", "h", "/", None, {}).resolve("@query") == "?"
    with pytest.raises(ComponentError, match="'x-missing' is not a header"):
        view.resolve("x-missing")


def test_candidates_carry_their_parameters() -> None:
    [c] = parse_signatures(
        'a=("@method" "@path");created=5;expires=9;keyid="k1";nonce="n";alg="hmac-sha256"',
        "a=:AAAA:",
    )
    assert (c.label, c.components, c.created, c.expires, c.keyid, c.nonce, c.alg) == (
        "a",
        ("@method", "@path"),
        5,
        9,
        "k1",
        "n",
        "hmac-sha256",
    )
    assert c.signature == b"\x00\x00\x00"


@pytest.mark.parametrize(
    ("signature_input", "signature", "message"),
    [
        ("a=(", "a=:AAAA:", "not a valid structured-field dictionary"),
        ('a=("@method" "@method")', "a=:AAAA:", "covers a component twice"),
        ('a=("@method");created="x"', "a=:AAAA:", "created has the wrong type"),
        ('a=("@method")', "b=:AAAA:", "no byte sequence"),
        ("a=" + "x" * 5000, "a=:AAAA:", "longer than 4096"),
        (", ".join(f'l{i}=("@method")' for i in range(9)), "l0=:AAAA:", "more than 8"),
    ],
)
def test_unusable_headers_are_refused_with_a_reason(
    signature_input: str, signature: str, message: str
) -> None:
    with pytest.raises(SignatureHeaderError, match=message):
        parse_signatures(signature_input, signature)


def test_body_check() -> None:
    BodyCheck.from_header(content_digest(b"abc")).check(b"abc")
    with pytest.raises(ApiError) as mismatch:
        BodyCheck.from_header(content_digest(b"abc")).check(b"abd")
    assert mismatch.value.code == "digest_mismatch"
    with pytest.raises(ApiError) as uncovered:
        BodyCheck(None).check(b"x")
    assert uncovered.value.code == "malformed_signature"
    with pytest.raises(ApiError) as sha512_only:
        BodyCheck.from_header("sha-512=:" + base64.b64encode(b"x" * 64).decode() + ":")
    assert sha512_only.value.code == "digest_mismatch"


@pytest.mark.parametrize(
    "signature_input",
    [
        'sig1=("@method" "@path" "content-digest");created=1700000000;keyid="kabc";nonce="n-1_x"'
        ';alg="hmac-sha256"',
        'a=();created=0;keyid="k"',
        'pyhms=("@method" "@authority" "@target-uri");created=-5;expires=9;nonce="a b~";tag="t"',
        RFC_INPUT,
    ],
)
def test_the_fast_path_reads_canonical_headers_as_http_sfv_does(signature_input: str) -> None:
    label = signature_input.partition("=")[0]
    signature = f"{label}=:cHhjUXc2RzNBanRNQlFqd284WHprWmYvYndzNUxlbGJhTWs1ckdJR3RFOD0=:"
    fast = parse_canonical(signature_input, signature)
    assert fast is not None
    assert [fast] == parse_general(signature_input, signature)


@pytest.mark.parametrize(
    "signature_input",
    [
        'sig1=("@method");created=01;keyid="k"',  # a leading zero
        'sig1=("@method");keyid="k";keyid="j"',  # a repeated parameter: the last wins
        'sig1=( "@method");keyid="k"',  # optional whitespace
        'sig1=("@method");nonce="a\\\\b"',  # an escape
        'sig1=("@method"), sig2=("@path")',  # two signatures
    ],
)
def test_non_canonical_headers_take_the_general_path(signature_input: str) -> None:
    assert parse_canonical(signature_input, "sig1=:AAAA:") is None
