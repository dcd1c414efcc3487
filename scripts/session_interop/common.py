"""What both sides of the session interop check share: a comparable form of session data.

Sessions hold tuples, bytes, UUIDs, datetimes and Markup (Flask) that JSON
cannot carry; both the framework side and the WebSocket side turn them into
the same tagged JSON values before comparing.
"""

import base64
import datetime
import uuid

WORK_FILES = {"config": "config.json", "django_db": "django.sqlite3", "server_log": "server.log"}


def comparable(value):
    """``value`` as plain JSON data, keeping each type's identity."""
    if isinstance(value, dict):
        return {str(key): comparable(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return {"$tuple": [comparable(item) for item in value]}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.astimezone(datetime.timezone.utc).isoformat()}
    if isinstance(value, str):
        return str(value)  # Markup (either side's) compares as its text
    return value
