"""The deterministic realtime "model": one session's protocol state machine (sans-I/O).

No sockets, no trio: :class:`RealtimeSession` takes client events (JSON text or dicts) and a
monotonic ``now`` in seconds, and returns the server events to send, in order. Time-driven output
(audio paced in real time, delayed transcriptions) is exposed aioquic-style: :meth:`get_timer`
gives the next deadline, :meth:`handle_timer` emits what is due. The WebSocket shell (``ws.py``)
only moves frames and sleeps until the timer.

Behaviour, all deterministic given the input: a text turn answers the last user words with
``"You said: …"`` (split into word deltas); audio input goes through an energy VAD
(``server_vad``, see ``vad.py``) whose committed user item is "heard" as ``"audio of N ms"``; audio
responses are a tone, one ``chunk_ms`` chunk a word, interleaved with transcript deltas. Errors
are GA ``error`` events and keep the session open (codes listed in ``events.py``).

With ``ModelConfig.rules`` the rules answer (``rules.py``, limited by the session's
``instructions`` where a rule says so) and time the answer (``timing.py``: time to first audio,
words per second, tool-decision delay, drawn from this session's seeded generator); with
``ModelConfig.hearing`` committed audio is recognized; with ``ModelConfig.voice`` answers are
spoken (``utterance.py``; the voice, e.g. ``standin.speech.SpeechVoice``, synthesizes them
while the response waits for its first audio, and the first chunk waits for it if need be).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import attrs

from standin.model import config as cfg
from standin.model import transcription
from standin.model.append import bare_append
from standin.model.audio import PCM_24K, AudioFormat, Tone
from standin.model.billing import response_usage
from standin.model.conversation import Conversation, item_from_client
from standin.model.events import ClientError, IdFactory, error_event
from standin.model.function_call import FunctionCallRun, function_call_item
from standin.model.kept_audio import KeptAudio
from standin.model.response import ResponseRun, split_words
from standin.model.timing import DEFAULT_TIMING
from standin.model.tools import ToolCall, check_tool_choice, check_tools, plan_answer
from standin.model.utterance import Pending, Utterance, answer_audio
from standin.model.vad import EnergyVad, SpeechStarted

__all__ = ["ModelConfig", "RealtimeSession"]

Event = dict[str, Any]


@attrs.frozen
class ModelConfig:
    """Knobs of the deterministic model (the defaults suit tests and load runs alike)."""

    chunk_ms: int = 100  # output audio per delta (one word a chunk)
    pace: float = 1.0  # 1.0 = audio deltas in real time; 0 = as fast as possible
    tone_hz: float = 440.0
    tone_amplitude: float = 0.25
    transcription_delay_s: float = 0.0
    max_session_s: float = 3600.0
    max_recorded_events: int = 10_000
    #: answers by rules (``standin.model.rules.Rules``; None: the echo model)
    rules: Any = None
    #: hears committed input audio (``standin.hearing.Hearing``; None: "audio of N ms")
    hearing: Any = None
    #: speaks answers (``standin.speech.SpeechVoice``: ``prepare(text, fmt, wpm)`` returns a
    #: callable giving the audio in ``fmt``, or None when synthesis failed); None: the tone
    voice: Any = None


@attrs.define(eq=False)
class RealtimeSession:
    session: dict[str, Any]
    config: ModelConfig
    ids: IdFactory
    transport: str = "websocket"  # "websocket" | "sideband" (attached with ?call_id=) | "webrtc"
    conversation: Conversation = attrs.field(factory=Conversation)
    received: list[Event] = attrs.field(factory=list)
    responses: list[dict[str, Any]] = attrs.field(factory=list)  # response objects, latest state
    audio_output_started: bool = False
    _audio_ms: float = 0.0  # all input audio so far (the VAD clock)
    _buffer_start_ms: float = 0.0  # start of the uncommitted input buffer
    _speech: tuple[str, float] | None = None  # (item_id, audio_start_ms) while speaking
    _vad: EnergyVad | None = None
    _heard: dict[str, str] = attrs.field(factory=dict)  # item_id -> deterministic transcript
    _scheduled: list[tuple[float, int, Event]] = attrs.field(factory=list)
    _seq: itertools.count = attrs.field(factory=itertools.count)
    _tone: Tone = attrs.field(factory=Tone)
    _runs: list[ResponseRun] = attrs.field(factory=list)  # responses in progress
    _played_ms: dict[str, int] = attrs.field(factory=dict)  # assistant item -> audio ms sent
    #: the last entry of ``received`` when it is a run of appends, its appends and their length
    _append_entry: Event | None = None
    _append_count: int = 0
    _append_chars: int = 0
    #: when ``input_audio_buffer.timeout_triggered`` fires (server VAD ``idle_timeout_ms``)
    _idle_due: float | None = None
    #: user audio of each user audio item (ms), for its input tokens
    _audio_in_ms: dict[str, float] = attrs.field(factory=dict)
    #: items some earlier response took as input: cached input from then on
    _cached: set[str] = attrs.field(factory=set)
    #: the server's rate limits (``standin.faults.limits.BoundLimits``; None: none enforced,
    #: ``rate_limits.updated`` announces fixed numbers)
    limits: Any = None
    #: the time of the input being handled (what ``rate_limits.updated`` is announced at)
    _now: float = 0.0
    #: input audio kept for the hearing model (``config.hearing``)
    _kept: KeptAudio = attrs.field(factory=KeptAudio)
    #: the rules' timing draws of this session (None: no rules, the echo model's fixed timing)
    _rng: random.Random | None = None
    #: assistant audio item -> the chunk each word of its transcript went with (truncation)
    _word_chunks: dict[str, tuple[int, ...]] = attrs.field(factory=dict)
    #: while the session's input config stands (set with the VAD): its input format, that
    #: format's bytes a millisecond, and whether appended bytes go to the VAD as they are
    #: (PCM16 and no hearing model); None: read from the session
    _input: tuple[AudioFormat, float, bool] | None = None

    @classmethod
    def create(
        cls,
        *,
        model: str,
        wall_now: float,
        config: ModelConfig | None = None,
        ids: IdFactory | None = None,
        initial: dict[str, Any] | None = None,
        transport: str = "websocket",
        intent: str | None = None,
    ) -> RealtimeSession:
        """A fresh session; ``initial`` is a session config (e.g. from a client secret);
        ``intent="transcription"`` (or an initial config of that type): a transcription session."""
        config = config or ModelConfig()
        ids = ids or IdFactory()
        expires_at = int(wall_now + config.max_session_s)
        given = {k: v for k, v in (initial or {}).items() if k not in ("id", "object", "expires_at")}
        if intent == "transcription" or given.get("type") == "transcription":
            session = transcription.default_session(session_id=ids.new("sess"), expires_at=expires_at)
            if given.get("type") == "transcription":
                session = transcription.apply_update(session, given)
        else:
            session = cfg.default_session(session_id=ids.new("sess"), model=model, expires_at=expires_at)
            if given:
                session = cfg.apply_update(session, given, allow_model=True)
        self = cls(session=session, config=config, ids=ids, transport=transport)
        self._tone = Tone(config.tone_hz, config.tone_amplitude)
        if config.rules is not None:
            self._rng = config.rules.timing.session_rng()
        self._reset_vad()
        return self

    # -- the sans-I/O surface --------------------------------------------------------------------

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.conversation.items

    @property
    def transcribing(self) -> bool:
        """A transcription session: utterances are transcribed, never answered."""
        return self.session["type"] == "transcription"

    def start(self) -> list[Event]:
        return [self._ev("session.created", session=self._session_view())]

    def receive_text(self, text: str, now: float) -> list[Event]:
        bare = bare_append(text)
        if bare is not None:  # most of a streaming session's input: no JSON parse, no dict
            return self._receive_append(*bare, now)
        try:
            obj = json.loads(text)
        except ValueError:
            return [self._error(ClientError("invalid_json", "The message is not valid JSON."))]
        return self.receive_event(obj, now)

    def receive_binary(self, data: bytes, now: float) -> list[Event]:
        return [self._error(ClientError("unsupported_frame", "Binary frames are not supported; use JSON text."))]

    def receive_event(self, obj: Any, now: float) -> list[Event]:
        if not isinstance(obj, dict):
            return [self._error(ClientError("invalid_json", "A client event must be a JSON object."))]
        self._record(obj)
        client_event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
        kind = obj.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        out: list[Event] = []
        self._now = now
        try:
            if not isinstance(kind, str):
                raise ClientError("missing_required_parameter", "The 'type' field is required.", "type")
            if handler is None:
                raise ClientError("invalid_value", f"Invalid value: '{kind}'. Unknown event type.", "type")
            if kind in transcription.REFUSED and self.transcribing:
                raise ClientError("invalid_value", f"'{kind}' is not supported in a transcription "
                                  "session: it transcribes input audio and never responds.", "type")
            handler(self, obj, now, out)
        except ClientError as exc:
            out.append(self._error(exc, client_event_id))
        return out + self.handle_timer(now)

    def _receive_append(self, audio: str, data: bytes, event_id: str | None, now: float) -> list[Event]:
        """:meth:`receive_event` of ``{"type": "input_audio_buffer.append", "audio": audio}``
        (with ``"event_id": event_id`` unless None) whose audio decodes to ``data``: the same
        record and events."""
        self._record_append(len(audio))
        self._now = now
        out: list[Event] = []
        try:
            self._take_audio(data, now, out)
        except ClientError as exc:  # a turn the VAD ended, refused: as receive_event reports it
            out.append(self._error(exc, event_id))
        if self._runs or self._scheduled or self._idle_due is not None:  # else nothing is due
            out += self.handle_timer(now)
        return out

    def receive_audio(self, pcm: bytes, now: float) -> list[Event]:
        """Caller audio from a media track (WebRTC/SIP): PCM16 mono at 24 kHz, whatever the
        session's input format. It goes to the input buffer and the VAD like appended audio,
        but is not a client event (nothing is recorded in :attr:`received`)."""
        fmt = cfg.input_format(self.session)
        samples = PCM_24K.decode(pcm)
        if fmt.rate != PCM_24K.rate:
            samples = samples[:: PCM_24K.rate // fmt.rate]  # 8 kHz G.711 sessions: decimate
        self._audio_ms += PCM_24K.duration_ms(len(pcm) - len(pcm) % 2)
        out: list[Event] = []
        self._now = now
        self._keep_and_feed_vad(samples, fmt.rate, now, out)
        return out + self.handle_timer(now)

    def get_timer(self) -> float | None:
        if not self._runs and not self._scheduled and self._idle_due is None:
            return None  # the usual case while a user speaks (checked on every append)
        best = None  # the earliest of the runs' next steps, the first scheduled event, the idle
        for run in self._runs:
            due = run.due()
            if due is not None and (best is None or due < best):
                best = due
        if self._scheduled and (best is None or self._scheduled[0][0] < best):
            best = self._scheduled[0][0]
        if self._idle_due is not None and (best is None or self._idle_due < best):
            best = self._idle_due
        return best

    def handle_timer(self, now: float) -> list[Event]:
        out: list[Event] = []
        self._now = now
        while True:
            due = self.get_timer()
            if due is None or due > now:
                return out
            if self._scheduled and self._scheduled[0][0] <= due:
                out.append(heapq.heappop(self._scheduled)[2])
                continue
            if self._idle_due is not None and self._idle_due <= due:
                self._idle_timeout(now, out)
                continue
            run = min(self._runs, key=lambda r: r.due())
            out += run.step(self._ev)
            self._forget_finished(now)

    # -- handlers -------------------------------------------------------------------------------

    def _on_session_update(self, obj: Event, now: float, out: list[Event]) -> None:
        before = self.session
        if self.transcribing:
            self.session = transcription.apply_update(before, obj.get("session"))
        else:
            self.session = cfg.apply_update(before, obj.get("session"), voice_locked=self.audio_output_started)
        if self.session["audio"]["input"] != before["audio"]["input"]:
            self._reset_vad()
        out.append(self._ev("session.updated", session=self._session_view()))

    def _on_append(self, obj: Event, now: float, out: list[Event]) -> None:
        try:
            data = base64.b64decode(_required(obj, "audio", str), validate=True)
        except (binascii.Error, ValueError):
            raise ClientError("invalid_value", "audio must be base64-encoded", "audio") from None
        self._take_audio(data, now, out)

    def _take_audio(self, data: bytes, now: float, out: list[Event]) -> None:
        """Appended audio into the buffer, the hearing model's keep and the VAD (PCM16 goes to
        the VAD as it is: no float samples made unless the hearing model keeps them)."""
        fmt, bytes_per_ms, as_pcm16 = self._input or self._input_now()
        self._audio_ms += len(data) / bytes_per_ms
        if as_pcm16:
            vad = self._vad
            if vad is not None:
                changes = vad.feed_pcm16(data)
                if changes:
                    self._vad_changes(changes, now, out)
            return
        self._keep_and_feed_vad(fmt.decode(data), fmt.rate, now, out)

    def _input_now(self) -> tuple[AudioFormat, float, bool]:
        fmt = cfg.input_format(self.session)
        return fmt, fmt.bytes_per_ms, fmt.type == "audio/pcm" and self.config.hearing is None

    def _keep_and_feed_vad(self, samples: Any, rate: int, now: float, out: list[Event]) -> None:
        """Samples to the hearing model's keep and the VAD. With the VAD on and nobody
        speaking, the keep holds only what a speech start can reach back to (the prefix
        padding, plus a second for the VAD's detection delay): a session streaming silence for
        an hour keeps a second and a bit, not an hour. (A manual commit in server-VAD mode
        then hears at most that much of a buffer the VAD found no speech in.)"""
        if self.config.hearing is not None:
            self._kept.add(samples)
        if self._vad is None:
            return
        self._vad_changes(self._vad.feed(samples), now, out)
        if self.config.hearing is not None and self._speech is None:
            self._kept.keep_last(self._vad.params.prefix_padding_ms + 1000, rate)

    def _vad_changes(self, changes: list[Any], now: float, out: list[Event]) -> None:
        for change in changes:
            if isinstance(change, SpeechStarted):
                self._speech_started(change.at_ms, out)
            elif self._speech is not None:
                self._speech_stopped(change.at_ms, now, out)

    def _on_commit(self, obj: Event, now: float, out: list[Event]) -> None:
        buffered = self._audio_ms - self._buffer_start_ms
        if buffered < 100:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least 100ms "
                f"of audio, but buffer only has {buffered:.2f}ms of audio.",
            )
        item_id = self._speech[0] if self._speech else self.ids.new("item")
        self._commit(item_id, self._buffer_start_ms, self._audio_ms, now, out)
        self._reset_vad()

    def _on_clear(self, obj: Event, now: float, out: list[Event]) -> None:
        self._buffer_start_ms = self._audio_ms
        self._kept.reset(self._audio_ms)
        self._reset_vad()
        out.append(self._ev("input_audio_buffer.cleared"))

    def _on_item_create(self, obj: Event, now: float, out: list[Event]) -> None:
        fmt = cfg.input_format(self.session)
        item, audio_ms = item_from_client(obj.get("item"), self.ids.new("item"), fmt)
        if item["id"] in self.conversation:
            raise ClientError("invalid_value", f"item id '{item['id']}' already exists", "item.id")
        previous = obj.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise ClientError("invalid_type", "previous_item_id must be a string", "previous_item_id")
        prev = self.conversation.insert(item, previous)
        if audio_ms and item.get("role") == "user":
            self._heard[item["id"]] = f"audio of {round(sum(audio_ms.values()))} ms"
            self._audio_in_ms[item["id"]] = sum(audio_ms.values())
        elif audio_ms and item.get("role") == "assistant":
            self._played_ms[item["id"]] = round(audio_ms.get(0, 0.0))  # replayed assistant audio
        out.append(self._ev("conversation.item.added", previous_item_id=prev, item=_copy(item)))
        out.append(self._ev("conversation.item.done", previous_item_id=prev, item=_copy(item)))

    def _on_item_retrieve(self, obj: Event, now: float, out: list[Event]) -> None:
        item = self._existing_item(obj)
        out.append(self._ev("conversation.item.retrieved", item=_copy(item)))

    def _on_item_delete(self, obj: Event, now: float, out: list[Event]) -> None:
        item = self._existing_item(obj)
        self.conversation.delete(item["id"])
        self._heard.pop(item["id"], None)
        self._word_chunks.pop(item["id"], None)
        out.append(self._ev("conversation.item.deleted", item_id=item["id"]))

    def _on_item_truncate(self, obj: Event, now: float, out: list[Event]) -> None:
        item = self._existing_item(obj)
        content_index = _required(obj, "content_index", int)
        end_ms = _required(obj, "audio_end_ms", int)
        run = next((r for r in self._runs if r.item is item), None)
        parts = item.get("content") or []
        if item.get("role") != "assistant" or not parts or parts[0].get("type") != "output_audio":
            raise ClientError("invalid_value", "only assistant audio items can be truncated", "item_id")
        if content_index != 0:
            raise ClientError("invalid_value", "content_index must be 0", "content_index")
        played = run.audio_ms_sent if run else self._played_ms.get(item["id"], 0)
        if not 0 <= end_ms <= played:
            raise ClientError("invalid_value", f"audio_end_ms must be within 0..{played}", "audio_end_ms")
        words = split_words(parts[0]["transcript"] or "")
        chunks = run.word_chunk if run else self._word_chunks.get(item["id"], range(len(words)))
        played_chunks = end_ms // self.config.chunk_ms  # wholly played (all but the last are chunk_ms)
        parts[0]["transcript"] = "".join(w for w, k in zip(words, chunks) if k < played_chunks).rstrip()
        out.append(
            self._ev("conversation.item.truncated", item_id=item["id"], content_index=0, audio_end_ms=end_ms)
        )

    def _on_response_create(self, obj: Event, now: float, out: list[Event]) -> None:
        params = obj.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "response must be an object", "response")
        conversation = params.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise ClientError("invalid_value", "must be 'auto' or 'none'", "response.conversation")
        modalities = cfg.output_modalities(self.session)
        if "output_modalities" in params:
            modalities = cfg.check_modalities(params["output_modalities"], "response.output_modalities")
        context = self.conversation.items
        if "input" in params:
            context = self._response_input(params["input"])
        tools = self.session.get("tools") or []
        if "tools" in params:
            tools = check_tools(params["tools"], "response.tools")
        choice = self.session.get("tool_choice", "auto")
        if "tool_choice" in params:
            choice = check_tool_choice(params["tool_choice"], tools, "response.tool_choice")
        if conversation == "auto" and self._active_default() is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
            )
        refused = self._over_limit(now)
        if refused is not None:
            raise refused
        self._start_response(now, modalities[0], conversation == "auto", context, params.get("metadata"),
                             tools, choice)

    def _on_response_cancel(self, obj: Event, now: float, out: list[Event]) -> None:
        wanted = obj.get("response_id")
        if wanted is not None:
            run = next((r for r in self._runs if r.id == wanted), None)
        else:
            run = self._active_default()
        if run is None:
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found.")
        out += run.cancel(self._ev, "client_cancelled")
        self._forget_finished(now)

    def _on_output_audio_clear(self, obj: Event, now: float, out: list[Event]) -> None:
        if self.transport == "websocket":
            raise ClientError("invalid_value", "output_audio_buffer.clear is for WebRTC/SIP calls only", "type")
        active = self._active_default()
        out.append(self._ev("output_audio_buffer.cleared", response_id=active.id if active else None))

    # -- turns ----------------------------------------------------------------------------------

    def _speech_started(self, at_ms: float, out: list[Event]) -> None:
        self._idle_due = None
        detection = cfg.turn_detection(self.session) or {}
        start = max(self._buffer_start_ms, at_ms - cfg.vad_params(detection).prefix_padding_ms)
        item_id = self.ids.new("item")
        self._speech = (item_id, start)
        out.append(
            self._ev("input_audio_buffer.speech_started", audio_start_ms=round(start), item_id=item_id)
        )
        active = self._active_default()
        if active is not None and detection.get("interrupt_response", True):
            out += active.cancel(self._ev, "turn_detected")
            self._forget_finished()

    def _speech_stopped(self, at_ms: float, now: float, out: list[Event]) -> None:
        assert self._speech is not None
        item_id, start = self._speech
        out.append(self._ev("input_audio_buffer.speech_stopped", audio_end_ms=round(at_ms), item_id=item_id))
        self._commit(item_id, start, at_ms, now, out)
        detection = cfg.turn_detection(self.session) or {}
        if detection.get("create_response", True) and self._active_default() is None and not self.transcribing:
            modality = cfg.output_modalities(self.session)[0]
            refused = self._over_limit(now)
            if refused is not None:
                out.append(self._error(refused))
                return
            self._start_response(now, modality, True, self.conversation.items, None)

    def _commit(self, item_id: str, start_ms: float, end_ms: float, now: float, out: list[Event]) -> None:
        self._speech = None
        self._buffer_start_ms = end_ms
        duration = round(end_ms - start_ms)
        transcript = self._hear(start_ms, end_ms) or f"audio of {duration} ms"
        self._heard[item_id] = transcript
        self._audio_in_ms[item_id] = end_ms - start_ms
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        prev = self.conversation.insert(item)
        out.append(self._ev("input_audio_buffer.committed", previous_item_id=prev, item_id=item_id))
        out.append(self._ev("conversation.item.added", previous_item_id=prev, item=_copy(item)))
        out.append(self._ev("conversation.item.done", previous_item_id=prev, item=_copy(item)))
        if cfg.transcription_enabled(self.session):
            item["content"][0]["transcript"] = transcript
            events = transcription.transcript_events(self._ev, self.session, item_id, transcript, duration)
            if self.config.transcription_delay_s > 0:
                due = now + self.config.transcription_delay_s
                for event in events:
                    heapq.heappush(self._scheduled, (due, next(self._seq), event))
            else:
                out.extend(events)

    def _hear(self, start_ms: float, end_ms: float) -> str | None:
        """What the hearing model heard between ``start_ms`` and ``end_ms`` of the input audio
        (None: no hearing model, or nothing it listens for); the audio before ``end_ms`` is let go."""
        if self.config.hearing is None:
            return None
        rate = cfg.input_format(self.session).rate
        window = self._kept.take(start_ms, end_ms, rate)
        return None if window is None else self.config.hearing.hear(window, rate)

    def _start_response(
        self, now: float, modality: str, in_conversation: bool, context: list[dict[str, Any]], metadata: Any,
        tools: list[dict[str, Any]] | None = None, tool_choice: Any = None,
    ) -> None:
        if in_conversation:
            self._idle_due = None
        if tools is None:
            tools, tool_choice = self.session.get("tools") or [], self.session.get("tool_choice", "auto")
        rules = self.config.rules
        planned = plan_answer(context, tools, tool_choice, self._heard, rules,
                              str(self.session.get("instructions") or ""))
        reply = planned.reply
        timing = rules.timing_of(planned.rule) if rules is not None and self._rng is not None else None
        words = split_words(reply) if isinstance(reply, str) else []
        first, wps = now, None
        if timing is not None and isinstance(reply, str):
            first = now + timing.first_audio.draw(self._rng) * self.config.pace
            wps = timing.words_per_second.draw(self._rng) if modality == "audio" else None
        audio: Utterance | Pending | None = None
        if modality == "audio" and isinstance(reply, str):
            voice = self.session["audio"]["output"].get("voice")
            audio = answer_audio(self.config.voice, self._tone, cfg.output_format(self.session), reply,
                                 words, self.config.chunk_ms, wps, voice if isinstance(voice, str) else None)
            self.audio_output_started = True
        output = self.session["audio"]["output"]
        response = {
            "id": self.ids.new("resp"),
            "object": "realtime.response",
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": "conv_default" if in_conversation else None,
            "output_modalities": [modality],
            "max_output_tokens": self.session.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": output["format"], "voice": output["voice"]}},
            "usage": None,
            "metadata": metadata if isinstance(metadata, dict) else None,
        }
        if isinstance(reply, ToolCall):
            delay = timing.tool_decision.draw(self._rng) * self.config.pace if timing is not None else 0.0
            self._start_call(now + delay, reply, response, in_conversation, context)
            return
        item = {"id": self.ids.new("item"), "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}
        prev = self.conversation.insert(item) if in_conversation else None
        run = ResponseRun(
            response=response, item=item, modality=modality, words=words, audio=audio,
            chunk_ms=self.config.chunk_ms, start=now, pace=self.config.chunk_ms / 1000 * self.config.pace,
            previous_item_id=prev, in_conversation=in_conversation, first=first,
            usage=self._usage(context, words, self._planned_audio_ms(audio, words, wps), in_conversation),
        )
        self._runs.append(run)
        self.responses.append(response)
        if self.limits is not None:
            self.limits.spend(now, run.usage["total_tokens"])

    def _start_call(self, now: float, call: ToolCall, response: dict[str, Any], in_conversation: bool,
                    context: list[dict[str, Any]]) -> None:
        item = function_call_item(self.ids.new("item"), self.ids.new("call"), call.name)
        prev = self.conversation.insert(item) if in_conversation else None
        run = FunctionCallRun(
            response=response, item=item, arguments=call.arguments, start=now, previous_item_id=prev,
            in_conversation=in_conversation,
            usage=self._usage(context, split_words(call.arguments), 0, in_conversation),
        )
        self._runs.append(run)
        self.responses.append(response)
        if self.limits is not None:
            self.limits.spend(now, run.usage["total_tokens"])

    def _planned_audio_ms(self, audio: Utterance | Pending | None, words: list[str], wps: float | None) -> int:
        """The answer's audio length as known at its start (speech: estimated from the words,
        set right once synthesized)."""
        if audio is None:
            return 0
        if isinstance(audio, Utterance):
            return audio.audio_ms
        return round(len(words) * 1000 / (wps or DEFAULT_TIMING.words_per_second.median))

    # -- helpers --------------------------------------------------------------------------------

    def _usage(self, context: list[dict[str, Any]], words: list[str], audio_ms: int,
               in_conversation: bool) -> dict[str, Any]:
        """The response's usage (``billing.py``); a conversation's context is cached from now on."""
        return response_usage(str(self.session.get("instructions") or ""), context, len(words), audio_ms,
                              self._audio_in_ms, self._played_ms, self._cached, in_conversation)

    def _ev(self, kind: str, **fields: Any) -> Event:
        if kind == "rate_limits.updated" and self.limits is not None:
            fields["rate_limits"] = self.limits.announce(self._now)
        return {"type": kind, "event_id": self.ids.new("event"), **fields}

    def _over_limit(self, now: float) -> ClientError | None:
        """The refusal of a response over the server's tokens-per-minute limit (None: none)."""
        if self.limits is None:
            return None
        message = self.limits.admit_response(now)
        if message is None:
            return None
        return ClientError("rate_limit_exceeded", message, type="tokens")

    def _error(self, exc: ClientError, client_event_id: str | None = None) -> Event:
        return error_event(self.ids.new("event"), code=exc.code, message=exc.message, param=exc.param,
                           client_event_id=client_event_id, type=exc.type)

    def _session_view(self) -> dict[str, Any]:
        return _copy(self.session)

    def _record(self, obj: Event) -> None:
        """Keep what tests and reports need of a client event, never its audio: an append's
        audio becomes its length, and a run of appends one entry (``count``, total length)."""
        kind = obj.get("type")
        if kind == "input_audio_buffer.append" and isinstance(obj.get("audio"), str):
            self._record_append(len(obj["audio"]))
            return
        if kind == "conversation.item.create" and isinstance(obj.get("item"), dict):
            obj = _without_audio(obj)
        self._keep_received(obj)

    def _record_append(self, chars: int) -> None:
        """An append of ``chars`` base64 characters: a new entry, or one more in the run."""
        entry = self._append_entry
        if entry is not None and self.received and self.received[-1] is entry:
            self._append_count = count = self._append_count + 1
            self._append_chars = total = self._append_chars + chars
            entry["count"] = count
            entry["audio"] = f"<{total} base64 chars>"
            return
        obj = {"type": "input_audio_buffer.append", "audio": f"<{chars} base64 chars>"}
        self._append_entry, self._append_count, self._append_chars = obj, 1, chars
        self._keep_received(obj)

    def _keep_received(self, obj: Event) -> None:
        received = self.received
        received.append(obj)
        if len(received) > self.config.max_recorded_events:
            del received[: len(received) - self.config.max_recorded_events]

    def _reset_vad(self) -> None:
        self._speech = None
        detection = cfg.turn_detection(self.session)
        self._input = self._input_now()
        fmt = self._input[0]
        self._vad = None
        if detection is not None:
            self._vad = EnergyVad(cfg.vad_params(detection), fmt.rate, self._audio_ms)

    def _active_default(self) -> ResponseRun | None:
        return next((r for r in self._runs if r.in_conversation), None)

    def _forget_finished(self, now: float | None = None) -> None:
        """Drop finished runs; ``now`` given: arm the idle timeout after the default
        conversation's response (server VAD ``idle_timeout_ms``, nobody speaking)."""
        for run in [r for r in self._runs if not r.in_progress]:
            if run.modality == "audio":
                self._played_ms[run.item["id"]] = run.audio_ms_sent
                self._word_chunks[run.item["id"]] = run.word_chunk
            self._runs.remove(run)
            idle_ms = (cfg.turn_detection(self.session) or {}).get("idle_timeout_ms")
            if (now is not None and run.in_conversation and idle_ms is not None and self._speech is None
                    and self._active_default() is None):
                self._idle_due = now + idle_ms / 1000

    def _idle_timeout(self, now: float, out: list[Event]) -> None:
        """No speech for ``idle_timeout_ms`` after a response: say so, commit what the buffer
        holds (silence) as a user audio item and answer it (when ``create_response``)."""
        self._idle_due = None
        detection = cfg.turn_detection(self.session) or {}
        if detection.get("idle_timeout_ms") is None or self._speech is not None:
            return
        item_id = self.ids.new("item")
        start, end = self._buffer_start_ms, self._audio_ms
        out.append(self._ev("input_audio_buffer.timeout_triggered", item_id=item_id,
                            audio_start_ms=round(start), audio_end_ms=round(end)))
        self._commit(item_id, start, end, now, out)
        self._reset_vad()
        if detection.get("create_response", True) and self._active_default() is None and not self.transcribing:
            modality = cfg.output_modalities(self.session)[0]
            refused = self._over_limit(now)
            if refused is not None:
                out.append(self._error(refused))
                return
            self._start_response(now, modality, True, self.conversation.items, None)

    def _existing_item(self, obj: Event) -> dict[str, Any]:
        item_id = _required(obj, "item_id", str)
        item = self.conversation.get(item_id)
        if item is None:
            raise ClientError("item_not_found", f"Item '{item_id}' does not exist.", "item_id")
        return item

    def _response_input(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            raise ClientError("invalid_type", "response.input must be a list", "response.input")
        items = []
        for i, entry in enumerate(raw):
            if isinstance(entry, dict) and entry.get("type") == "item_reference":
                found = self.conversation.get(entry.get("id"))
                if found is None:
                    param = f"response.input[{i}].id"
                    raise ClientError("item_not_found", "referenced item does not exist", param)
                items.append(found)
            else:
                items.append(item_from_client(entry, self.ids.new("item"), cfg.input_format(self.session))[0])
        return items


def _without_audio(event: Event) -> Event:
    """A ``conversation.item.create`` with each content part's audio replaced by its length."""
    content = event["item"].get("content")
    if not isinstance(content, list) or not any(
            isinstance(p, dict) and isinstance(p.get("audio"), str) for p in content):
        return event
    parts = [p | {"audio": f"<{len(p['audio'])} base64 chars>"}
             if isinstance(p, dict) and isinstance(p.get("audio"), str) else p for p in content]
    return event | {"item": event["item"] | {"content": parts}}


def _required(obj: Event, key: str, kind: type) -> Any:
    if key not in obj:
        raise ClientError("missing_required_parameter", f"Missing required parameter: '{key}'.", key)
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ClientError("invalid_type", f"'{key}' must be of type {kind.__name__}", key)
    return value


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value))


_HANDLERS: dict[str, Callable[[RealtimeSession, Event, float, list[Event]], None]] = {
    "session.update": RealtimeSession._on_session_update,
    "input_audio_buffer.append": RealtimeSession._on_append,
    "input_audio_buffer.commit": RealtimeSession._on_commit,
    "input_audio_buffer.clear": RealtimeSession._on_clear,
    "conversation.item.create": RealtimeSession._on_item_create,
    "conversation.item.retrieve": RealtimeSession._on_item_retrieve,
    "conversation.item.delete": RealtimeSession._on_item_delete,
    "conversation.item.truncate": RealtimeSession._on_item_truncate,
    "response.create": RealtimeSession._on_response_create,
    "response.cancel": RealtimeSession._on_response_cancel,
    "output_audio_buffer.clear": RealtimeSession._on_output_audio_clear,
}
