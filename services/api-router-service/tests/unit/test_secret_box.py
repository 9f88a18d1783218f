"""Signing secrets sealed under the KEK open only under it, for the key they belong to."""

from __future__ import annotations

import pytest

from api_router.auth.secret_box import SealedSecretError, SecretBox


def test_seal_and_open() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("arks_secret", "kid:sid")
    assert "arks_secret" not in sealed and sealed.startswith("v1:")
    assert box.open(sealed, "kid:sid") == b"arks_secret"
    assert box.seal("arks_secret", "kid:sid") != sealed  # a fresh nonce each time


def test_another_kek_or_another_key_does_not_open_it() -> None:
    sealed = SecretBox(bytes(32)).seal("arks_secret", "kid:sid")
    with pytest.raises(SealedSecretError):
        SecretBox(bytes([1]) * 32).open(sealed, "kid:sid")
    with pytest.raises(SealedSecretError):
        SecretBox(bytes(32)).open(sealed, "other:sid")


def test_the_kek_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(bytes(16))
