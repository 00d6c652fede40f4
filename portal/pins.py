"""Top-up card PINs: a keyed hash for lookup and Fernet encryption for authorised reveal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from flask import current_app


def _keys(secret: str) -> tuple[bytes, bytes]:
    # Two independent keys from one configured secret: one to hash, one to encrypt.
    hash_key = hashlib.sha256(b"pin-hash:" + secret.encode()).digest()
    enc_key = base64.urlsafe_b64encode(hashlib.sha256(b"pin-enc:" + secret.encode()).digest())
    return hash_key, enc_key


class PinVault:
    def __init__(self, secret: str):
        self._hash_key, enc_key = _keys(secret)
        self._fernet = Fernet(enc_key)

    def hash(self, pin: str) -> str:
        return hmac.new(self._hash_key, pin.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, pin: str) -> bytes:
        return self._fernet.encrypt(pin.encode())

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(token).decode()


def vault() -> PinVault:
    """The app's PIN vault (one per app, built from PIN_ENCRYPTION_KEY)."""
    ext = current_app.extensions
    if "pin_vault" not in ext:
        ext["pin_vault"] = PinVault(current_app.config["PIN_ENCRYPTION_KEY"])
    return ext["pin_vault"]


def random_digits(length: int) -> str:
    """Digits from the operating system's CSPRNG."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


def mask(pin_length: int) -> str:
    return "•" * pin_length
