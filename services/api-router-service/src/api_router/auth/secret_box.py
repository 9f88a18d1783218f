"""Signing secrets at rest: sealed with AES-256-GCM under the key-encryption key (KEK).

The gateway must recover a signing secret to verify an HMAC, so unlike the bearer secret
it cannot be stored as a hash. A sealed secret reads ``v1:<base64(nonce || ciphertext)>``;
the version leaves room for KEK rotation. The associated data binds each ciphertext to its
key and secret ids, so a sealed secret copied into another record does not open.
"""

from __future__ import annotations

import base64
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION: Final = "v1:"
_NONCE_BYTES: Final = 12


class SealedSecretError(Exception):
    """A sealed secret does not open under this KEK (wrong KEK, or tampered data)."""


class SecretBox:
    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes (AES-256)")
        self._aead = AESGCM(kek)

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, bound_to: str) -> bytes:
        if not sealed.startswith(_VERSION):
            raise SealedSecretError("unknown sealed-secret version")
        blob = base64.b64decode(sealed[len(_VERSION) :])
        try:
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], bound_to.encode())
        except InvalidTag:
            raise SealedSecretError("the sealed secret does not open under this KEK") from None
