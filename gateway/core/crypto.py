"""Sealing broker secrets at rest: AES-256-GCM under rotating, named keys.

A sealed value is one ASCII string, safe to store in any string field:

    v1:<kid>:<nonce>:<ciphertext>

- `v1` is the format version;
- `kid` names the key that sealed it (`CREDENTIALS_ENCRYPTION_KEYS` is
  `kid:base64key,...`; the first key seals, every key opens), so keys rotate
  without a flag day: add the new key first, run `gateway credentials rotate`,
  then drop the old one;
- `nonce` is 12 random bytes, fresh for every value (standard base64);
- `ciphertext` is the AES-256-GCM ciphertext with its 16-byte tag appended
  (standard base64).

The associated data binds the format version, the key id, the owner's user id
and the field name, so a ciphertext copied to another user or another field (or
relabelled with another key id) fails to open instead of yielding a secret.

    GatewayCryptoError
    └── UnsealError        a sealed value cannot be opened (`reason` says why)

Neither is a `GatewayError`: sealed values are never opened on a request path,
and if one were, the failure would be masked as INTERNAL like any other bug.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from gateway.core.settings import Settings

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
# Domain separation: the fingerprint key is derived from, never equal to, an encryption key.
_DIGEST_LABEL = b"trading-gateway/credentials-fingerprint/v1"

UnsealReason = Literal["malformed", "unknown-key", "rejected"]


class GatewayCryptoError(Exception):
    """Raised for any failure of sealing or opening a secret; the base of this module's errors."""


class UnsealError(GatewayCryptoError):
    """Raised when a sealed value cannot be opened: it is malformed, names a key that is not
    configured, or fails authentication (tampered, or sealed for another user or field).

    `reason` is `"malformed"`, `"unknown-key"` or `"rejected"`; the message never holds the
    value or any part of the plaintext.
    """

    def __init__(self, message: str, *, reason: UnsealReason) -> None:
        super().__init__(message)
        self.reason: UnsealReason = reason


def _associated_data(kid: str, user_id: str, field: str) -> bytes:
    # JSON keeps the parts unambiguous whatever characters they hold.
    return json.dumps([VERSION, kid, user_id, field], separators=(",", ":")).encode()


def _split(sealed: str) -> tuple[str, bytes, bytes]:
    parts = sealed.split(":") if isinstance(sealed, str) else []
    if len(parts) != 4 or parts[0] != VERSION or not parts[1]:
        raise UnsealError("The value is not a sealed secret of a known format.", reason="malformed")
    try:
        nonce = base64.b64decode(parts[2], validate=True)
        ciphertext = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsealError("The sealed secret is not valid base64.", reason="malformed") from exc
    if len(nonce) != NONCE_BYTES or len(ciphertext) < 16:
        raise UnsealError("The sealed secret has a wrong length.", reason="malformed")
    return parts[1], nonce, ciphertext


class SecretBox:
    """Seals and opens secrets with AES-256-GCM under a list of named keys.

    The first key seals; every key opens, so values sealed under a previous key
    stay readable until `gateway credentials rotate` has moved them.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        for kid, key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes")
            if ":" in kid or not kid:
                raise ValueError(f"key id {kid!r} must be non-empty and hold no ':'")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}
        if len(self._ciphers) != len(keys):
            raise ValueError("key ids must be unique")
        self.current_kid: str = keys[0][0]
        self._digest_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_DIGEST_LABEL
        ).derive(keys[0][1])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of `CREDENTIALS_ENCRYPTION_KEYS`."""
        return cls(settings.encryption_keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every configured key, the sealing one first."""
        return tuple(self._ciphers)

    def seal(self, plaintext: str, *, user_id: str, field: str) -> str:
        """Encrypt `plaintext` for `user_id`'s `field` under the current key, with a fresh nonce."""
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(self.current_kid, user_id, field)
        ciphertext = self._ciphers[self.current_kid].encrypt(nonce, plaintext.encode(), aad)
        encoded = (base64.b64encode(part).decode() for part in (nonce, ciphertext))
        return ":".join((VERSION, self.current_kid, *encoded))

    def open(self, sealed: str, *, user_id: str, field: str) -> str:
        """Decrypt a value sealed for `user_id`'s `field`.

        Raises `UnsealError` when the value is malformed, its key is not configured,
        or it does not authenticate (tampered, or sealed for another user or field).
        """
        kid, nonce, ciphertext = _split(sealed)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnsealError(
                f"The secret was sealed under key {kid!r}, which is not configured.",
                reason="unknown-key",
            )
        try:
            plaintext = cipher.decrypt(nonce, ciphertext, _associated_data(kid, user_id, field))
        except InvalidTag as exc:
            raise UnsealError(
                "The sealed secret failed authentication: it was altered, or sealed for "
                "another user or field.",
                reason="rejected",
            ) from exc
        try:
            return plaintext.decode()
        except UnicodeDecodeError as exc:  # authenticated, so only a foreign writer could cause it
            raise UnsealError("The sealed secret is not UTF-8 text.", reason="malformed") from exc

    def key_id(self, sealed: str) -> str:
        """The id of the key `sealed` is sealed under (without opening it).

        Raises `UnsealError` (reason "malformed") when it is not a sealed value.
        """
        kid, _nonce, _ciphertext = _split(sealed)
        return kid

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` is sealed under the current key; False for malformed values too."""
        try:
            return self.key_id(sealed) == self.current_kid
        except UnsealError:
            return False

    def reseal(self, sealed: str, *, user_id: str, field: str) -> str:
        """`sealed` opened and sealed again under the current key (raises like `open`)."""
        return self.seal(
            self.open(sealed, user_id=user_id, field=field), user_id=user_id, field=field
        )

    def digest(self, plaintext: str, *, user_id: str, field: str) -> str:
        """A keyed digest of a secret (HMAC-SHA256), to compare inputs without storing them.

        Idempotency fingerprints use it: a plain hash of a low-entropy secret (a
        broker password) could be guessed offline; a keyed one cannot. Keyed by the
        current key, so it changes when the keys rotate.
        """
        message = json.dumps([user_id, field, plaintext], separators=(",", ":")).encode()
        return hmac.new(self._digest_key, message, hashlib.sha256).hexdigest()
