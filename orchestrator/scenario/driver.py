"""One scripted session: runs its steps against the fleet and measures its turns.

The runner's dispatcher hands every event of the session to :meth:`SessionDriver.on_event`
(synchronously, in order); the script task waits on the driver's trio events.  A turn starts
when the client asks for a response (``say``), when the server reports the end of speech
(``play`` with server VAD), when the server's idle timeout fires (``timeout_triggered``, VAD), when
the client commits (``play`` without VAD) or answers a tool call (``answer_tool_call``); it ends
at ``response.done``.  The model's completed function calls are kept for ``expect_tool_call``.

A SIP session (``sip=True``) is a phone call whose realtime session is the call's sideband:
``play`` goes to the service as the phone's RTP audio (8 kHz G.711, paced 20 ms by the call),
not as ``input_audio_buffer.append`` (``commit`` then follows the last frame sent); the
answer's audio goes to the phone by RTP, so its first audio is the server's
``output_audio_buffer.started`` (playout began on the call), and ``barge_in`` is
``response.cancel`` then ``output_audio_buffer.clear`` (the service truncates what it played).

A WebSocket session whose input format is G.711 (``input_format: pcmu`` or ``pcma``) is sent
its audio in that format: ``play``'s 24 kHz PCM16 is resampled to 8 kHz and encoded, ``speak``
synthesizes the law directly, and a frame is 20 ms of it (160 bytes). (WebRTC sends Opus on
its track and SIP the call's law whatever the session's input format says.)
"""

from __future__ import annotations

import wave
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import attrs
import trio

from actors.events import ConnectionEvent, EventKind
from actors.proto.audio import AudioConverter, g711_encode
from actors.proto.errors import ProtocolError
from actors.proto.realtime.events import Base64Text
from orchestrator.fleet import Fleet, user_text
from orchestrator.scenario.expect import Answer, CheckLog, answer_of, evaluate
from orchestrator.scenario.runmetrics import RunMetrics
from orchestrator.scenario.tool_calls import ToolCalls, mismatch, output_text
from orchestrator.telemetry import start_span
from orchestrator.usage import Price, usage_counts
from orchestrator.scenario.steps import (
    AnswerToolCall,
    BargeIn,
    Cancel,
    Expect,
    ExpectToolCall,
    Pause,
    Play,
    Repeat,
    Say,
    Send,
    Speak,
    Step,
    WaitResponse,
    WaitTranscript,
)

__all__ = ["BudgetReached", "SessionDriver", "StepFailed", "g711_law", "load_audio"]

TEXT_DELTAS = frozenset({"response.output_text.delta", "response.output_audio_transcript.delta"})
#: server errors not counted in ``errors`` because they are no failure of the session: a
#: barge-in's cancel racing the end of the response, and a refused key, which the supervisor
#: answers with a fresh one (a session that still cannot connect counts as failed); a
#: refusal over a rate limit is counted as such (``rate_limited.*``, by the runner)
BENIGN_ERRORS = frozenset({"response_cancel_not_active", "invalid_api_key", "rate_limit_exceeded"})
PCM_RATE = 24_000
#: how many of a session's last events (deltas aside) its error record keeps: what happened
#: just before a step failed (server events, errors with their code, client events written,
#: state changes)
TRAIL = 32
#: utterances kept waiting for their transcript (a drop replays one under a new item id)
MAX_UNTRANSCRIBED = 64
CHUNK_BYTES = PCM_RATE * 2 // 50  # 20 ms of PCM16 mono
G711_CHUNK_BYTES = 8000 // 50  # 20 ms of G.711


class StepFailed(Exception):
    """A step could not complete (a turn timed out, the session ended)."""


class BudgetReached(Exception):
    """The run's budget refused the next turn: the session stops, not as a failure."""


@attrs.define
class _Turn:
    started: float
    span: Any = None
    first_text: float | None = None
    first_audio: float | None = None


@attrs.define(eq=False)
class SessionDriver:
    sid: str
    fleet: Fleet
    metrics: RunMetrics
    vad: bool
    #: the session's span; each turn is a child span
    span: Any = None
    #: a phone call (transport sip): audio goes through the call, see the module docstring
    sip: bool = False
    #: a transcription session: committed audio is transcribed, nothing answers it (a
    #: commit is never followed by ``response.create``)
    transcribe: bool = False
    #: the G.711 law (RTP payload type 0 or 8) of a WebSocket session's appended audio
    #: (None: 24 kHz PCM16); see `g711_law`
    input_law: int | None = None
    #: silence after ``speak``'s words: the default, or longer than the session's server VAD
    #: waits for (its ``silence_duration_ms`` plus 200 ms), so the server hears the turn end
    speak_trail_ms: int | None = None
    _turn: _Turn | None = None
    _done_count: int = 0
    #: audio a server VAD ends (a play or speak without commit) is on its way: the answers
    #: finished when the VAD heard its end, which a wait_response after it counts from (the
    #: answer may come before the audio's last frame is sent: trailing silence, a late clock)
    _vad_turn_open: bool = False
    _vad_base: int | None = None
    _done: trio.Event = attrs.field(factory=trio.Event)
    #: a response is in progress and has begun its output (what a barge-in interrupts)
    _output_live: bool = False
    _live_changed: trio.Event = attrs.field(factory=trio.Event)
    _output_since: float | None = None
    #: a barge-in's cancel was sent; the response's ``response.done`` says whether it landed
    _barge_pending: bool = False
    _audio_bytes: int = 0
    _audio_item: str | None = None
    _audio_started: float | None = None
    #: when the session's driver began (its trail's times count from here)
    _born: float = attrs.field(default=attrs.Factory(lambda self: self.metrics.clock(), takes_self=True))
    last_response: dict[str, Any] | None = None
    turns: int = 0
    #: why the audio turn in flight was lost at a drop (its wait fails at once)
    _lost: str | None = None
    #: function calls the model made, for expect_tool_call / answer_tool_call
    tool_calls: ToolCalls = attrs.field(factory=ToolCalls)
    #: the model's price (None: unknown, so no cost is counted); what the session spent
    price: Price | None = None
    #: the run's spending limit (``budget.py``): asked before each turn a step starts
    budget: Any = None
    spent: float = 0.0
    _live_seconds: float = 0.0
    #: input transcripts: utterances committed and not transcribed yet (item id -> when),
    #: transcripts completed, and how many of those a wait_transcript step took
    _committed_at: dict[str, float] = attrs.field(factory=dict)
    _first_delta: set[str] = attrs.field(factory=set)
    _transcripts: int = 0
    _transcripts_taken: int = 0
    _transcript_failed: str | None = None
    last_transcript: str | None = None
    #: the session's last events but deltas, as (time, what): an error record's trail
    trail: deque[tuple[float, str]] = attrs.field(factory=lambda: deque(maxlen=TRAIL))
    #: expect steps: the last finished turn, how many turns an expect has looked at, where
    #: outcomes go (population, step label) and the step's label in the script
    last_answer: Answer | None = None
    _expected_upto: int = 0
    checks: CheckLog | None = None
    population: str = ""
    _step_path: list[str] = attrs.field(factory=list)

    def note(self, what: str) -> None:
        """Keep ``what`` (a state change, a drop, a lost turn) in the session's trail."""
        self.trail.append((self.metrics.clock(), what))

    def trail_lines(self) -> list[str]:
        """The trail as lines ``+12.345s response.done``, times from the session's start."""
        return [f"+{t - self._born:.3f}s {what}" for t, what in self.trail]

    def _start_turn(self, kind: str) -> _Turn:
        if self._turn is not None and self._turn.span is not None:
            self._turn.span.end()
        span = None
        if self.span is not None:
            span = start_span("gen_ai.realtime.turn", {"gen_ai.operation.name": "realtime",
                                                       "rtfleet.turn.kind": kind}, parent=self.span)
        turn = self._turn = _Turn(self.metrics.clock(), span)
        return turn

    # -- events (called by the dispatcher, in order) ----------------------------------------

    def turn_lost(self, reason: str) -> None:
        """An audio turn in flight at a drop could not be replayed: fail its wait now."""
        self.note(f"turn lost: {reason}")
        self._lost = reason
        self._done.set()
        self._done = trio.Event()

    def on_event(self, event: ConnectionEvent) -> None:
        if event.kind is not EventKind.SERVER:
            return
        payload = event.payload
        kind = payload["type"]
        now = self.metrics.clock()
        turn = self._turn
        if not kind.endswith(".delta"):
            if kind == "error":  # the code says whether it mattered
                self.trail.append((now, f"error {(payload.get('error') or {}).get('code')}"))
            else:
                self.trail.append((now, kind))
        if kind in TEXT_DELTAS:
            self._set_output_live(True)
            if turn is not None and turn.first_text is None:
                turn.first_text = now
                self.metrics.observe("turn.time_to_first_text", now - turn.started)
        elif kind == "output_audio_buffer.started":  # a call's playout began (WebRTC, SIP)
            if self._audio_started is None:
                self._audio_started = now
            self._set_output_live(True)
            if turn is not None and turn.first_audio is None:
                turn.first_audio = now
                self.metrics.observe("turn.time_to_first_audio", now - turn.started)
        elif kind == "response.output_audio.delta":
            self._audio_bytes += len(payload.get("delta", "")) * 3 // 4
            if self._audio_item is None:
                self._audio_item = payload.get("item_id")
                self._audio_started = now
            self._set_output_live(True)
            if turn is not None and turn.first_audio is None:
                turn.first_audio = now
                self.metrics.observe("turn.time_to_first_audio", now - turn.started)
        elif kind == "response.created":
            self._audio_bytes = 0
            self._audio_item = None
            self._audio_started = None
        elif kind == "response.output_item.done":
            item = payload.get("item") or {}
            if item.get("type") == "function_call" and item.get("status") == "completed":
                self.metrics.inc("tool.calls")
                if turn is not None:
                    self.metrics.observe("tool.call", now - turn.started)
                self.tool_calls.arrived(item)
        elif kind == "input_audio_buffer.speech_stopped":
            if self.vad and not self.transcribe:
                self._start_turn("audio")
                if self._vad_turn_open and self._vad_base is None:
                    self._vad_base = self._done_count
        elif kind == "input_audio_buffer.timeout_triggered":  # idle_timeout_ms: the server answers
            if self.vad:
                self._start_turn("idle")
        elif kind == "response.done":
            self.last_response = payload.get("response")
            cost = self._account(usage_counts((self.last_response or {}).get("usage")))
            if self.budget is not None:
                self.budget.turn_done(cost)
            self._set_output_live(False)
            if self._barge_pending:
                self._barge_pending = False
                landed = (self.last_response or {}).get("status") == "cancelled"
                self.metrics.inc("turns.barged_in" if landed else "turns.barge_in_missed")
            first = None
            if turn is not None:
                output_at = turn.first_audio if turn.first_audio is not None else turn.first_text
                first = None if output_at is None else output_at - turn.started
            self.last_answer = answer_of(self.last_response, first)
            if turn is not None:
                self.metrics.observe("turn.duration", now - turn.started)
                if turn.span is not None:
                    _end_turn_span(turn, self.last_response)
                self._turn = None
            self.metrics.inc("turns.completed")
            self.turns += 1
            self._done_count += 1
            self._done.set()
            self._done = trio.Event()
        elif kind == "input_audio_buffer.committed":
            committed = self._committed_at
            committed[payload.get("item_id")] = now
            if len(committed) > MAX_UNTRANSCRIBED:  # utterances a drop replayed under new ids
                del committed[next(iter(committed))]
        elif kind == "conversation.item.input_audio_transcription.delta":
            item_id = payload.get("item_id")
            since = self._committed_at.get(item_id)
            if since is not None and item_id not in self._first_delta:
                self._first_delta.add(item_id)
                self.metrics.observe("transcription.time_to_first_delta", now - since)
        elif kind == "conversation.item.input_audio_transcription.completed":
            item_id = payload.get("item_id")
            since = self._committed_at.pop(item_id, None)
            self._first_delta.discard(item_id)
            if since is not None:
                self.metrics.observe("transcription.latency", now - since)
            self.metrics.inc("transcripts.completed")
            self.last_transcript = payload.get("transcript")
            self._transcripts += 1
            self._done.set()
            self._done = trio.Event()
        elif kind == "conversation.item.input_audio_transcription.failed":
            self._committed_at.pop(payload.get("item_id"), None)
            self.metrics.inc("transcripts.failed")
            self.metrics.inc("errors")
            error = payload.get("error") or {}
            self._transcript_failed = str(error.get("message") or error.get("code") or "failed")
            self._done.set()
            self._done = trio.Event()
        elif kind == "session.usage.updated":  # GPT-Live: the session's active seconds so far
            seconds = (payload.get("usage") or {}).get("seconds")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                # cumulative per Live session; a lower figure is a new session (a restore)
                delta = seconds - self._live_seconds if seconds >= self._live_seconds else seconds
                self._live_seconds = float(seconds)
                if delta > 0:
                    cost = self._account({"usage.live_active_seconds": delta})
                    if cost and self.budget is not None:
                        self.budget.add(cost)
        elif kind == "error":
            code = str((payload.get("error") or {}).get("code") or "unknown")
            self.metrics.inc(f"server_errors.{code}")
            if code not in BENIGN_ERRORS:
                self.metrics.inc("errors")

    def _account(self, counts: dict[str, float]) -> float | None:
        """Count one response's (or Live interval's) usage; its cost at the model's price
        (None: the model has no price)."""
        for name, amount in counts.items():
            self.metrics.inc(name, amount)
        if self.price is None:
            return None
        cost = self.price.cost(counts)
        if cost:
            self.spent += cost
            self.metrics.inc("cost.usd", cost)
        return cost

    async def _admit_turn(self) -> None:
        """The budget's say before a step starts a turn (BudgetReached: the run is ending)."""
        if self.budget is not None and not await self.budget.admit_turn():
            raise BudgetReached(self.budget.reason or "budget reached")

    # -- steps ----------------------------------------------------------------------------

    async def run(self, steps: Sequence[Step]) -> None:
        for index, step in enumerate(steps):
            self._step_path.append(f"[{index}]")
            try:
                await self._step(step)
            finally:
                self._step_path.pop()

    async def _step(self, step: Step) -> None:
        if isinstance(step, Say):
            await self._admit_turn()
            await self._say(step)
        elif isinstance(step, Play):
            if not self.transcribe:
                await self._admit_turn()
            await self._play(step)
        elif isinstance(step, Speak):
            if not self.transcribe:
                await self._admit_turn()
            await self._speak(step)
        elif isinstance(step, Expect):
            await self._expect(step)
        elif isinstance(step, WaitResponse):
            base = self._done_count if self._vad_base is None else self._vad_base
            self._vad_turn_open, self._vad_base = False, None
            await self._wait_done(base, step.timeout)
        elif isinstance(step, WaitTranscript):
            await self._wait_transcript(step.timeout)
        elif isinstance(step, BargeIn):
            await self._barge_in(step.after, step.timeout)
        elif isinstance(step, Cancel):
            await self.fleet.send(self.sid, {"type": "response.cancel"})
        elif isinstance(step, Pause):
            await trio.sleep(step.duration)
        elif isinstance(step, Repeat):
            for _ in range(step.times):
                self._step_path.append(".steps")
                try:
                    await self.run(step.steps)
                finally:
                    self._step_path.pop()
        elif isinstance(step, Send):
            try:
                await self.fleet.send(self.sid, dict(step.event))
            except (ProtocolError, ValueError) as exc:  # the client refuses the event
                self.metrics.inc("errors")
                raise StepFailed(f"send: {exc}") from None
        elif isinstance(step, ExpectToolCall):
            await self._expect_tool_call(step)
        elif isinstance(step, AnswerToolCall):
            if step.respond:
                await self._admit_turn()
            await self._answer_tool_call(step)
        else:  # pragma: no cover - the loader admits only the kinds above
            raise StepFailed(f"unknown step {step!r}")

    async def _say(self, step: Say) -> None:
        await self.fleet.send(self.sid, user_text(step.text))
        count = self._done_count
        self._start_turn("text")
        await self.fleet.send(self.sid, {"type": "response.create"})
        if step.wait:
            await self._wait_done(count, step.timeout)

    async def _expect_tool_call(self, step: ExpectToolCall) -> None:
        call = await self.tool_calls.take(step.timeout)
        if call is None:
            problem: str | None = f"no function call came within {step.timeout:g}s"
        else:
            problem = mismatch(call, step.name, step.arguments)
        if problem is not None:
            self.metrics.inc("tool.calls_failed")
            self.metrics.inc("errors")
            raise StepFailed(f"expect_tool_call: {problem}")
        self.tool_calls.current = call

    async def _answer_tool_call(self, step: AnswerToolCall) -> None:
        call, self.tool_calls.current = self.tool_calls.current, None
        if call is None:
            call = await self.tool_calls.take(step.timeout)
            if call is None:
                self.metrics.inc("errors")
                raise StepFailed(f"answer_tool_call: no function call came within {step.timeout:g}s")
        try:
            output = output_text(step.output, call)
        except KeyError as exc:
            self.metrics.inc("errors")
            raise StepFailed(f"answer_tool_call: the output names ${exc.args[0]}, which the call of "
                             f"{call.get('name')!r} does not have (arguments: {call.get('arguments')})") from None
        await self.fleet.send(self.sid, {"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call.get("call_id"), "output": output}})
        if step.respond:
            count = self._done_count
            self._start_turn("tool")
            await self.fleet.send(self.sid, {"type": "response.create"})
            if step.wait:
                await self._wait_done(count, step.timeout)

    async def _wait_done(self, count: int, timeout: float) -> None:
        with trio.move_on_after(timeout):
            while self._done_count <= count:
                if self._lost is not None:
                    lost, self._lost = self._lost, None
                    self.metrics.inc("turns.failed")
                    self.metrics.inc("errors")
                    raise StepFailed(f"audio turn lost at a drop: {lost}")
                await self._done.wait()
            return
        if self._turn is not None and self._turn.span is not None:
            self._turn.span.set_attribute("error.type", "timeout")
            self._turn.span.end()
        self._turn = None
        self.metrics.inc("turns.failed")
        self.metrics.inc("errors")
        raise StepFailed(f"no response.done within {timeout:g}s")

    async def _wait_transcript(self, timeout: float) -> None:
        """Take the oldest input transcript no step took yet (see `WaitTranscript`)."""
        with trio.move_on_after(timeout):
            while self._transcripts <= self._transcripts_taken:
                if self._lost is not None:
                    lost, self._lost = self._lost, None
                    self.metrics.inc("errors")
                    raise StepFailed(f"utterance lost at a drop: {lost}")
                if self._transcript_failed is not None:
                    failed, self._transcript_failed = self._transcript_failed, None
                    raise StepFailed(f"input transcription failed: {failed}")
                await self._done.wait()
            self._transcripts_taken += 1
            return
        self.metrics.inc("transcripts.missed")
        self.metrics.inc("errors")
        raise StepFailed(f"no input transcript within {timeout:g}s")

    async def _play(self, step: Play) -> None:
        await self._stream(load_audio(step.path), step.realtime, step.commit)

    async def _speak(self, step: Speak) -> None:
        """Synthesize the words in the session's input format (a call's G.711 law at 8 kHz on
        SIP, else 24 kHz PCM16) and stream them as `_play` does."""
        from actors.speech import SpeechError, synthesize, synthesize_g711

        law = self._call("speak").codec if self.sip else self.input_law
        trail = {} if self.speak_trail_ms is None else {"trail_ms": self.speak_trail_ms}
        try:
            audio = await trio.to_thread.run_sync(
                lambda: synthesize(step.text, voice=step.voice, rate=step.rate, **trail) if law is None
                else synthesize_g711(step.text, law, voice=step.voice, rate=step.rate, **trail))
        except SpeechError as exc:
            self.metrics.inc("errors")
            raise StepFailed(f"speak: {exc}") from None
        await self._stream(audio, step.realtime, step.commit, g711=law is not None)

    def _appended_audio(self, pcm: bytes, g711: bool) -> tuple[bytes, int]:
        """``pcm`` (24 kHz PCM16, or already G.711 with ``g711``) in the session's input
        format, with the length of a 20 ms frame of it."""
        if self.input_law is None:
            return pcm, CHUNK_BYTES
        if not g711:
            pcm8 = AudioConverter(PCM_RATE, 8000).process(pcm[: len(pcm) - len(pcm) % 2])
            pcm = g711_encode(self.input_law, pcm8)
        return pcm, G711_CHUNK_BYTES

    async def _expect(self, step: Expect) -> None:
        """Check the last finished turn, first waiting for one when no turn finished since
        the previous expect (see `steps.Expect`); failed checks are counted, not raised."""
        with trio.move_on_after(step.timeout):
            while self._done_count <= self._expected_upto and self._lost is None:
                await self._done.wait()
        fresh = self._done_count > self._expected_upto
        self._expected_upto = self._done_count
        answer = self.last_answer if fresh and self.last_answer is not None else \
            Answer(f"(no answer within {step.timeout:g}s)")
        label = "steps" + "".join(self._step_path)
        for outcome in evaluate(step, answer):
            self.metrics.inc("checks.passed" if outcome.passed else "checks.failed")
            if not outcome.passed:
                self.note(f"expect failed: {outcome.check}: {outcome.detail}")
            if self.checks is not None:
                self.checks.add(self.population, label, outcome)

    async def _stream(self, pcm: bytes, realtime: bool, commit_given: bool | None, *,
                      g711: bool = False) -> None:
        """Send ``pcm`` (24 kHz PCM16; with ``g711``, 8 kHz G.711 in the call's law) as the
        user's audio, then commit as `steps.Play` says."""
        commit = commit_given if commit_given is not None else not self.vad
        # the server's VAD ends this turn, maybe before the last frame leaves: see _vad_base
        self._vad_turn_open, self._vad_base = not commit and self.vad, None
        if self.sip:
            await self._play_call(pcm, g711)
        else:
            await self._append(*self._appended_audio(pcm, g711), realtime)
        if commit:
            await self.fleet.send(self.sid, {"type": "input_audio_buffer.commit"})
            if not self.transcribe:  # a transcription session answers with the transcript
                self._start_turn("audio")
                await self.fleet.send(self.sid, {"type": "response.create"})

    async def _append(self, pcm: bytes, frame_bytes: int, realtime: bool) -> None:
        if realtime:
            # the process's one audio clock paces every session's frames (actors/pacer.py);
            # every frame: how late it leaves (on-time frames count, as ~0)
            observe = self.metrics.observe
            await self.fleet.stream_audio(
                self.sid, pcm, frame_bytes=frame_bytes,
                on_frame=lambda due, sent: observe("audio.frame_lateness", sent - due))
            return
        for offset in range(0, len(pcm), frame_bytes):
            chunk = pcm[offset: offset + frame_bytes]
            await self.fleet.send(self.sid, {"type": "input_audio_buffer.append",
                                             "audio": Base64Text.of(chunk)})

    def _call(self, step: str) -> Any:
        """The session's phone call (``actors.sip_phone.PhoneCall``), which must be up."""
        from actors.sip import current_call

        call = current_call(self.sid)
        if call is None or call.ended.is_set() or call.media is None:
            raise StepFailed(f"{step}: the call is not up")
        return call

    async def _play_call(self, audio: bytes, g711: bool = False) -> None:
        """The phone says it: RTP at the line's pace (20 ms frames, whatever ``realtime`` says);
        ``audio`` is 24 kHz PCM16, or with ``g711`` the call's G.711; returns once the last
        frame has been sent."""
        call = self._call("play")
        if g711:
            call.play_g711(audio)
        else:
            call.play_pcm(audio)
        await call.wait_played()
        if call.ended.is_set():
            raise StepFailed(f"play: the call ended ({call.end_reason})")

    def _set_output_live(self, live: bool) -> None:
        if live != self._output_live:
            self._output_live = live
            self._output_since = self.metrics.clock() if live else None
            self._live_changed.set()
            self._live_changed = trio.Event()

    async def _barge_in(self, after: float, timeout: float) -> None:
        """Interrupt a live response ``after`` seconds into its output (see `steps.BargeIn`)."""
        with trio.move_on_after(timeout):
            while not self._output_live:
                await self._live_changed.wait()
        if not self._output_live:
            self.metrics.inc("turns.barge_in_missed")  # no response came to interrupt
            return
        await trio.sleep_until((self._output_since or self.metrics.clock()) + after)
        if not self._output_live:
            self.metrics.inc("turns.barge_in_missed")  # it ended before the barge-in
            return
        self._barge_pending = True
        if self.sip:  # the service plays the call's audio: it stops and knows what was heard
            await self.fleet.send(self.sid, {"type": "response.cancel"})
            await self.fleet.send(self.sid, {"type": "output_audio_buffer.clear"})
            await self._wait_output_ended(timeout)
            return
        started = self._audio_started or self.metrics.clock()
        received_ms = self._audio_bytes * 1000 // (PCM_RATE * 2)
        played_ms = int(min((self.metrics.clock() - started) * 1000, received_ms))
        await self.fleet.send(self.sid, {"type": "response.cancel"})
        if self._audio_item:
            await self.fleet.send(self.sid, {"type": "conversation.item.truncate",
                                             "item_id": self._audio_item, "content_index": 0,
                                             "audio_end_ms": played_ms})
        await self._wait_output_ended(timeout)

    async def _wait_output_ended(self, timeout: float) -> None:
        """Until the interrupted response's ``response.done`` (which gives the verdict), so
        that the next step does not take it for its own."""
        with trio.move_on_after(timeout):
            while self._output_live:
                await self._live_changed.wait()


def _end_turn_span(turn: _Turn, response: dict[str, Any] | None) -> None:
    span = turn.span
    response = response or {}
    span.set_attribute("gen_ai.response.id", str(response.get("id", "")))
    span.set_attribute("rtfleet.response.status", str(response.get("status", "")))
    usage = response.get("usage") or {}
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        if isinstance(usage.get(key), int):
            span.set_attribute(f"gen_ai.usage.{key}", usage[key])
    if turn.first_text is not None:
        span.set_attribute("rtfleet.turn.time_to_first_text", turn.first_text - turn.started)
    if turn.first_audio is not None:
        span.set_attribute("rtfleet.turn.time_to_first_audio", turn.first_audio - turn.started)
    span.end()


_AUDIO_CACHE: dict[Path, bytes] = {}


def g711_law(format_type: str) -> int | None:
    """The RTP payload type of a G.711 input format (``audio/pcmu`` 0, ``audio/pcma`` 8), else
    None."""
    return {"audio/pcmu": 0, "audio/pcma": 8}.get(format_type)


def load_audio(path: Path) -> bytes:
    """PCM16 mono 24 kHz from a .wav (checked) or raw .pcm file; cached per path."""
    cached = _AUDIO_CACHE.get(path)
    if cached is not None:
        return cached
    if path.suffix.lower() == ".wav":
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != PCM_RATE:
                raise StepFailed(f"{path}: need PCM16 mono 24 kHz WAV, got {w.getnchannels()} ch, "
                                 f"{8 * w.getsampwidth()} bit, {w.getframerate()} Hz")
            data = w.readframes(w.getnframes())
    else:
        data = path.read_bytes()
    _AUDIO_CACHE[path] = data
    return data
