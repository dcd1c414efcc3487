"""Django's ``django.core.signing``: ``dumps``/``loads`` of signed, timestamped JSON.

A token is ``payload:timestamp:signature``:

- ``payload``: compact JSON, packed (see :mod:`.payload`);
- ``timestamp``: the signing time in Unix seconds, base 62;
- ``signature``: URL-safe base64 of ``salted_hmac(salt + "signer",
  "payload:timestamp", secret)``, where ``salted_hmac`` keys an HMAC with
  hash(key_salt + secret) (SHA-256 since Django 3.1; SHA-1 before).

Several secrets may be given, newest last (``SECRET_KEY_FALLBACKS`` then
``SECRET_KEY``): signing uses the newest, verifying accepts any.
"""

import hashlib
import hmac
import json
import time
from typing import Any, Iterable, List, Optional, Union

from .base import BadSignature, InvalidSession, SessionExpired
from .payload import b64encode, pack, unpack

__all__ = ["DjangoSigner", "b62_encode", "b62_decode"]

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

Secret = Union[str, bytes]


def b62_encode(number: int) -> str:
    """``number`` in Django's base 62 (``-`` for negatives)."""
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    number = abs(number)
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62_ALPHABET[remainder])
    return sign + "".join(reversed(digits))


def b62_decode(text: str) -> int:
    """Inverse of :func:`b62_encode`; raises ValueError for other characters."""
    sign = -1 if text.startswith("-") else 1
    digits = text[1:] if sign < 0 else text
    if not digits or len(digits) > 16:
        raise ValueError("not a base-62 number: %r" % text)
    number = 0
    for digit in digits:
        index = BASE62_ALPHABET.find(digit)
        if index < 0:
            raise ValueError("not a base-62 number: %r" % text)
        number = number * 62 + index
    return sign * number


def _as_bytes(value: Secret) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class DjangoSigner:
    """``signing.dumps``/``signing.loads`` with a given salt, secrets and algorithm."""

    sep = ":"

    def __init__(self, secret_keys: Union[Secret, Iterable[Secret]], *, salt: str = "django.core.signing",
                 algorithm: str = "sha256") -> None:
        if isinstance(secret_keys, (str, bytes)):
            secret_keys = [secret_keys]
        secrets = [_as_bytes(secret) for secret in secret_keys]
        if not secrets or not all(secrets):
            raise ValueError("a non-empty secret key is required")
        self.salt = salt
        self.hasher = getattr(hashlib, algorithm)
        key_salt = (salt + "signer").encode("utf-8")
        # salted_hmac's derived keys, newest secret first.
        self._keys: List[bytes] = [self.hasher(key_salt + secret).digest() for secret in reversed(secrets)]

    def _signature(self, key: bytes, value: str) -> str:
        return b64encode(hmac.new(key, value.encode("utf-8"), self.hasher).digest()).decode("ascii")

    def dumps(self, obj: Any, compress: bool = False, timestamp: Optional[int] = None) -> str:
        """Django's ``signing.dumps(obj, salt=..., compress=...)``."""
        data = json.dumps(obj, separators=(",", ":")).encode("latin-1")
        when = int(time.time()) if timestamp is None else int(timestamp)
        value = "%s%s%s" % (pack(data, compress).decode("ascii"), self.sep, b62_encode(when))
        return "%s%s%s" % (value, self.sep, self._signature(self._keys[0], value))

    def loads(self, token: str, max_age: Optional[float] = None) -> Any:
        """Django's ``signing.loads(token, salt=..., max_age=...)``.

        Raises :class:`BadSignature`, :class:`SessionExpired` or
        :class:`InvalidSession`.
        """
        value, sep, signature = token.rpartition(self.sep)
        if not sep:
            raise BadSignature("no %r separator in the token" % self.sep)
        if not any(hmac.compare_digest(signature.encode("ascii", "replace"),
                                       self._signature(key, value).encode("ascii")) for key in self._keys):
            raise BadSignature("signature does not match")
        payload, sep, stamp = value.rpartition(self.sep)
        if not sep:
            raise BadSignature("timestamp missing")
        try:
            timestamp = b62_decode(stamp)
        except ValueError:
            raise BadSignature("malformed timestamp") from None
        if max_age is not None:
            age = time.time() - timestamp
            if age > max_age:
                raise SessionExpired("signature age %.0f s > %d s" % (age, max_age))
        data = unpack(payload.encode("ascii", "replace"))
        try:
            return json.loads(data.decode("latin-1"))
        except ValueError as exc:
            raise InvalidSession("session data is not JSON: %s" % exc) from None
