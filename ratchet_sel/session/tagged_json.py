"""Flask's tagged JSON: JSON plus tuples, bytes, Markup, UUIDs and datetimes.

A value JSON cannot hold is written as a one-key object whose key is a tag:
``{" t": [...]}`` tuple, ``{" b": "base64"}`` bytes, ``{" m": "html"}``
Markup, ``{" u": "hex"}`` UUID, ``{" d": "HTTP date"}`` datetime (UTC).  A
real one-key dict whose key happens to be a tag is escaped as
``{" di": {"key__": value}}``.  Tags are resolved innermost first.

Markup comes back as a plain ``str`` subclass, :class:`Markup` (no
dependency on markupsafe); datetimes come back timezone-aware in UTC.
"""

import base64
import json
import uuid
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Callable, Dict

__all__ = ["loads", "dumps", "Markup"]


class Markup(str):
    """A string that Flask marked as safe HTML (``markupsafe.Markup`` on the Flask side)."""

    def __html__(self) -> str:
        return str(self)


def _parse_http_date(value: str) -> datetime:
    parsed = parsedate_to_datetime(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _untag_dict(value: Dict[str, Any]) -> Dict[str, Any]:
    key = next(iter(value))
    return {key[:-2]: value[key]}


_DECODERS: Dict[str, Callable[[Any], Any]] = {
    " di": _untag_dict,
    " t": tuple,
    " b": base64.b64decode,
    " m": Markup,
    " u": uuid.UUID,
    " d": _parse_http_date,
}


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        value = {key: _untag(item) for key, item in value.items()}
        if len(value) == 1:
            key = next(iter(value))
            decoder = _DECODERS.get(key)
            if decoder is not None:
                return decoder(value[key])
        return value
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def loads(text: str) -> Any:
    """Decode Flask's tagged JSON; raises ValueError (or TypeError) for malformed input."""
    return _untag(json.loads(text))


def _tag(value: Any) -> Any:
    # The same order of checks as Flask's serializer.
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _DECODERS:
            key = next(iter(value))
            return {" di": {key + "__": _tag(value[key])}}
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return {" t": [_tag(item) for item in value]}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, bytes):
        return {" b": base64.b64encode(value).decode("ascii")}
    if callable(getattr(value, "__html__", None)):
        return {" m": str(value.__html__())}
    if isinstance(value, uuid.UUID):
        return {" u": value.hex}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return {" d": format_datetime(value.astimezone(timezone.utc), usegmt=True)}
    return value


def dumps(value: Any) -> str:
    """Encode ``value`` as Flask's tagged JSON, compact."""
    return json.dumps(_tag(value), separators=(",", ":"))
