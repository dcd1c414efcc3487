"""itsdangerous's timestamped signatures and URL-safe serializer, as Flask's sessions use them.

A token is ``payload.timestamp.signature``:

- ``payload``: the serialized data, packed (see :mod:`.payload`);
- ``timestamp``: the signing time in Unix seconds, as big-endian bytes
  without leading zeros, URL-safe base64;
- ``signature``: URL-safe base64 of HMAC(derived key, ``payload.timestamp``).

The key is derived from the secret and a salt (``key_derivation``):
``"hmac"`` is HMAC(secret, salt) (what Flask uses), ``"django-concat"`` is
hash(salt + "signer" + secret) (itsdangerous's default), ``"concat"`` is
hash(salt + secret), ``"none"`` is the secret itself.  Several secrets may be
given, newest last (Flask's ``SECRET_KEY_FALLBACKS`` then ``SECRET_KEY``):
signing uses the newest, verifying accepts any.
"""

import hashlib
import hmac
import time
from typing import Callable, Iterable, List, Optional, Tuple, Union

from .base import BadSignature, SessionExpired
from .payload import b64decode, b64encode, pack, unpack

__all__ = ["TimestampSigner", "KEY_DERIVATIONS"]

KEY_DERIVATIONS = ("hmac", "django-concat", "concat", "none")

Secret = Union[str, bytes]


def _as_bytes(value: Secret) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class TimestampSigner:
    """Signs and verifies itsdangerous ``URLSafeTimedSerializer`` tokens (bytes in, bytes out).

    ``secret_keys``: one secret or several, newest last.  ``digest``: a
    hashlib name (Flask: ``"sha1"``).
    """

    sep = b"."

    def __init__(self, secret_keys: Union[Secret, Iterable[Secret]], *, salt: Secret = b"itsdangerous",
                 key_derivation: str = "django-concat", digest: str = "sha1") -> None:
        if isinstance(secret_keys, (str, bytes)):
            secret_keys = [secret_keys]
        secrets = [_as_bytes(secret) for secret in secret_keys]
        if not secrets or not all(secrets):
            raise ValueError("a non-empty secret key is required")
        if key_derivation not in KEY_DERIVATIONS:
            raise ValueError("key_derivation must be one of %s" % ", ".join(KEY_DERIVATIONS))
        self.digest: Callable = getattr(hashlib, digest)
        self.salt = _as_bytes(salt)
        self.key_derivation = key_derivation
        # Newest first: the key that signs, and the likeliest to verify.
        self._keys: List[bytes] = [self._derive(secret) for secret in reversed(secrets)]

    def _derive(self, secret: bytes) -> bytes:
        if self.key_derivation == "hmac":
            return hmac.new(secret, self.salt, self.digest).digest()
        if self.key_derivation == "django-concat":
            return self.digest(self.salt + b"signer" + secret).digest()
        if self.key_derivation == "concat":
            return self.digest(self.salt + secret).digest()
        return secret

    def _signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, self.digest).digest()

    # -- signing ---------------------------------------------------------------------------
    def sign(self, value: bytes, timestamp: Optional[int] = None) -> bytes:
        """``value.timestamp.signature`` with the newest key."""
        when = int(time.time()) if timestamp is None else int(timestamp)
        stamped = value + self.sep + b64encode(when.to_bytes(8, "big").lstrip(b"\0"))
        return stamped + self.sep + b64encode(self._signature(self._keys[0], stamped))

    def unsign(self, token: bytes, max_age: Optional[float] = None) -> Tuple[bytes, int]:
        """The value and timestamp of a token whose signature is valid and not too old.

        Raises :class:`BadSignature` or :class:`SessionExpired` (also for a
        timestamp in the future, as itsdangerous does).
        """
        stamped, sep, signature = token.rpartition(self.sep)
        if not sep:
            raise BadSignature("no %r separator in the token" % self.sep.decode())
        try:
            expected = b64decode(signature)
        except ValueError:
            raise BadSignature("the signature is not base64") from None
        if not any(hmac.compare_digest(expected, self._signature(key, stamped)) for key in self._keys):
            raise BadSignature("signature does not match")
        value, sep, stamp = stamped.rpartition(self.sep)
        if not sep:
            raise BadSignature("timestamp missing")
        raw = b64decode(stamp)
        if not raw or len(raw) > 8:
            raise BadSignature("malformed timestamp")
        timestamp = int.from_bytes(raw, "big")
        if max_age is not None:
            age = int(time.time()) - timestamp
            if age > max_age:
                raise SessionExpired("signature age %d s > %d s" % (age, max_age))
            if age < 0:
                raise SessionExpired("signature age %d s < 0 s" % age)
        return value, timestamp

    # -- URL-safe serializer -------------------------------------------------------------------
    def dumps(self, serialized: bytes, timestamp: Optional[int] = None) -> str:
        """A token for already serialized bytes (packed, compressed when it helps)."""
        return self.sign(pack(serialized, compress=True), timestamp).decode("ascii")

    def loads(self, token: Union[str, bytes], max_age: Optional[float] = None) -> bytes:
        """The serialized bytes of a valid token; raises BadSignature/SessionExpired/InvalidSession."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        value, _ = self.unsign(raw, max_age)
        return unpack(value)
