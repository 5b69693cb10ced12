"""The cheap way in for the commonest client event: a bare ``input_audio_buffer.append``.

A streaming session sends fifty appends a second, each about 1.3 KB of JSON that is almost all
base64. :func:`bare_append` recognises the text of an append that has nothing but ``type`` and
``audio``, optionally followed by an ``event_id`` (written compactly or with ``json.dumps``'
default separators, keys in that order: the rtfleet client writes
``{"type":…,"audio":…,"event_id":…}``, the ``openai`` SDK and hand-written scripts
``{"type": …, "audio": …}``) and decodes its audio, without parsing JSON or building a dict.
Anything else, including any text it cannot vouch for, gives ``None`` and goes through the full
parse, so the events that come out are the same:

* the audio string ends at the first ``"``, then comes either the closing ``}`` (the text's
  last character) or the ``event_id`` key, whose string ends at the next ``"``, right before
  the closing ``}``;
* the audio must be strict base64 (``binascii.a2b_base64(strict_mode=True)``, which is what the
  full path's ``base64.b64decode(validate=True)`` runs): only the alphabet and end padding, so
  no ``\\`` and no ``"``, and the JSON string's value is those characters as they stand. Audio
  that is not strict base64 takes the full path, which reports the error as before. It is
  decoded by ``pybase64`` (SIMD: a 20 ms append in about a third of the stdlib's time), whose
  ``validate=True`` accepts a subset of what the stdlib's strict mode accepts, with the same
  bytes (fuzzed: ``tests/standin/test_append_fast_path.py``); what it refuses is decided by the
  stdlib (strict mode also takes padding after a whole quantum, ``AAAA==``);
* the event id must hold no ``\\`` (an escape) and only printable characters (JSON forbids raw
  control characters), so its JSON value is the characters as they stand too.

Audio recently decoded is not decoded again (:data:`_DECODED`, keyed by its base64 text): a
load test's sessions send the same audio (every session of a fleet plays the same files or
speaks the same words, and all of them stream the same digital silence between turns), so
after the first session most appends are found there. The bytes found are those decoded.
"""

from __future__ import annotations

import binascii

import pybase64

from standin.model.memo import Memo

__all__ = ["bare_append"]

_COMPACT = '{"type":"input_audio_buffer.append","audio":"'
_SPACED = '{"type": "input_audio_buffer.append", "audio": "'
_ID_COMPACT = '","event_id":"'
_ID_SPACED = '", "event_id": "'
_a2b = binascii.a2b_base64
_b64decode = pybase64.b64decode
#: base64 text -> the bytes it decodes to, for the texts decoded lately (appends of up to
#: ``_DECODED_TEXT`` characters): emptied when they hold 8 MB of characters and bytes (over a
#: minute of 20 ms appends of 24 kHz PCM16); a session streaming audio no other sends fills it
#: and costs a look-up, under a decode
_DECODED: Memo[str, bytes] = Memo(8 << 20)
_DECODED_TEXT = 1 << 16


def bare_append(text: str) -> tuple[str, bytes, str | None] | None:
    """``(audio, its bytes, event_id or None)`` when ``text`` is exactly a bare append with
    valid audio (and maybe an event id), else None."""
    if text.startswith(_COMPACT):
        start, id_key = len(_COMPACT), _ID_COMPACT
    elif text.startswith(_SPACED):
        start, id_key = len(_SPACED), _ID_SPACED
    else:
        return None
    if text[-1] != "}":
        return None
    end = text.find('"', start)
    last = len(text) - 2
    event_id = None
    if end != last:  # not the end: an event id must follow
        if end < 0 or not text.startswith(id_key, end):
            return None
        first = end + len(id_key)
        if text.find('"', first) != last:
            return None
        event_id = text[first:last]
        if "\\" in event_id or not event_id.isprintable():
            return None
    audio = text[start:end]
    data = _DECODED.get(audio)
    if data is None:
        data = strict_b64decode(audio)
        if data is None:
            return None
        if len(audio) <= _DECODED_TEXT:
            _DECODED.put(audio, data, len(audio) + len(data))
    return audio, data, event_id


def strict_b64decode(audio: str) -> bytes | None:
    """``base64.b64decode(audio, validate=True)``, or None where that raises."""
    try:
        return _b64decode(audio, validate=True)
    except (binascii.Error, ValueError):  # refused by pybase64: the stdlib decides
        pass
    try:
        return _a2b(audio, strict_mode=True)
    except (binascii.Error, ValueError):  # not strict base64, or not ASCII
        return None
