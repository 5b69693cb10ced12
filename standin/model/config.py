"""Session configuration of the embedded server: defaults, ``session.update`` merging, checks.

A session is a plain ``dict`` in the GA shape (``type: "realtime"``, ``output_modalities``,
``audio.input.{format, transcription, noise_reduction, turn_detection}``, ``audio.output.{format,
voice, speed}``, …). :func:`apply_update` returns a new dict with only the given fields changed
(``audio.input`` and ``audio.output`` are merged field by field; ``turn_detection`` is replaced
whole, with server defaults filled in) or raises :class:`~.events.ClientError` naming the
offending ``param``. The same function validates the ``session`` of a client-secret request.
"""

from __future__ import annotations

import copy
from typing import Any

from standin.model.audio import AudioFormat
from standin.model.events import ClientError
from standin.model.tools import check_tool_choice, check_tools
from standin.model.vad import VadParams

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "check_model",
    "apply_audio",
    "apply_update",
    "default_session",
    "input_format",
    "output_format",
    "output_modalities",
    "transcription_enabled",
    "turn_detection",
    "turn_detection_default",
    "vad_params",
]

DEFAULT_MODEL = "gpt-realtime"
#: the Realtime models the hosted service lists; ``rtfleet serve`` refuses others by default
#: (``--models``), as the hosted service does; a library ``EmbeddedServer`` accepts any name
#: unless given ``models=``
KNOWN_MODELS = (
    "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-mini", "gpt-realtime-mini-2025-10-06",
    "gpt-realtime-2.1", "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-realtime-preview-2024-12-17", "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
)


def check_model(model: str, allowed: frozenset[str] | None) -> None:
    """ClientError ``model_not_found`` when ``allowed`` is a set that does not hold ``model``."""
    if allowed is not None and model not in allowed:
        raise ClientError("model_not_found",
                          f"The model '{model}' does not exist or you do not have access to it.",
                          "model")
DEFAULT_INSTRUCTIONS = "You are a deterministic test model. You repeat what you heard."
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")
_PASS_THROUGH = ("tools", "tool_choice", "tracing", "truncation", "include", "prompt", "reasoning")
_KNOWN = frozenset(
    ("type", "model", "instructions", "output_modalities", "max_output_tokens", "audio")
    + _PASS_THROUGH
    + ("parallel_tool_calls",)
)


def turn_detection_default() -> dict[str, Any]:
    """The turn detection a new session has: ``server_vad`` with the service's defaults."""
    return _server_vad()


def _server_vad(**given: Any) -> dict[str, Any]:
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    } | given


def default_session(*, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": _server_vad(),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


def apply_update(
    current: dict[str, Any], update: Any, *, allow_model: bool = False, voice_locked: bool = False
) -> dict[str, Any]:
    """``current`` with ``update`` applied; raises ClientError (``param`` is ``session.…``)."""
    if not isinstance(update, dict):
        raise ClientError("invalid_type", "session must be an object", "session")
    if "type" not in update:
        raise ClientError("missing_required_parameter", "session.type is required", "session.type")
    if update["type"] != "realtime":
        raise ClientError(
            "invalid_value",
            f"session.type cannot change: this is a realtime session (open a transcription "
            f"session with ?intent=transcription), not {update['type']!r}",
            "session.type",
        )
    for key in update:
        if key not in _KNOWN:
            raise ClientError("unknown_parameter", f"Unknown parameter: 'session.{key}'.", f"session.{key}")
    new = copy.deepcopy(current)
    if "model" in update:
        model = update["model"]
        if not isinstance(model, str) or not model:
            raise ClientError("invalid_type", "session.model must be a string", "session.model")
        if model != current.get("model") and not allow_model:
            raise ClientError("invalid_value", "session.model cannot be changed", "session.model")
        new["model"] = model
    if "instructions" in update:
        if not isinstance(update["instructions"], str):
            raise ClientError("invalid_type", "must be a string", "session.instructions")
        new["instructions"] = update["instructions"]
    if "output_modalities" in update:
        new["output_modalities"] = check_modalities(update["output_modalities"], "session.output_modalities")
    if "max_output_tokens" in update:
        new["max_output_tokens"] = _check_max_tokens(update["max_output_tokens"])
    if "audio" in update:
        apply_audio(new, update["audio"], voice_locked=voice_locked)
    for key in _PASS_THROUGH + ("parallel_tool_calls",):
        if key in update:
            new[key] = copy.deepcopy(update[key])
    if "tools" in update:
        new["tools"] = check_tools(new["tools"], "session.tools")
    if "tools" in update or "tool_choice" in update:
        new["tool_choice"] = check_tool_choice(new.get("tool_choice", "auto"), new["tools"], "session.tool_choice")
    return new


def check_modalities(value: Any, param: str) -> list[str]:
    if not (isinstance(value, list) and len(value) == 1 and value[0] in ("text", "audio")):
        raise ClientError("invalid_value", "must be ['text'] or ['audio']", param)
    return list(value)


def _check_max_tokens(value: Any) -> int | str:
    if value == "inf" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096):
        return value
    raise ClientError("invalid_value", "must be an integer 1..4096 or 'inf'", "session.max_output_tokens")


def apply_audio(new: dict[str, Any], audio: Any, *, voice_locked: bool) -> None:
    if not isinstance(audio, dict):
        raise ClientError("invalid_type", "must be an object", "session.audio")
    for side in audio:
        if side not in ("input", "output"):
            param = f"session.audio.{side}"
            raise ClientError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        if not isinstance(audio[side], dict):
            raise ClientError("invalid_type", "must be an object", f"session.audio.{side}")
    given_in = audio.get("input", {})
    target_in = new["audio"]["input"]
    for key, value in given_in.items():
        param = f"session.audio.input.{key}"
        if key == "format":
            target_in["format"] = _check_format(value, param)
        elif key == "turn_detection":
            target_in["turn_detection"] = _check_turn_detection(value)
        elif key in ("transcription", "noise_reduction"):
            if value is not None and not isinstance(value, dict):
                raise ClientError("invalid_type", "must be an object or null", param)
            target_in[key] = copy.deepcopy(value)
        else:
            raise ClientError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
    given_out = audio.get("output", {})
    if not given_out:
        return
    target_out = new["audio"]["output"]
    for key, value in given_out.items():
        param = f"session.audio.output.{key}"
        if key == "format":
            target_out["format"] = _check_format(value, param)
        elif key == "voice":
            if not (isinstance(value, str) and value) and not (isinstance(value, dict) and "id" in value):
                raise ClientError("invalid_value", f"must be one of {', '.join(VOICES)}", param)
            if voice_locked and value != target_out.get("voice"):
                raise ClientError("invalid_value", "voice cannot change after audio output", param)
            target_out["voice"] = copy.deepcopy(value)
        elif key == "speed":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.25 <= value <= 1.5:
                raise ClientError("invalid_value", "must be a number 0.25..1.5", param)
            target_out["speed"] = float(value)
        else:
            raise ClientError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def _check_format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in _FORMATS:
        raise ClientError("invalid_value", f"type must be one of {', '.join(_FORMATS)}", f"{param}.type")
    if value["type"] == "audio/pcm":
        if value.get("rate", 24000) != 24000:
            raise ClientError("invalid_value", "audio/pcm supports rate 24000 only", f"{param}.rate")
        return {"type": "audio/pcm", "rate": 24000}
    return {"type": value["type"]}


def _check_turn_detection(value: Any) -> dict[str, Any] | None:
    param = "session.audio.input.turn_detection"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClientError("invalid_type", "must be an object or null", param)
    kind = value.get("type")
    fields = {k: v for k, v in value.items() if k != "type"}
    if kind == "semantic_vad":
        if fields.get("eagerness", "auto") not in ("low", "medium", "high", "auto"):
            raise ClientError(
                "invalid_value", "eagerness must be low, medium, high or auto", f"{param}.eagerness"
            )
        defaults = {"eagerness": "auto", "create_response": True, "interrupt_response": True}
        return {"type": "semantic_vad"} | defaults | fields
    if kind != "server_vad":
        raise ClientError("invalid_value", "type must be server_vad or semantic_vad", f"{param}.type")
    checks = {
        "threshold": lambda v: isinstance(v, (int, float)) and 0.0 <= v <= 1.0,
        "prefix_padding_ms": lambda v: isinstance(v, int) and v >= 0,
        "silence_duration_ms": lambda v: isinstance(v, int) and v >= 0,
        "idle_timeout_ms": lambda v: v is None or (isinstance(v, int) and v >= 0),
        "create_response": lambda v: isinstance(v, bool),
        "interrupt_response": lambda v: isinstance(v, bool),
    }
    for key, v in fields.items():
        if key not in checks:
            raise ClientError("unknown_parameter", f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}")
        if isinstance(v, bool) and key not in ("create_response", "interrupt_response") or not checks[key](v):
            raise ClientError("invalid_value", f"invalid value for {key}", f"{param}.{key}")
    return _server_vad(**fields)


# -- readers used by the model ------------------------------------------------------------------

def turn_detection(session: dict[str, Any]) -> dict[str, Any] | None:
    return session["audio"]["input"].get("turn_detection")


def vad_params(detection: dict[str, Any]) -> VadParams:
    if detection["type"] == "semantic_vad":
        silence = {"low": 800, "medium": 500, "high": 250, "auto": 500}[detection.get("eagerness", "auto")]
        return VadParams(silence_duration_ms=silence)
    return VadParams(
        threshold=float(detection["threshold"]),
        prefix_padding_ms=detection["prefix_padding_ms"],
        silence_duration_ms=detection["silence_duration_ms"],
    )


def input_format(session: dict[str, Any]) -> AudioFormat:
    return AudioFormat.from_session(session["audio"]["input"].get("format"))


def output_format(session: dict[str, Any]) -> AudioFormat:
    return AudioFormat.from_session(session["audio"]["output"].get("format"))


def output_modalities(session: dict[str, Any]) -> list[str]:
    return list(session.get("output_modalities") or ["audio"])


def transcription_enabled(session: dict[str, Any]) -> bool:
    return session["audio"]["input"].get("transcription") is not None
