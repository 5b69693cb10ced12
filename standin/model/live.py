"""The deterministic GPT-Live "model": one Live session's protocol state machine (sans-I/O).

The Live sibling of :class:`~standin.model.realtime.RealtimeSession` behind the same
:class:`~standin.model.dialect.ModelSession` seam: client events (JSON text) and a monotonic
``now`` in, Live server events out (every one of them valid for ``openai.types.live``).

Behaviour, deterministic given the input:

* nothing is sent until the client's ``session.start`` (WebSocket); ``session.started`` carries
  the resolved configuration (``marin`` voice, ``audio/pcm`` 24 kHz unless given), an id
  ``sess_live_…`` and ``expires_at``; a model outside the server's list is an ``error``
  (``model_not_found``) and the session does not start. Any other event before it is an
  ``error`` (``session_not_started``); a second ``session.start`` too.
* audio (``session.input_audio.append``) goes through the energy VAD (Live always listens: 0.5
  threshold, 300 ms padding, 500 ms silence); an utterance is "heard" as ``"audio of N ms"``
  (``session.input_transcript.delta``) and answered.
* ``session.commentary.append`` is acknowledged (``session.commentary.appended``, with the
  command's ``client_event_id``) and answered; instructions and thinking are acknowledged only.
* an answer is ``"You said: …"`` one word a chunk: ``session.output_transcript.delta`` and
  ``session.output_audio.delta`` (a tone, ``chunk_ms`` a word) paced like the Realtime model,
  then ``session.usage.updated`` (cumulative seconds since start).
* delegation to the client: words that start with ``delegate`` (e.g. "delegate: look up the
  order") make a ``session.delegation.created`` (target ``client``) instead of an answer; the
  client's result (commentary or thinking appended with that ``delegation_id``) is then spoken
  as ``"Result: …"``.
* mute/unmute, fixtures (``playing`` then ``played`` after the fixture's duration), and
  ``session.close`` -> ``session.closed`` (``close_requested``; :attr:`closing` set for the shell).
* ``response.*`` and ``decision.*`` need Responses/Decisions delegation, which the stand-in does
  not model: an ``error`` (``unsupported_delegation``) and the session goes on.

Errors are Live ``error`` events (``error.client_event_id`` names the command) and keep the
session open.

With a rules file (``ModelConfig.rules``) the rules answer what was said or heard, as on
Realtime (``rules.py``, limited by ``session.start``'s instructions where a rule says so): a
``say`` rule (or ``default``) is spoken; a ``call`` rule is a client delegation
(``session.delegation.created``: Live's delegation events carry no task text, so the function's
name and arguments stay in the rules) and the result appended for it is answered with the
rule's ``then`` (``$output`` = the result). The rules' timing (``timing.py``) delays the first
audio and the delegation and paces the words. ``ModelConfig.hearing`` recognizes each heard
utterance (else ``"audio of N ms"``); ``ModelConfig.voice`` speaks the answers
(``utterance.py``; its speech is synthesized from when the answer is planned and taken when its
first audio is due, so the time to first audio hides the synthesis: a session's event loop waits
only for speech that is not ready by then).
"""

from __future__ import annotations

import base64
import binascii
import collections
import heapq
import itertools
import json
import random
from typing import Any

import attrs

from standin.model.audio import PCM_24K, AudioFormat, Tone
from standin.model.events import IdFactory
from standin.model.kept_audio import KeptAudio
from standin.model.realtime import ModelConfig
from standin.model.response import reply_for, split_words
from standin.model.rules import Rule, fill
from standin.model.utterance import Utterance, answer_audio
from standin.model.vad import EnergyVad, SpeechStarted, VadParams

__all__ = ["LiveSession", "LIVE_MODELS"]

Event = dict[str, Any]

#: the Live models the stand-in serves by default
LIVE_MODELS = frozenset({"gpt-live-1", "gpt-live-1.1"})
_APPENDED = {"session.instructions.append": "session.instructions.appended",
             "session.thinking.append": "session.thinking.appended",
             "session.commentary.append": "session.commentary.appended"}


class _Refused(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@attrs.define(eq=False)
class LiveSession:
    config: ModelConfig
    ids: IdFactory
    wall_now: float
    #: models a session.start may name (None: any)
    models: frozenset[str] | None = None
    transport: str = "websocket"
    session: dict[str, Any] = attrs.field(factory=dict)
    received: list[Event] = attrs.field(factory=list)
    responses: list[dict[str, Any]] = attrs.field(factory=list)
    #: the conversation as text: {"role", "text"} (seeded ``input``, heard, said)
    history: list[dict[str, str]] = attrs.field(factory=list)
    #: set when the session has closed (``session.closed`` sent): the shell closes the socket
    closing: bool = False
    started: bool = False
    muted: bool = False
    _t0: float | None = None
    _audio_ms: float = 0.0
    _fmt: AudioFormat = PCM_24K
    _vad: EnergyVad | None = None
    _speech_ms: float | None = None
    #: (due, order, event); a callable in place of the event is an answer whose speech is
    #: taken when due (`_speak_next`)
    _scheduled: list[tuple[float, int, Any]] = attrs.field(factory=list)
    _seq: itertools.count = attrs.field(factory=itertools.count)
    _tone: Tone = attrs.field(factory=Tone)
    _busy_until: float = 0.0
    #: answers whose speech is being synthesized, in order: (first audio due, words, pending)
    _speaking: collections.deque[tuple[float, list[str], Any]] = attrs.field(factory=collections.deque)
    _delegations: set[str] = attrs.field(factory=set)
    #: delegations made by a rule's ``call``: id -> (the rule, its template fields)
    _delegated_by: dict[str, tuple[Rule, dict[str, Any]]] = attrs.field(factory=dict)
    #: the rules' timing draws (None: no rules)
    _rng: random.Random | None = None
    #: input samples kept for the hearing model (``config.hearing``)
    _kept: KeptAudio = attrs.field(factory=KeptAudio)

    # -- the ModelSession surface ------------------------------------------------------------

    @property
    def output_audio_format(self) -> AudioFormat:
        """The format of the audio this session speaks (a SIP call converts it to G.711)."""
        return self._fmt

    @property
    def items(self) -> list[dict[str, Any]]:
        return [{"type": "message", "role": h["role"],
                 "content": [{"type": "text", "text": h["text"]}]} for h in self.history]

    def start(self) -> list[Event]:
        """What a new connection to the session gets first: nothing on a primary WebSocket
        (it waits for the client's ``session.start``); a sideband attached to a started
        session (a SIP call accepted on the Live surface) gets its ``session.started``."""
        if not self.started:
            return []
        return [self._ev("session.started", None, session=dict(self.session))]

    def start_for_call(self, config: Any, session_id: str, now: float) -> Event | None:
        """Start the session of a call accepted with ``{"session": config}`` (no
        ``session.start`` on the wire); returns the error (``code``, ``message``, ``param``) if
        the configuration is refused."""
        try:
            if not isinstance(config, dict) or not isinstance(config.get("session"), dict):
                raise _Refused("missing_required_parameter", "The body needs a session object.", "session")
            if "format" in (config["session"].get("audio") or {}):
                raise _Refused("invalid_value", "The media transport (SIP, WebRTC) negotiates its "
                               "format; omit audio.format.",
                               "session.audio.format")
            self._start(config["session"], now, session_id)
        except _Refused as exc:
            return {"code": exc.code, "message": exc.message, "param": exc.param}
        return None

    def close(self, reason: str) -> list[Event]:
        """The session ends for ``reason`` (e.g. ``remote_hangup`` when the caller hangs up)."""
        return self._closed(reason)

    def receive_text(self, text: str, now: float) -> list[Event]:
        try:
            obj = json.loads(text)
        except ValueError:
            return [self._error("invalid_json", "The message is not valid JSON.")]
        if not isinstance(obj, dict):
            return [self._error("invalid_json", "A client event must be a JSON object.")]
        self._record(obj)
        client_event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
        kind = obj.get("type")
        out: list[Event] = []
        try:
            if not isinstance(kind, str):
                raise _Refused("missing_required_parameter", "The 'type' field is required.", "type")
            handler = _HANDLERS.get(kind)
            if handler is None:
                raise _Refused("invalid_value", f"Invalid value: '{kind}'. Unknown event type.", "type")
            if not self.started and kind != "session.start":
                raise _Refused("session_not_started", "Send session.start first and wait for session.started.")
            handler(self, obj, client_event_id, now, out)
        except _Refused as exc:
            out.append(self._error(exc.code, exc.message, exc.param, client_event_id))
        return out + self.handle_timer(now)

    def receive_binary(self, data: bytes, now: float) -> list[Event]:
        return [self._error("unsupported_frame", "Binary frames are not supported; use JSON text.")]

    def receive_audio(self, pcm: bytes, now: float) -> list[Event]:
        out: list[Event] = []
        self._hear(pcm, PCM_24K, now, out)
        return out + self.handle_timer(now)

    def get_timer(self) -> float | None:
        return self._scheduled[0][0] if self._scheduled else None

    def handle_timer(self, now: float) -> list[Event]:
        out = []
        while self._scheduled and self._scheduled[0][0] <= now:
            item = heapq.heappop(self._scheduled)[2]
            if callable(item):
                item()  # schedules the answer's chunks (some may be due now: the loop sends them)
            else:
                out.append(item)
        return out

    def expired(self) -> list[Event]:
        """The session hit its duration limit (or an expiry fault): ``session.closed``."""
        return self._closed("expired")

    # -- handlers ----------------------------------------------------------------------------

    def _on_start(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        if self.started:
            raise _Refused("session_already_started", "The session has already started.")
        self._start(obj.get("session"), now, self.ids.new("sess_live"))
        out.append(self._ev("session.started", cid, session=dict(self.session)))

    def _start(self, config: Any, now: float, session_id: str) -> None:
        if not isinstance(config, dict) or not isinstance(config.get("model"), str):
            raise _Refused("missing_required_parameter", "session.model is required.", "session.model")
        model = config["model"]
        if self.models is not None and model not in self.models:
            raise _Refused("model_not_found",
                           f"The model '{model}' does not exist or you do not have access to it.",
                           "session.model")
        audio = config.get("audio") if isinstance(config.get("audio"), dict) else {}
        fmt = audio.get("format") or {"type": "audio/pcm", "rate": 24000}
        if not isinstance(fmt, dict) or (fmt.get("type"), fmt.get("rate")) not in (
                ("audio/pcm", 24000), ("audio/pcmu", 8000), ("audio/pcma", 8000)):
            raise _Refused("unsupported_audio_format",
                           "The stand-in serves audio/pcm at 24000 Hz and G.711 at 8000 Hz.",
                           "session.audio.format")
        seed = config.get("input") or []
        if not isinstance(seed, list) or len(seed) > 128:
            raise _Refused("invalid_value", "session.input holds at most 128 messages.", "session.input")
        for index, item in enumerate(seed):
            text = _initial_text(item)
            if text is None:
                raise _Refused("invalid_value", "Each input message needs a role and one text part.",
                               f"session.input[{index}]")
            self.history.append({"role": item["role"], "text": text})
        self._fmt = AudioFormat.from_session(fmt)
        output = audio.get("output") if isinstance(audio.get("output"), dict) else {}
        self.session = {
            "id": session_id, "expires_at": int(self.wall_now + self.config.max_session_s),
            "model": model, "status": "active",
            "audio": {"format": dict(fmt), "output": {"voice": output.get("voice") or "marin"}},
            "delegation": config.get("delegation") or {"type": "client"},
            "input": seed, "store": bool(config.get("store", False)),
        }
        if isinstance(config.get("instructions"), str):
            self.session["instructions"] = config["instructions"]
        self.started, self._t0 = True, now
        self._tone = Tone(self.config.tone_hz, self.config.tone_amplitude)
        if self.config.rules is not None:
            self._rng = self.config.rules.timing.session_rng()
        self._vad = EnergyVad(VadParams(), self._fmt.rate, 0.0)

    def _on_update(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        update = obj.get("session")
        if not isinstance(update, dict):
            raise _Refused("missing_required_parameter", "session is required.", "session")
        immutable = sorted(set(update) & {"model", "instructions", "audio", "input", "store"})
        if immutable:
            raise _Refused("immutable_parameter", f"session.{immutable[0]} cannot change after startup.",
                           f"session.{immutable[0]}")
        delegation = update.get("delegation")
        if isinstance(delegation, dict):
            if delegation.get("type") != self.session["delegation"].get("type"):
                raise _Refused("invalid_value", "The delegation type cannot change.", "session.delegation.type")
            self.session["delegation"] = {**self.session["delegation"], **delegation}
        out.append(self._ev("session.updated", cid, session=dict(self.session)))

    def _on_append(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        audio = obj.get("audio")
        if not isinstance(audio, str):
            raise _Refused("missing_required_parameter", "audio is required.", "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise _Refused("invalid_value", "audio must be base64-encoded", "audio") from None
        if not self.muted:
            self._hear(data, self._fmt, now, out)

    def _on_appended(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        content = obj.get("content")
        if not isinstance(content, str):
            raise _Refused("missing_required_parameter", "content is required.", "content")
        delegation_id = obj.get("delegation_id")
        if delegation_id is not None and delegation_id not in self._delegations:
            raise _Refused("invalid_value", f"Unknown delegation '{delegation_id}'.", "delegation_id")
        at = self._ms(now)
        out.append(self._ev(_APPENDED[obj["type"]], cid, start_ms=at, end_ms=at))
        if obj["type"] == "session.instructions.append" and delegation_id is None:
            self.history.append({"role": "developer", "text": content})
            return
        if delegation_id is not None:
            self._delegations.discard(delegation_id)
            by_rule = self._delegated_by.pop(delegation_id, None)
            if by_rule is not None and by_rule[0].then is not None:
                rule, fields = by_rule
                self._answer(fill(rule.then, {**fields, "output": content}), now, rule)
            else:
                self._answer(f"Result: {content}", now)
        elif obj["type"] == "session.commentary.append":
            self.history.append({"role": "user", "text": content})
            self._respond(content, now, out)

    def _on_mute(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        self.muted = obj["type"] == "session.input_audio.mute"
        out.append(self._ev("session.input_audio.muted" if self.muted else "session.input_audio.unmuted", cid))

    def _on_fixture(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        try:
            data = base64.b64decode(obj.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            raise _Refused("invalid_value", "audio must be base64-encoded PCM16 at 24 kHz", "audio") from None
        seconds = PCM_24K.duration_ms(len(data)) / 1000
        if seconds > 30:
            raise _Refused("invalid_value", "A fixture is at most 30 seconds.", "audio")
        out.append(self._ev("session.output_audio.fixture.playing", cid))
        self._at(now + seconds * self.config.pace, self._ev("session.output_audio.fixture.played", cid))

    def _on_backend(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        raise _Refused("unsupported_delegation",
                       f"{obj['type']} needs Responses or Decisions delegation, which the "
                       "embedded server does not model.")

    def _on_close(self, obj: Event, cid: str | None, now: float, out: list[Event]) -> None:
        out.extend(self._closed("close_requested", cid))

    # -- behaviour ---------------------------------------------------------------------------

    def _hear(self, data: bytes, fmt: AudioFormat, now: float, out: list[Event]) -> None:
        if self._vad is None:
            return
        samples = fmt.decode(data[: len(data) - len(data) % max(1, fmt.sample_width)])
        if fmt.rate != self._fmt.rate:
            samples = samples[:: fmt.rate // self._fmt.rate]
        self._audio_ms += fmt.duration_ms(len(data))
        if self.config.hearing is not None:
            self._keep(samples)
        for change in self._vad.feed(samples):
            if isinstance(change, SpeechStarted):
                self._speech_ms = max(0.0, change.at_ms - 300)
            elif self._speech_ms is not None:
                start, self._speech_ms = self._speech_ms, None
                heard = self._recognize(start, change.at_ms) or f"audio of {round(change.at_ms - start)} ms"
                self.history.append({"role": "user", "text": heard})
                t0 = self._ms(now)
                out.append(self._ev("session.input_transcript.delta", None, delta=heard,
                                    start_ms=t0, end_ms=t0))
                self._respond(heard, now, out)

    def _keep(self, samples: Any) -> None:
        """Keep input for the hearing model: all of an utterance, else (at least) the last second."""
        self._kept.add(samples)
        if self._speech_ms is None:
            self._kept.keep_last(1000, self._fmt.rate)

    def _recognize(self, start_ms: float, end_ms: float) -> str | None:
        """What the hearing model heard between ``start_ms`` and ``end_ms`` (None: nothing)."""
        if self.config.hearing is None:
            return None
        window = self._kept.take(start_ms, end_ms, self._fmt.rate)
        return None if window is None else self.config.hearing.hear(window, self._fmt.rate)

    def _instructions(self) -> str:
        return " ".join([str(self.session.get("instructions") or "")]
                        + [h["text"] for h in self.history if h["role"] == "developer"])

    def _respond(self, words: str, now: float, out: list[Event]) -> None:
        rules = self.config.rules
        if rules is not None:
            found = rules.answer(words, None, self._instructions())
            if found is not None and found[0].call_name is not None:
                rule, fields = found
                delay = rules.timing_of(rule).tool_decision.draw(self._rng) * self.config.pace
                self._delegate(now + delay, (rule, {**rule.call_args, **fields}), out if delay == 0 else None)
                return
            if found is not None:
                self._answer(fill(found[0].say or "", found[1]), now, found[0])
                return
            if rules.default is not None:
                self._answer(rules.default, now)
                return
        if words.lower().startswith("delegate"):
            self._delegate(now, None, out)
            return
        self._answer(reply_for(words), now)

    def _delegate(self, when: float, by_rule: tuple[Rule, dict[str, Any]] | None,
                  out: list[Event] | None) -> None:
        """A client delegation, now (into ``out``) or scheduled at ``when``."""
        delegation_id = self.ids.new("dlg")
        self._delegations.add(delegation_id)
        if by_rule is not None:
            self._delegated_by[delegation_id] = by_rule
        event = self._ev("session.delegation.created", None, offset_ms=self._ms(when), delegation={
            "id": delegation_id, "target": "client", "type": "delegation"})
        if out is not None:
            out.append(event)
        else:
            self._at(when, event)

    def _answer(self, text: str, now: float, rule: Rule | None = None) -> None:
        """Speak ``text`` a chunk at a time, paced, each chunk after the transcript deltas of
        the words starting in it; answers queue behind each other."""
        self.history.append({"role": "assistant", "text": text})
        words = split_words(text)
        first, wps = now, None
        if self.config.rules is not None and self._rng is not None:
            timing = self.config.rules.timing_of(rule)
            first = now + timing.first_audio.draw(self._rng) * self.config.pace
            wps = timing.words_per_second.draw(self._rng)
        voice = self.session["audio"]["output"].get("voice")
        spoken = answer_audio(self.config.voice, self._tone, self._fmt, text, words, self.config.chunk_ms, wps,
                              voice if isinstance(voice, str) else None)
        if isinstance(spoken, Utterance) and not self._speaking:
            self._say(spoken, words, max(first, self._busy_until))
            return
        self._speaking.append((first, words, spoken))
        if len(self._speaking) == 1:
            self._at(max(first, self._busy_until), self._speak_next)

    def _speak_next(self) -> None:
        """The first queued answer's audio is due: take its speech (waiting only if it is not
        synthesized yet), schedule it, and the next queued answer after it."""
        first, words, spoken = self._speaking.popleft()
        self._say(spoken if isinstance(spoken, Utterance) else spoken(), words,
                  max(first, self._busy_until))
        if self._speaking:
            self._at(max(self._speaking[0][0], self._busy_until), self._speak_next)

    def _say(self, spoken: Utterance, words: list[str], at: float) -> None:
        """Schedule ``spoken`` from ``at``: each chunk after the transcript deltas of the words
        starting in it; the session is busy until its end."""
        word = 0
        for index, chunk in enumerate(spoken.chunks):
            start, duration = self._ms(at), spoken.durations[index]
            last = index == len(spoken.chunks) - 1
            while word < len(words) and (last or spoken.word_chunk[word] <= index):
                self._at(at, self._ev("session.output_transcript.delta", None, delta=words[word],
                                      start_ms=start, end_ms=start + duration))
                word += 1
            delta: Event = {"type": "session.output_audio.delta",
                            "delta": base64.b64encode(chunk).decode("ascii")}
            if self.transport != "websocket":  # reflected to sidebands: with its time range
                delta.update(start_ms=start, end_ms=start + duration)
            self._at(at, delta)
            at += duration / 1000 * self.config.pace
        self._busy_until = at
        self._at(at, self._ev("session.usage.updated", None, usage=self._usage(at)))

    def _closed(self, reason: str, cid: str | None = None) -> list[Event]:
        if self.closing:
            return []
        self.closing = True
        self._scheduled.clear()
        self._speaking.clear()
        session = dict(self.session) if self.session else {
            "id": self.ids.new("sess_live"), "expires_at": int(self.wall_now), "model": "unknown",
            "status": "active"}
        end = self._busy_until if self._t0 is not None else 0.0
        return [self._ev("session.closed", cid, reason=reason, session=session, usage=self._usage(end))]

    # -- helpers -----------------------------------------------------------------------------

    def _usage(self, at: float) -> dict[str, Any]:
        return {"seconds": float(int(max(0.0, at - (self._t0 or at))))}

    def _ms(self, now: float) -> int:
        return round(max(0.0, now - (self._t0 if self._t0 is not None else now)) * 1000)

    def _at(self, when: float, event: Event) -> None:
        heapq.heappush(self._scheduled, (when, next(self._seq), event))

    def _ev(self, kind: str, cid: str | None, **fields: Any) -> Event:
        event = {"type": kind, "event_id": self.ids.new("event"), **fields}
        if cid is not None:
            event["client_event_id"] = cid
        return event

    def _error(self, code: str, message: str, param: str | None = None,
               cid: str | None = None) -> Event:
        error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
        if param is not None:
            error["param"] = param
        if cid is not None:
            error["client_event_id"] = cid
        return self._ev("error", cid, error=error)

    def _record(self, obj: Event) -> None:
        """What tests need of a client event, never its audio (its length instead)."""
        if isinstance(obj.get("audio"), str):
            obj = {**obj, "audio": f"<{len(obj['audio'])} base64 chars>"}
        self.received.append(obj)
        if len(self.received) > self.config.max_recorded_events:
            del self.received[: len(self.received) - self.config.max_recorded_events]


def _initial_text(item: Any) -> str | None:
    if not isinstance(item, dict) or item.get("role") not in ("user", "assistant", "developer"):
        return None
    content = item.get("content")
    if not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict):
        return None
    text = content[0].get("text")
    return text if isinstance(text, str) else None


_HANDLERS = {
    "session.start": LiveSession._on_start,
    "session.update": LiveSession._on_update,
    "session.input_audio.append": LiveSession._on_append,
    "session.input_audio.mute": LiveSession._on_mute,
    "session.input_audio.unmute": LiveSession._on_mute,
    "session.output_audio.fixture.play": LiveSession._on_fixture,
    "session.instructions.append": LiveSession._on_appended,
    "session.thinking.append": LiveSession._on_appended,
    "session.commentary.append": LiveSession._on_appended,
    "decision.create": LiveSession._on_backend,
    "decision.item.create": LiveSession._on_backend,
    "decision.item.delete": LiveSession._on_backend,
    "response.item.create": LiveSession._on_backend,
    "response.create": LiveSession._on_backend,
    "session.close": LiveSession._on_close,
}
