"""Session configuration: one validated value, turned into the GA ``session`` object.

:class:`SessionConfig` is the whole truth about a session's configuration: a client that
reconnects sends ``config.to_update_event()`` as the first event of every new connection, so
the new server session matches the old one.  Formats and turn detection therefore always
have explicit values (defaults: PCM 24 kHz both ways, ``server_vad`` with the server's
default settings); ``voice=None`` and ``instructions=None`` leave the server's defaults.

Nested values (formats, turn detection, transcription, ``extra``) are stored as read-only
mappings; ``to_session_object()`` returns fresh dicts each call.

A transcription session (``type: "transcription"``, opened with ``?intent=transcription``) is
the same value with ``type="transcription"``: it has only the input side (format, turn
detection, transcription, noise reduction) and ``include``; its ``session`` object carries
nothing else, and its transcription defaults to ``{"model": "gpt-4o-transcribe"}``.

Errors are :class:`~actors.proto.errors.SessionConfigError` (also a ``ValueError``) whose
``field`` is the dotted GA path of the bad value (``"audio.output.voice"``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from actors.proto.realtime.beta import beta_format_to_ga, beta_session_to_ga
from actors.proto.errors import SessionConfigError

__all__ = [
    "GA_VOICES",
    "DEFAULT_MODEL",
    "SessionConfig",
    "normalize_format",
    "audio_bytes_per_ms",
]

DEFAULT_MODEL = "gpt-realtime"

#: Voices of the GA service.
GA_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)

_FORMATS: dict[str, Mapping[str, Any]] = {
    "audio/pcm": MappingProxyType({"type": "audio/pcm", "rate": 24000}),
    "audio/pcmu": MappingProxyType({"type": "audio/pcmu"}),
    "audio/pcma": MappingProxyType({"type": "audio/pcma"}),
}
_BYTES_PER_MS = {"audio/pcm": 48, "audio/pcmu": 8, "audio/pcma": 8}

_NONNEG_INT = ("integer", lambda v: type(v) is int and v >= 0)
_BOOL = ("boolean", lambda v: type(v) is bool)
_TURN_DETECTION: dict[str, dict[str, tuple[str, Any]]] = {
    "server_vad": {
        "threshold": (
            "a number from 0 to 1",
            lambda v: type(v) in (int, float) and 0 <= v <= 1,
        ),
        "prefix_padding_ms": _NONNEG_INT,
        "silence_duration_ms": _NONNEG_INT,
        "idle_timeout_ms": (
            "a positive integer or null",
            lambda v: v is None or (type(v) is int and v > 0),
        ),
        "create_response": _BOOL,
        "interrupt_response": _BOOL,
    },
    "semantic_vad": {
        "eagerness": (
            "one of low, medium, high, auto",
            lambda v: v in ("low", "medium", "high", "auto"),
        ),
        "create_response": _BOOL,
        "interrupt_response": _BOOL,
    },
}
_STR = ("a string", lambda v: isinstance(v, str))
_STR_LIST = (
    "a list of strings",
    lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
)
_TRANSCRIPTION: dict[str, tuple[str, Any]] = {
    "model": _STR,
    "language": _STR,
    "prompt": _STR,
    "languages": _STR_LIST,
    "keywords": _STR_LIST,
    "delay": _STR,
}

# GA session fields passed through verbatim in ``extra``, by container.
_EXTRA_TOP = frozenset(
    {
        "include",
        "max_output_tokens",
        "parallel_tool_calls",
        "prompt",
        "reasoning",
        "tool_choice",
        "tools",
        "tracing",
        "truncation",
    }
)
_EXTRA_INPUT = frozenset({"noise_reduction"})
_EXTRA_OUTPUT = frozenset({"speed"})
_AUDIO_INPUT = frozenset({"format", "turn_detection", "transcription"}) | _EXTRA_INPUT
_AUDIO_OUTPUT = frozenset({"format", "voice"}) | _EXTRA_OUTPUT
_TOP = frozenset({"type", "model", "instructions", "output_modalities", "audio"}) | _EXTRA_TOP
#: session types: a voice session, or one that only transcribes its input audio
SESSION_TYPES = ("realtime", "transcription")
#: what a transcription session has: its input side and ``include``
_TRANSCRIPTION_TOP = frozenset({"type", "audio", "include"})
#: the transcription a transcription session gets when it names none (the service's GA default)
DEFAULT_TRANSCRIPTION = MappingProxyType({"model": "gpt-4o-transcribe"})


def normalize_format(value: Any, field: str = "audio.input.format") -> Mapping[str, Any]:
    """A GA audio format as a read-only mapping.

    Accepts a GA format object (``{"type": "audio/pcm", "rate": 24000}``, ``{"type":
    "audio/pcmu"}``, ``{"type": "audio/pcma"}``), a GA type string (``"audio/pcmu"``) or a
    beta name (``"pcm16"``, ``"g711_ulaw"``, ``"g711_alaw"``).
    """
    value = beta_format_to_ga(value)
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise SessionConfigError(field, f"must be a format object, got {type(value).__name__}")
    fmt_type = value.get("type")
    if fmt_type not in _FORMATS:
        raise SessionConfigError(
            field, f"type must be one of {', '.join(_FORMATS)}, got {fmt_type!r}"
        )
    unknown = set(value) - {"type", "rate"}
    if unknown:
        raise SessionConfigError(f"{field}.{sorted(unknown)[0]}", "unknown format field")
    rate = value.get("rate")
    expected = 24000 if fmt_type == "audio/pcm" else 8000
    if rate is not None and rate != expected:
        raise SessionConfigError(
            f"{field}.rate", f"{fmt_type} supports only {expected} Hz, got {rate!r}"
        )
    return _FORMATS[fmt_type]


def audio_bytes_per_ms(fmt: Mapping[str, Any]) -> int:
    """Bytes of raw audio per millisecond in format ``fmt`` (48 for PCM 24 kHz, 8 for G.711)."""
    return _BYTES_PER_MS[fmt["type"]]


def _check_keys(value: Any, field: str, spec: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SessionConfigError(field, f"must be an object or null, got {type(value).__name__}")
    for key, item in value.items():
        if key == "type":
            continue
        if key not in spec:
            raise SessionConfigError(
                f"{field}.{key}", f"unknown field; known: {', '.join(sorted(spec))}"
            )
        expected, ok = spec[key]
        if not ok(item):
            raise SessionConfigError(f"{field}.{key}", f"must be {expected}, got {item!r}")
    return dict(value)


def _turn_detection(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    field = "audio.input.turn_detection"
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind not in _TURN_DETECTION:
        if not isinstance(value, Mapping):
            raise SessionConfigError(field, f"must be an object or null, got {value!r}")
        raise SessionConfigError(
            f"{field}.type", f"must be server_vad or semantic_vad, got {kind!r}"
        )
    return MappingProxyType(_check_keys(value, field, _TURN_DETECTION[kind]))


def _transcription(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    return MappingProxyType(_check_keys(value, "audio.input.transcription", _TRANSCRIPTION))


def _modalities(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and tuple(value) in (("audio",), ("text",)):
        return tuple(value)
    raise SessionConfigError("output_modalities", f"must be ['audio'] or ['text'], got {value!r}")


def _voice(value: Any) -> str | None:
    if value is None or value in GA_VOICES:
        return value
    raise SessionConfigError(
        "audio.output.voice", f"{value!r} is not a GA voice; known: {', '.join(sorted(GA_VOICES))}"
    )


def _optional_str(field: str) -> Any:
    def convert(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise SessionConfigError(field, f"must be a string, got {type(value).__name__}")

    return convert


def _model(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise SessionConfigError("model", f"must be a non-empty string, got {value!r}")


def _extra(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SessionConfigError("extra", "must be a mapping of GA session fields")
    for key, item in value.items():
        if key == "audio":
            if not isinstance(item, Mapping) or set(item) - {"input", "output"}:
                raise SessionConfigError("audio", "extra audio holds only input and output")
            for side, allowed in (("input", _EXTRA_INPUT), ("output", _EXTRA_OUTPUT)):
                sub = item.get(side, {})
                if not isinstance(sub, Mapping):
                    raise SessionConfigError(f"audio.{side}", "must be an object")
                for name in sub:
                    if name not in allowed:
                        raise SessionConfigError(f"audio.{side}.{name}", "not a pass-through field")
        elif key not in _EXTRA_TOP:
            raise SessionConfigError(key, "not a pass-through session field")
    return MappingProxyType(copy.deepcopy(dict(value)))


def _merge_into(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _session_type(value: Any) -> str:
    if value in SESSION_TYPES:
        return value
    raise SessionConfigError("type", f"must be one of {', '.join(SESSION_TYPES)}, got {value!r}")


@attrs.frozen
class SessionConfig:
    """A realtime (or transcription) session's configuration (GA); see the module docstring."""

    model: str = attrs.field(default=DEFAULT_MODEL, converter=_model)
    instructions: str | None = attrs.field(default=None, converter=_optional_str("instructions"))
    voice: str | None = attrs.field(default=None, converter=_voice)
    output_modalities: tuple[str, ...] = attrs.field(default=("audio",), converter=_modalities)
    input_format: Mapping[str, Any] = attrs.field(
        default=_FORMATS["audio/pcm"],
        converter=lambda v: normalize_format(v, "audio.input.format"),
        hash=False,
    )
    output_format: Mapping[str, Any] = attrs.field(
        default=_FORMATS["audio/pcm"],
        converter=lambda v: normalize_format(v, "audio.output.format"),
        hash=False,
    )
    turn_detection: Mapping[str, Any] | None = attrs.field(
        default=MappingProxyType({"type": "server_vad"}), converter=_turn_detection, hash=False
    )
    transcription: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_transcription, hash=False
    )
    #: Other GA session fields (tools, tool_choice, tracing, …) sent verbatim.
    extra: Mapping[str, Any] = attrs.field(
        factory=lambda: MappingProxyType({}), converter=_extra, hash=False
    )
    #: ``"realtime"`` or ``"transcription"`` (connects with ``?intent=transcription``)
    type: str = attrs.field(default="realtime", converter=_session_type, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.type == "transcription":
            for key in self.extra:
                if key not in _TRANSCRIPTION_TOP:
                    raise SessionConfigError(key, "not a field of a transcription session")
            if "output" in (self.extra.get("audio") or {}):
                raise SessionConfigError("audio.output", "a transcription session has no output")

    @property
    def transcribes(self) -> bool:
        """A transcription session: input audio is transcribed, nothing answers it."""
        return self.type == "transcription"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionConfig:
        """A config from a GA session object (plus ``model``), beta names also accepted.

        Beta names (``modalities``, ``voice``, ``input_audio_format``, ``output_audio_format``,
        ``turn_detection``, ``input_audio_transcription``, …) are moved to their GA places
        first; giving one value both ways with different values is an error.  Unknown fields
        are errors.  Missing fields take the defaults.
        """
        if not isinstance(data, Mapping):
            raise SessionConfigError("session", f"must be an object, got {type(data).__name__}")
        ga = beta_session_to_ga(dict(data))
        for key in ga:
            if key not in _TOP:
                raise SessionConfigError(key, "unknown session field")
        kind = _session_type(ga.get("type", "realtime"))
        if kind == "transcription":
            for key in ga:
                if key not in _TRANSCRIPTION_TOP:
                    raise SessionConfigError(
                        key, "not a field of a transcription session (it has type, audio.input "
                             "and include)")
            if isinstance(ga.get("audio"), Mapping) and "output" in ga["audio"]:
                raise SessionConfigError("audio.output", "a transcription session has no output")
        audio = ga.get("audio")
        audio = {} if audio is None else audio
        if not isinstance(audio, Mapping):
            raise SessionConfigError("audio", "must be an object")
        for key in audio:
            if key not in ("input", "output"):
                raise SessionConfigError(f"audio.{key}", "unknown field; known: input, output")
        sides = {}
        for side, known in (("input", _AUDIO_INPUT), ("output", _AUDIO_OUTPUT)):
            value = audio.get(side)
            value = {} if value is None else value
            if not isinstance(value, Mapping):
                raise SessionConfigError(f"audio.{side}", "must be an object")
            for key in value:
                if key not in known:
                    raise SessionConfigError(
                        f"audio.{side}.{key}", f"unknown field; known: {', '.join(sorted(known))}"
                    )
            sides[side] = value
        extra: dict[str, Any] = {k: v for k, v in ga.items() if k in _EXTRA_TOP}
        extra_audio = {
            side: {k: v for k, v in sides[side].items() if k in allowed}
            for side, allowed in (("input", _EXTRA_INPUT), ("output", _EXTRA_OUTPUT))
        }
        extra_audio = {side: v for side, v in extra_audio.items() if v}
        if extra_audio:
            extra["audio"] = extra_audio
        kwargs: dict[str, Any] = {"extra": extra, "type": kind}
        for name, key in (("model", "model"), ("instructions", "instructions")):
            if key in ga:
                kwargs[name] = ga[key]
        if "output_modalities" in ga:
            kwargs["output_modalities"] = ga["output_modalities"]
        for name, side, key in (
            ("input_format", "input", "format"),
            ("turn_detection", "input", "turn_detection"),
            ("transcription", "input", "transcription"),
            ("output_format", "output", "format"),
            ("voice", "output", "voice"),
        ):
            if key in sides[side]:
                kwargs[name] = sides[side][key]
        return cls(**kwargs)

    def updated(self, session: Mapping[str, Any]) -> SessionConfig:
        """This config changed by the (partial, GA) ``session`` of a ``session.update``.

        As on the service, only given fields change: ``audio``, ``audio.input`` and
        ``audio.output`` merge; every other value (a format, turn detection, tools) is
        replaced whole.  ``model`` cannot change.
        """
        if not isinstance(session, Mapping):
            raise SessionConfigError("session", "must be an object")
        if "model" in session and session["model"] != self.model:
            raise SessionConfigError("model", "cannot change during a session")
        if session.get("type", self.type) != self.type:
            raise SessionConfigError("type", f"cannot change during a session (it is {self.type!r})")
        merged = self.to_session_object()
        for key, value in session.items():
            if key == "audio" and isinstance(value, Mapping):
                for side, sub in value.items():
                    if isinstance(sub, Mapping) and side in merged["audio"]:
                        merged["audio"][side].update(sub)
                    else:
                        merged["audio"][side] = sub
            else:
                merged[key] = value
        if not self.transcribes:
            merged["model"] = self.model
        return attrs.evolve(SessionConfig.from_dict(merged), model=self.model)

    def to_session_object(self) -> dict[str, Any]:
        """The GA ``session`` object (``type: "realtime"``; ``model`` omitted: it cannot
        change after the connection is made, it belongs in the URL). A transcription
        session's holds its input side and ``include`` only."""
        if self.transcribes:
            detection = self.turn_detection
            transcription = self.transcription if self.transcription is not None else DEFAULT_TRANSCRIPTION
            session: dict[str, Any] = {"type": "transcription", "audio": {"input": {
                "format": dict(self.input_format),
                "turn_detection": None if detection is None else dict(detection),
                "transcription": dict(transcription),
            }}}
            _merge_into(session, self.extra)
            return session
        audio_out: dict[str, Any] = {"format": dict(self.output_format)}
        if self.voice is not None:
            audio_out["voice"] = self.voice
        session = {
            "type": "realtime",
            "output_modalities": list(self.output_modalities),
        }
        if self.instructions is not None:
            session["instructions"] = self.instructions
        detection, transcription = self.turn_detection, self.transcription
        session["audio"] = {
            "input": {
                "format": dict(self.input_format),
                "turn_detection": None if detection is None else dict(detection),
                "transcription": None if transcription is None else dict(transcription),
            },
            "output": audio_out,
        }
        _merge_into(session, self.extra)
        return session

    def to_update_event(self) -> dict[str, Any]:
        """``{"type": "session.update", "session": self.to_session_object()}``."""
        return {"type": "session.update", "session": self.to_session_object()}
