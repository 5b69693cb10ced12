"""The beta realtime dialect, translated at the edge (the core speaks GA only).

Older self-hosted servers still speak the beta shape (``OpenAI-Beta: realtime=v1``).  A shell
talking to one translates each decoded server event with :func:`beta_to_ga_server` before
checking it, and each outgoing client event with :func:`ga_to_beta_client` after the core
produced it.  The rename table is PROTOCOL.md's "Beta → GA renames"; nothing else changes.

Translation never mutates its argument: changed events and objects are shallow copies, and an
event that needs no change is returned as is (the common case costs one dict lookup).

Session objects are translated by :func:`beta_session_to_ga` / :func:`ga_session_to_beta`,
which :class:`~actors.proto.session.SessionConfig` also uses to accept beta field names.
A beta field whose GA place is already taken with a different value raises
:class:`~actors.proto.errors.SessionConfigError`.
"""

from __future__ import annotations

from typing import Any

from actors.proto.errors import SessionConfigError

__all__ = [
    "BETA_SERVER_TYPES",
    "BETA_FORMATS",
    "beta_to_ga_server",
    "ga_to_beta_client",
    "beta_session_to_ga",
    "ga_session_to_beta",
    "beta_format_to_ga",
    "ga_format_to_beta",
]

#: Beta server event type -> GA type.
BETA_SERVER_TYPES: dict[str, str] = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
}

#: Beta audio format names -> GA format objects.
BETA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_GA_FORMATS = {fmt["type"]: name for name, fmt in BETA_FORMATS.items()}

# Beta assistant content part types -> GA, and back.
_BETA_PARTS = {"text": "output_text", "audio": "output_audio"}
_GA_PARTS = {ga: beta for beta, ga in _BETA_PARTS.items()}

_SESSION_EVENTS = frozenset({"session.created", "session.updated"})
_PART_EVENTS = frozenset({"response.content_part.added", "response.content_part.done"})


def beta_format_to_ga(value: Any) -> Any:
    """A beta format name as a GA format object (a copy); anything else unchanged."""
    if isinstance(value, str) and value in BETA_FORMATS:
        return dict(BETA_FORMATS[value])
    return value


def ga_format_to_beta(value: Any) -> Any:
    """A GA format object as a beta format name; anything else unchanged."""
    if isinstance(value, dict) and value.get("type") in _GA_FORMATS:
        return _GA_FORMATS[value["type"]]
    return value


def _modalities_to_ga(value: Any) -> Any:
    if isinstance(value, list) and "audio" in value:
        return ["audio"]
    return value


def _modalities_to_beta(value: Any) -> Any:
    if value == ["audio"]:
        return ["text", "audio"]
    return value


def _place(ga: dict[str, Any], path: tuple[str, ...], value: Any, beta_key: str) -> None:
    """Put ``value`` at ``path`` in ``ga`` (copying nested dicts on the way)."""
    node = ga
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise SessionConfigError(".".join(path), f"{key!r} must be an object")
        else:
            child = dict(child)
        node[key] = child
        node = child
    last = path[-1]
    if last in node and node[last] != value:
        raise SessionConfigError(
            ".".join(path), f"given twice, as beta {beta_key!r} and as GA {'.'.join(path)!r}"
        )
    node[last] = value


# beta session key -> (GA path, value translation)
_SESSION_BETA_TO_GA: dict[str, tuple[tuple[str, ...], Any]] = {
    "modalities": (("output_modalities",), _modalities_to_ga),
    "voice": (("audio", "output", "voice"), None),
    "input_audio_format": (("audio", "input", "format"), beta_format_to_ga),
    "output_audio_format": (("audio", "output", "format"), beta_format_to_ga),
    "turn_detection": (("audio", "input", "turn_detection"), None),
    "input_audio_transcription": (("audio", "input", "transcription"), None),
    "input_audio_noise_reduction": (("audio", "input", "noise_reduction"), None),
    "max_response_output_tokens": (("max_output_tokens",), None),
}


def beta_session_to_ga(session: dict[str, Any]) -> dict[str, Any]:
    """A session object with beta field names moved to their GA places (a new dict).

    Keys without a beta meaning are kept; ``type`` is *not* added (callers decide).
    """
    ga: dict[str, Any] = {}
    moves = []
    for key, value in session.items():
        if key in _SESSION_BETA_TO_GA:
            moves.append((key, value))
        else:
            ga[key] = value
    for key, value in moves:
        path, convert = _SESSION_BETA_TO_GA[key]
        _place(ga, path, convert(value) if convert else value, key)
    return ga


def ga_session_to_beta(session: dict[str, Any]) -> dict[str, Any]:
    """A GA session object in beta field names (a new dict); ``type`` is dropped."""
    beta = {k: v for k, v in session.items() if k not in ("type", "audio")}
    if "output_modalities" in beta:
        beta["modalities"] = _modalities_to_beta(beta.pop("output_modalities"))
    if "max_output_tokens" in beta:
        beta["max_response_output_tokens"] = beta.pop("max_output_tokens")
    audio = session.get("audio")
    if isinstance(audio, dict):
        audio_in = audio.get("input") or {}
        audio_out = audio.get("output") or {}
        if "format" in audio_in:
            beta["input_audio_format"] = ga_format_to_beta(audio_in["format"])
        if "turn_detection" in audio_in:
            beta["turn_detection"] = audio_in["turn_detection"]
        if "transcription" in audio_in:
            beta["input_audio_transcription"] = audio_in["transcription"]
        if "noise_reduction" in audio_in:
            beta["input_audio_noise_reduction"] = audio_in["noise_reduction"]
        if "format" in audio_out:
            beta["output_audio_format"] = ga_format_to_beta(audio_out["format"])
        if "voice" in audio_out:
            beta["voice"] = audio_out["voice"]
        if "speed" in audio_out:
            beta["speed"] = audio_out["speed"]
    return beta


def _item_parts(item: Any, table: dict[str, str]) -> Any:
    """``item`` with assistant content part types renamed by ``table`` (copied if changed)."""
    if not isinstance(item, dict) or item.get("role") != "assistant":
        return item
    content = item.get("content")
    if not isinstance(content, list) or not any(
        isinstance(p, dict) and p.get("type") in table for p in content
    ):
        return item
    parts = [
        {**p, "type": table[p["type"]]} if isinstance(p, dict) and p.get("type") in table else p
        for p in content
    ]
    return {**item, "content": parts}


def beta_to_ga_server(event: dict[str, Any]) -> dict[str, Any]:
    """One decoded beta server event in GA shape (the same dict when nothing changes)."""
    event_type = event.get("type")
    renamed = BETA_SERVER_TYPES.get(event_type)  # type: ignore[arg-type]
    if renamed is not None:
        event = {**event, "type": renamed}
    if "item" in event:
        item = _item_parts(event["item"], _BETA_PARTS)
        if item is not event["item"]:
            event = {**event, "item": item}
    elif event_type in _SESSION_EVENTS and isinstance(event.get("session"), dict):
        session = beta_session_to_ga(event["session"])
        session.setdefault("type", "realtime")
        event = {**event, "session": session}
    elif event_type in _PART_EVENTS and isinstance(event.get("part"), dict):
        part = event["part"]
        if part.get("type") in _BETA_PARTS:
            event = {**event, "part": {**part, "type": _BETA_PARTS[part["type"]]}}
    return event


def ga_to_beta_client(event: dict[str, Any]) -> dict[str, Any]:
    """One GA client event in beta shape (the same dict when nothing changes)."""
    event_type = event.get("type")
    if event_type == "session.update" and isinstance(event.get("session"), dict):
        return {**event, "session": ga_session_to_beta(event["session"])}
    if event_type == "conversation.item.create":
        item = _item_parts(event.get("item"), _GA_PARTS)
        return event if item is event.get("item") else {**event, "item": item}
    if event_type == "response.create" and isinstance(event.get("response"), dict):
        response = dict(event["response"])
        if "output_modalities" in response:
            response["modalities"] = _modalities_to_beta(response.pop("output_modalities"))
        if "max_output_tokens" in response:
            response["max_response_output_tokens"] = response.pop("max_output_tokens")
        audio = response.pop("audio", None)
        if isinstance(audio, dict) and isinstance(audio.get("output"), dict):
            out = audio["output"]
            if "voice" in out:
                response["voice"] = out["voice"]
            if "format" in out:
                response["output_audio_format"] = ga_format_to_beta(out["format"])
        return {**event, "response": response}
    return event
