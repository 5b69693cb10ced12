"""The cheap way in for the commonest client event: a bare ``input_audio_buffer.append``.

A streaming session sends fifty appends a second, each about 1.3 KB of JSON that is almost all
base64. :func:`bare_append` recognises the text of an append that has nothing but ``type`` and
``audio`` (written compactly or with ``json.dumps``' default separators, keys in that order, as
the rtfleet client, the ``openai`` SDK and hand-written scripts write it) and decodes its audio,
without parsing JSON or building a dict. Anything else, including any text it cannot vouch for,
gives ``None`` and goes through the full parse, so the events that come out are the same:

* the audio string ends at the first ``"`` and the text must end right after it with ``}``;
* the audio must be strict base64 (``binascii.a2b_base64(strict_mode=True)``, which is what the
  full path's ``base64.b64decode(validate=True)`` runs): only the alphabet and end padding, so
  no ``\\`` and no ``"``, and the JSON string's value is those characters as they stand. Audio
  that is not strict base64 takes the full path, which reports the error as before.
"""

from __future__ import annotations

import binascii

__all__ = ["bare_append"]

_PREFIXES = ('{"type":"input_audio_buffer.append","audio":"',
             '{"type": "input_audio_buffer.append", "audio": "')


def bare_append(text: str) -> tuple[str, bytes] | None:
    """``(audio, its bytes)`` when ``text`` is exactly a bare append with valid audio, else None."""
    if text.startswith(_PREFIXES[0]):
        start = len(_PREFIXES[0])
    elif text.startswith(_PREFIXES[1]):
        start = len(_PREFIXES[1])
    else:
        return None
    end = text.find('"', start)
    if end != len(text) - 2 or text[-1] != "}":
        return None
    audio = text[start:end]
    try:
        return audio, binascii.a2b_base64(audio, strict_mode=True)
    except (binascii.Error, ValueError):  # not strict base64, or not ASCII
        return None
