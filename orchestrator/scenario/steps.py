"""Script steps: what one session does, in order.

In a scenario file a step is a mapping whose *kind key* names the step and carries its main
value; the other fields sit beside it or inside a mapping under the kind key::

    - say: "What's the weather?"          # text turn, waits for response.done
      wait: false
    - play: audio/hello.wav               # stream a file in real time, 20 ms chunks
      commit: true
    - speak: "What's the weather in Paris?"   # synthesized offline (espeak-ng), streamed as play
      voice: en-us                        # espeak-ng voice; rate: words a minute (160)
    - expect: {said: /sunny/, within: 2s} # checks on the last finished turn (see Expect)
    - wait_response: {timeout: 10s}       # or: wait_response: 10s, or the bare string
    - wait_transcript: {timeout: 10s}     # the input transcript of an utterance
    - barge_in: {after: 300ms}            # or: barge_in: 300ms
    - cancel                              # bare string (or cancel: null)
    - pause: 1.5s
    - repeat: 3                           # or: repeat: {times: 3, steps: [...]}
      steps:
        - say: again
    - send: {type: input_audio_buffer.clear}
    - say: "call get_weather city=Paris"  # the model calls a function tool (session tools)
    - expect_tool_call: get_weather       # or {name: ..., arguments: {city: Paris}, timeout: 10s}
    - answer_tool_call: 'It is sunny in $city'   # or {output: {temp: 21}, respond: true, wait: true}

Runner semantics:

* `Say`: ``conversation.item.create`` (a user ``input_text`` message) then
  ``response.create``; with ``wait`` it waits for ``response.done`` (at most ``timeout``).
* `Play`: streams a ``.wav`` (PCM16 mono) or raw ``.pcm`` (PCM16 mono, session rate) file
  as ``input_audio_buffer.append`` in `CHUNK_SECONDS` chunks, paced in real time unless
  ``realtime: false``. ``commit``: true sends ``input_audio_buffer.commit`` and
  ``response.create`` after the file; false sends neither; None (default) does so only when
  turn detection is off (with VAD the server commits and responds by itself).
* `Speak`: synthesizes ``text`` offline with the ``espeak-ng`` program (``voice``, ``rate`` in
  words a minute, 200 ms of silence before and 400 ms after, or under a server VAD 200 ms more
  than its ``silence_duration_ms`` so the turn ends), resampled to 24 kHz PCM16 (on a SIP call
  or a G.711 WebSocket session straight to 8 kHz G.711 in its law), cached per text/voice/rate/format, and
  streams it exactly as `Play` does
  (``realtime``, ``commit`` alike). Without espeak-ng the step fails saying what to install.
* `Expect`: checks the last finished turn (its ``response.done``); when no turn finished since
  the previous ``expect`` (or the session's start), it first waits for one (at most
  ``timeout``). ``said``: a ``/regex/`` (searched, case-insensitive) or plain text (contained,
  case-insensitive) that the answer's text or audio transcript must match; ``contains``: text
  it must contain; ``tool``: ``{name, args}``, a function call of that turn with that name and
  (at least) those arguments; ``within``: the turn's first audio (else first text) came at most
  that long after the turn began. Each failed check counts ``checks.failed`` (passed ones
  ``checks.passed``) and is recorded with the words actually said; the session goes on (a
  threshold such as ``checks.failed == 0`` decides the run).
* `WaitResponse`: waits for the next ``response.done`` (at most ``timeout``).
* `WaitTranscript`: takes the oldest input audio transcript
  (``conversation.item.input_audio_transcription.completed``) no step took yet, waiting for one
  at most ``timeout``: in a transcription session (population ``session_type: transcription``),
  or in a realtime session whose config turns input transcription on. A ``.failed`` transcript,
  a timeout (``transcripts.missed``) or an utterance lost at a drop fails the session.
* `BargeIn`: waits (at most ``timeout``) for a live response's first output (audio, text or
  transcript delta; on a call, playout starting) -- the one in progress, or else the next --
  and ``after`` seconds later interrupts it (``response.cancel`` and
  ``conversation.item.truncate`` at the played position). One that meets no live response (none
  came, it ended first, or the server finished it before the cancel arrived) counts as
  ``turns.barge_in_missed``; one that cancelled it, as ``turns.barged_in``. It returns once
  the interrupted response is done, so the next step does not take that for its own answer.
* `Cancel`: sends ``response.cancel`` now.
* `Pause`: sleeps ``duration`` seconds. `Repeat`: runs ``steps`` ``times`` times.
* `Send`: sends ``event`` verbatim (it must have a string ``type``).
* `ExpectToolCall`: takes the oldest function call the model made that no step took yet (a
  completed ``function_call`` item in ``response.output_item.done``), waiting for one at most
  ``timeout``; fails the session (``tool.calls_failed``, ``errors``) when none comes, when its
  name is not ``name`` (if given) or when an argument of ``arguments`` is missing or differs.
* `AnswerToolCall`: sends the ``function_call_output`` of the call the last `ExpectToolCall`
  took (else the next call, taken as that step would, without checks), then, with
  ``respond``, ``response.create`` and, with ``wait``, waits for that ``response.done``.
  ``output`` is any JSON value, sent as JSON text; a string is a template sent as it is, where
  ``$key``/``${key}`` are the call's arguments (strings as they are, others as JSON) and
  ``$name``/``$call_id`` the call's own (a placeholder the call lacks fails the step).
"""

import json
import re
import string

from pathlib import Path
from typing import Any, ClassVar, Union

import attrs

from .checks import at_least, at_most, non_empty, optional_seconds, seconds, to_tuple
from .durations import Duration
from .errors import InvalidField

__all__ = [
    "Say",
    "Play",
    "Speak",
    "Expect",
    "WaitResponse",
    "WaitTranscript",
    "BargeIn",
    "Cancel",
    "Pause",
    "Repeat",
    "Send",
    "ExpectToolCall",
    "AnswerToolCall",
    "Step",
    "STEP_KINDS",
    "CHUNK_SECONDS",
    "AUDIO_SUFFIXES",
]

CHUNK_SECONDS = 0.02
AUDIO_SUFFIXES = (".wav", ".pcm")


_positive = at_least(0, strict=True)


def _audio_path(_instance: Any, _attribute: attrs.Attribute, value: Path) -> None:
    if value.suffix.lower() not in AUDIO_SUFFIXES:
        raise InvalidField(f"expected a .wav or .pcm file, got {str(value)!r}", ("path",))


def _event(_instance: Any, _attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidField(f"expected an event mapping, got {type(value).__name__}", ("event",))
    if not isinstance(value.get("type"), str) or not value["type"]:
        raise InvalidField("an event needs a string 'type'", ("event",))


@attrs.frozen
class Say:
    kind: ClassVar[str] = "say"
    primary: ClassVar[str] = "text"

    text: str = attrs.field(validator=non_empty)
    wait: bool = True
    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


@attrs.frozen
class Play:
    kind: ClassVar[str] = "play"
    primary: ClassVar[str] = "path"

    path: Path = attrs.field(converter=Path, validator=_audio_path)
    realtime: bool = True
    commit: bool | None = None


def _voice(_instance: Any, _attribute: attrs.Attribute, value: str) -> None:
    if not value or not all(c.isalnum() or c in "-_+/" for c in value):
        raise InvalidField(f"expected an espeak-ng voice name (en-us, en-gb, en-us+f3), got {value!r}",
                           ("voice",))


@attrs.frozen
class Speak:
    kind: ClassVar[str] = "speak"
    primary: ClassVar[str] = "text"

    text: str = attrs.field(validator=non_empty)
    voice: str = attrs.field(default="en-us", validator=_voice)
    #: words a minute
    rate: int = attrs.field(default=160, validator=[at_least(80), at_most(450)])
    realtime: bool = True
    commit: bool | None = None


def _pattern(_instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is None:
        return
    if not value:
        raise InvalidField("must not be empty", (attribute.name,))
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        try:
            re.compile(value[1:-1])
        except re.error as exc:
            raise InvalidField(f"not a valid regular expression: {exc}", (attribute.name,)) from None


def _tool_expectation(_instance: Any, _attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise InvalidField("expected {name: <function>, args: {...}}", ("tool",))
    extra = [k for k in value if k not in ("name", "args")]
    if extra:
        raise InvalidField(f"unknown key {extra[0]!r} (expected name, args)", ("tool", extra[0]))
    if not isinstance(value.get("args", {}), dict):
        raise InvalidField("expected a mapping of argument values", ("tool", "args"))


def _some_check(instance: Any, _attribute: attrs.Attribute, _value: Any) -> None:
    if instance.said is None and instance.contains is None and instance.tool is None \
            and instance.within is None:
        raise InvalidField("an expect needs at least one of said, contains, tool, within")


@attrs.frozen
class Expect:
    kind: ClassVar[str] = "expect"
    primary: ClassVar[str] = "said"

    said: str | None = attrs.field(default=None, validator=_pattern)
    contains: str | None = attrs.field(default=None, validator=_pattern)
    tool: dict[str, Any] | None = attrs.field(default=None, validator=_tool_expectation)
    within: Duration | None = attrs.field(default=None, converter=optional_seconds,
                                          validator=_positive)
    timeout: Duration = attrs.field(default=30.0, converter=seconds,
                                    validator=[_positive, _some_check])


@attrs.frozen
class WaitResponse:
    kind: ClassVar[str] = "wait_response"
    primary: ClassVar[str] = "timeout"

    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


@attrs.frozen
class WaitTranscript:
    kind: ClassVar[str] = "wait_transcript"
    primary: ClassVar[str] = "timeout"

    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


@attrs.frozen
class BargeIn:
    kind: ClassVar[str] = "barge_in"
    primary: ClassVar[str] = "after"

    after: Duration = attrs.field(default=0.0, converter=seconds)
    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


@attrs.frozen
class Cancel:
    kind: ClassVar[str] = "cancel"
    primary: ClassVar[str | None] = None


@attrs.frozen
class Pause:
    kind: ClassVar[str] = "pause"
    primary: ClassVar[str] = "duration"

    duration: Duration = attrs.field(converter=seconds)


@attrs.frozen
class Repeat:
    kind: ClassVar[str] = "repeat"
    primary: ClassVar[str] = "times"

    times: int = attrs.field(validator=at_least(1))
    steps: "tuple[Step, ...]" = attrs.field(converter=to_tuple, validator=non_empty)


@attrs.frozen
class Send:
    kind: ClassVar[str] = "send"
    primary: ClassVar[str] = "event"

    event: dict[str, Any] = attrs.field(validator=_event)


def _json_output(_instance: Any, _attribute: attrs.Attribute, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidField(f"expected a JSON value (text, number, list, mapping), got "
                           f"{type(value).__name__}", ("output",)) from None
    if isinstance(value, str) and not string.Template(value).is_valid():
        raise InvalidField("a '$' must start a placeholder ($key or ${key}); write $$ for a "
                           "dollar sign", ("output",))


def _optional_name(_instance: Any, _attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value:
        raise InvalidField("expected a function name", ("name",))


@attrs.frozen
class ExpectToolCall:
    kind: ClassVar[str] = "expect_tool_call"
    primary: ClassVar[str] = "name"

    name: str | None = attrs.field(default=None, validator=_optional_name)
    arguments: dict[str, Any] = attrs.field(factory=dict)
    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


@attrs.frozen
class AnswerToolCall:
    kind: ClassVar[str] = "answer_tool_call"
    primary: ClassVar[str] = "output"

    output: Any = attrs.field(validator=_json_output)
    respond: bool = True
    wait: bool = True
    timeout: Duration = attrs.field(default=30.0, converter=seconds, validator=_positive)


Step = Union[Say, Play, Speak, Expect, WaitResponse, WaitTranscript, BargeIn, Cancel, Pause, Repeat,
             Send, ExpectToolCall, AnswerToolCall]
attrs.resolve_types(Repeat, globals())

#: kind key -> step class
STEP_KINDS: dict[str, type] = {
    cls.kind: cls for cls in (Say, Play, Speak, Expect, WaitResponse, WaitTranscript, BargeIn, Cancel,
                              Pause, Repeat, Send, ExpectToolCall, AnswerToolCall)
}
