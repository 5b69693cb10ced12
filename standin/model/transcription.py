"""Transcription sessions of the deterministic model: their config, and what they say.

A transcription session (``wss://…/v1/realtime?intent=transcription``, or a client secret
minted with ``session.type: "transcription"``) only transcribes its input audio: the VAD (or
the client's ``commit``) closes an utterance into a user item, and the model answers with
``conversation.item.input_audio_transcription.delta`` events (one per word; ``whisper-1``,
which does not stream, sends one with the whole transcript) and a
``.completed`` carrying the whole transcript and its usage. Nothing answers it: no response
ever starts, and the client events that make or steer responses are refused
(:data:`REFUSED`).

The transcript is what the deterministic model "hears" (``"audio of N ms"``, the same words a
realtime session's input transcription gives); usage is ``duration`` seconds for
``whisper-1`` and ``tokens`` (10 audio tokens a second in, a token a word out) for the others,
the two shapes the service sends.

The session object (``session.created`` / ``session.updated``) has ``type: "transcription"``,
``object: "realtime.transcription_session"`` and the input side only; ``session.update`` may
change ``audio.input`` (format, turn detection, transcription, noise reduction) and
``include``, never ``type``.
"""

from __future__ import annotations

import copy
from typing import Any

from standin.model import config as cfg
from standin.model.events import ClientError
from standin.model.response import split_words

__all__ = ["REFUSED", "DEFAULT_TRANSCRIPTION", "apply_update", "default_session",
           "transcript_events", "usage"]

#: the transcription the service uses when a transcription session names none
DEFAULT_TRANSCRIPTION = {"model": "gpt-4o-transcribe", "language": None, "prompt": ""}
#: client events a transcription session refuses (nothing in it answers or is answered)
REFUSED = frozenset({"response.create", "response.cancel", "conversation.item.create",
                     "conversation.item.truncate", "output_audio_buffer.clear"})
_TOP = frozenset({"type", "audio", "include"})
_TRANSCRIPTION = {
    "model": lambda v: isinstance(v, str) and bool(v),
    "language": lambda v: v is None or isinstance(v, str),
    "prompt": lambda v: v is None or isinstance(v, str),
    "languages": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "keywords": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "delay": lambda v: v in ("minimal", "low", "medium", "high", "xhigh"),
}
_INCLUDE = ("item.input_audio_transcription.logprobs",)


def default_session(*, session_id: str, expires_at: int) -> dict[str, Any]:
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": dict(DEFAULT_TRANSCRIPTION),
                "noise_reduction": None,
                "turn_detection": cfg.turn_detection_default(),
            },
        },
        "include": None,
    }


def apply_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """``current`` (a transcription session) with ``update`` applied, or a ClientError naming
    the ``session.…`` param at fault."""
    if not isinstance(update, dict):
        raise ClientError("invalid_type", "session must be an object", "session")
    if "type" not in update:
        raise ClientError("missing_required_parameter", "session.type is required", "session.type")
    if update["type"] != "transcription":
        raise ClientError("invalid_value", "session.type cannot change: this is a transcription "
                          "session", "session.type")
    for key in update:
        if key not in _TOP:
            raise ClientError("unknown_parameter", f"Unknown parameter: 'session.{key}'. A "
                              "transcription session has type, audio.input and include.",
                              f"session.{key}")
    new = copy.deepcopy(current)
    audio = update.get("audio")
    if audio is not None:
        if not isinstance(audio, dict):
            raise ClientError("invalid_type", "must be an object", "session.audio")
        if "output" in audio:
            raise ClientError("unknown_parameter", "A transcription session has no audio output.",
                              "session.audio.output")
        given_in = audio.get("input")
        if isinstance(given_in, dict) and "transcription" in given_in:
            _check_transcription(given_in["transcription"])
        cfg.apply_audio(new, audio, voice_locked=False)
    if "include" in update:
        include = update["include"]
        if include is not None and not (isinstance(include, list) and all(i in _INCLUDE for i in include)):
            raise ClientError("invalid_value", f"include must be null or a list of {', '.join(_INCLUDE)}",
                              "session.include")
        new["include"] = copy.deepcopy(include)
    return new


def _check_transcription(value: Any) -> None:
    param = "session.audio.input.transcription"
    if value is None:
        return
    if not isinstance(value, dict):
        raise ClientError("invalid_type", "must be an object or null", param)
    for key, v in value.items():
        check = _TRANSCRIPTION.get(key)
        if check is None:
            raise ClientError("unknown_parameter", f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}")
        if not check(v):
            raise ClientError("invalid_value", f"invalid value for {key}", f"{param}.{key}")


def usage(model: str, duration_ms: int, words: int) -> dict[str, Any]:
    """A transcript's usage as the service bills it: seconds for whisper-1, tokens otherwise."""
    if model == "whisper-1":
        return {"type": "duration", "seconds": duration_ms / 1000}
    audio = max(1, duration_ms // 100)
    return {"type": "tokens", "input_tokens": audio, "output_tokens": words,
            "total_tokens": audio + words,
            "input_token_details": {"audio_tokens": audio, "text_tokens": 0}}


def transcript_events(ev: Any, session: dict[str, Any], item_id: str, transcript: str,
                      duration_ms: int) -> list[dict[str, Any]]:
    """The transcript of one committed utterance: a delta per word, then ``.completed``
    (``ev(kind, **fields)`` makes an event)."""
    transcription = session["audio"]["input"].get("transcription") or {}
    model = transcription.get("model") or DEFAULT_TRANSCRIPTION["model"]
    words = split_words(transcript)
    # whisper-1 does not stream: its one delta is the whole transcript
    pieces = [transcript] if model == "whisper-1" else words
    out = [ev("conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0,
              delta=piece) for piece in pieces]
    out.append(ev("conversation.item.input_audio_transcription.completed", item_id=item_id,
                  content_index=0, transcript=transcript, usage=usage(model, duration_ms, len(words))))
    return out
