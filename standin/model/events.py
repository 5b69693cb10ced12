"""Server-side event helpers: identifiers, the GA ``error`` event and the client-error exception.

Everything the embedded server sends is a plain ``dict`` ready for ``json.dumps``; this module
holds the few builders shared by the sans-I/O model, the WebSocket shell and the HTTP side.

Error codes the embedded server uses (``error.type`` is ``invalid_request_error`` unless noted):

==========================================  =============================================
``invalid_json``                            a text frame that is not a JSON object
``invalid_value`` / ``invalid_type``        a field with a wrong value or type (``param`` names it)
``missing_required_parameter``              a required field is absent
``unknown_parameter``                       a field the server does not know
``unsupported_frame``                       a binary frame (the protocol is JSON text only)
``item_not_found``                          an ``item_id``/``previous_item_id`` that does not exist
``input_audio_buffer_commit_empty``         commit with less than 100 ms buffered
``conversation_already_has_active_response``  ``response.create`` while one is active
``response_cancel_not_active``              ``response.cancel`` with nothing to cancel
``invalid_api_key``                         authentication failed (see ``ws.py``)
``session_expired``                         the session reached its maximum length
``beta_api_shape_disabled``                 a client sent ``OpenAI-Beta: realtime=v1``
==========================================  =============================================
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import secrets
import string
from typing import Any

import attrs

__all__ = ["Base64Text", "ClientError", "IdFactory", "error_event", "event_json", "new_secret_value", "snapshot"]

_ALPHABET = string.ascii_letters + string.digits


class IdFactory:
    """Makes protocol identifiers (``event_…``, ``item_…``, ``resp_…``, ``sess_…``).

    Each factory has a random token (from ``rng`` when given, for reproducible tests) and a
    counter, so identifiers are unique within a factory and very unlikely to collide across
    factories. They are identifiers, not secrets: client secrets use :func:`new_secret_value`.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        rng = rng or random.Random(secrets.randbits(64))
        self._token = "".join(rng.choices(_ALPHABET, k=12))
        self._counter = itertools.count(1)

    def new(self, prefix: str) -> str:
        return f"{prefix}_{self._token}{next(self._counter):06d}"


def new_secret_value(prefix: str = "ek_") -> str:
    """An unguessable client secret value (never derived from a seeded generator)."""
    return prefix + secrets.token_urlsafe(24)


@attrs.frozen
class ClientError(Exception):
    """A client event the server refuses; becomes one GA ``error`` event, the session stays open."""

    code: str
    message: str
    param: str | None = None
    type: str = "invalid_request_error"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def error_event(
    event_id: str,
    *,
    code: str,
    message: str,
    param: str | None = None,
    client_event_id: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """The GA error event: ``{type: "error", event_id, error: {type, code, message, param, event_id}}``."""
    return {
        "type": "error",
        "event_id": event_id,
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def snapshot(value: Any) -> Any:
    """A deep copy of a JSON-like value (what an event holds of an item or a response that
    changes later): dicts and lists copied, strings, numbers, None and bools shared, anything
    else by :func:`copy.deepcopy` (about a third of ``deepcopy``'s time for a response)."""
    kind = type(value)
    if kind is dict:
        return {k: snapshot(v) for k, v in value.items()}
    if kind is list:
        return [snapshot(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


class Base64Text(str):
    """Base64 text (an audio delta): a string like any other, but known to hold nothing JSON
    escapes, so :func:`event_json` writes it as it stands instead of scanning it."""

    __slots__ = ()


_escape = json.encoder.encode_basestring_ascii  # what json.dumps writes a string with
_dumps = json.dumps


def event_json(event: dict[str, Any]) -> str:
    """``json.dumps(event)``, the same text: an event whose values are all strings and
    integers (the deltas of an answer, most of a server's events) is written key by key with
    json's own string escaper, its :class:`Base64Text` values as they stand (an audio delta is
    kilobytes of base64 that json.dumps would scan character by character); anything else by
    json.dumps."""
    if type(event) is not dict:
        return _dumps(event)
    parts = []
    for key, value in event.items():
        kind = type(value)
        if kind is Base64Text:
            text = '"' + value + '"'
        elif kind is str:
            text = _escape(value)
        elif kind is int:
            text = int.__repr__(value)
        else:
            return _dumps(event)
        if type(key) is not str:
            return _dumps(event)
        parts.append(_escape(key) + ": " + text)
    return "{" + ", ".join(parts) + "}"
