"""What a scenario should cost, before anything connects (``rtfleet validate --estimate``).

Each population's script is played once against the embedded server's deterministic model,
sans-I/O (``standin.model.realtime.RealtimeSession``: no sockets, a simulated clock): its
``response.done`` usages are what one session consumes, and the simulated time is how long it
lasts. The number of sessions comes from the phases: ``sessions: N`` is N; ``concurrency: C``
for ``duration: D`` is C x D / (one session's duration), each finished session replaced;
``arrival_rate: r`` (ramping to r2) for D is (r + r2) / 2 x D. GPT-Live populations are billed
their active seconds, the script's duration. Prices are the price table's.

A ``speak`` step counts like ``play`` of the utterance it will synthesize: its length is
estimated from the text at the step's rate (`actors.speech.estimated_seconds`, within about
25 % of espeak-ng's, silences included), so the estimate needs no espeak-ng; the model hears a
tone that long.

The assumption that matters: answers are as long as the embedded model's ("You said: ..." for
text, the user's words plus two, 100 ms of audio a word). A hosted model usually answers at
greater length, so for a hosted target the estimate is a floor, said so in its output.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import attrs
import numpy as np

from orchestrator.usage import PRICES, usage_counts

from .model import Population, Scenario
from .spend import run_prices
from .steps import (AnswerToolCall, BargeIn, Pause, Play, Repeat, Say, Send, Speak, Step,
                    WaitResponse)

__all__ = ["Estimate", "estimate_scenario", "format_estimate"]

PCM_RATE = 24_000
CHUNK = 480 * 2  # 20 ms of 24 kHz PCM16


@attrs.frozen
class PopulationEstimate:
    name: str
    protocol: str
    model: str
    sessions: float
    session_seconds: float
    turns_per_session: int
    counts_per_session: dict[str, float]
    cost_per_session: float | None

    @property
    def cost(self) -> float | None:
        return None if self.cost_per_session is None else self.cost_per_session * self.sessions


@attrs.frozen
class Estimate:
    populations: tuple[PopulationEstimate, ...]

    @property
    def cost(self) -> float | None:
        costs = [p.cost for p in self.populations]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[arg-type]


def estimate_scenario(scenario: Scenario) -> Estimate:
    prices = run_prices(scenario, warn=False)
    out = []
    for population in scenario.populations:
        model, price = prices[population.protocol]
        seconds, turns, counts = _one_session(scenario, population)
        if population.protocol == "live":
            counts = {"usage.live_active_seconds": seconds}
        sessions = _sessions(population, seconds)
        out.append(PopulationEstimate(population.name, population.protocol, model, sessions, seconds,
                                      turns, counts, None if price is None else price.cost(counts)))
    return Estimate(tuple(out))


def _sessions(population: Population, session_seconds: float) -> float:
    total = 0.0
    for phase in population.phases:
        if phase.sessions is not None:
            total += phase.sessions
        elif phase.concurrency is not None and phase.duration:
            end = phase.ramp_to if phase.ramp_to is not None else phase.concurrency
            mean = (phase.concurrency + end) / 2
            total += mean * max(1.0, phase.duration / max(session_seconds, 1e-3))
        elif phase.arrival_rate is not None and phase.duration:
            end = phase.ramp_to if phase.ramp_to is not None else phase.arrival_rate
            total += (phase.arrival_rate + end) / 2 * phase.duration
    return total


def _one_session(scenario: Scenario, population: Population) -> tuple[float, int, dict[str, float]]:
    from orchestrator.scenario.driver import load_audio
    from standin.model.realtime import ModelConfig, RealtimeSession

    if population.session_type == "transcription":
        session = RealtimeSession.create(model="x", wall_now=0.0, config=ModelConfig(pace=1.0),
                                         intent="transcription")
        session.receive_event({"type": "session.update",
                               "session": scenario.session.to_transcription_session()}, 0.0)
    else:
        session = RealtimeSession.create(model=scenario.session.model, wall_now=0.0, config=ModelConfig(pace=1.0))
        session.receive_event({"type": "session.update", "session": {
            k: v for k, v in scenario.session.to_session().items() if k != "model"}}, 0.0)
    sim = _Sim(session)
    vad = scenario.session.turn_detection is not None
    for step in _flat(scenario.scripts[population.script]):
        if isinstance(step, Say):
            sim.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": step.text}]}})
            sim.send({"type": "response.create"})
            if step.wait:
                sim.until_done()
        elif isinstance(step, (Play, Speak)):
            pcm = load_audio(step.path) if isinstance(step, Play) else speech_stand_in(step.text, step.rate)
            for offset in range(0, len(pcm), CHUNK):
                sim.send({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(pcm[offset: offset + CHUNK]).decode()})
                if step.realtime:
                    sim.advance(0.02)
            commit = step.commit if step.commit is not None else not vad
            if commit:
                sim.send({"type": "input_audio_buffer.commit"})
                if population.session_type != "transcription":
                    sim.send({"type": "response.create"})
        elif isinstance(step, WaitResponse):
            sim.until_done()
        elif isinstance(step, BargeIn):  # the answer plays ``after`` seconds, then is cancelled
            sim.advance(step.after + 0.1)
            sim.send({"type": "response.cancel"})
        elif isinstance(step, Pause):
            sim.advance(step.duration)
        elif isinstance(step, Send):
            sim.send(dict(step.event))
        elif isinstance(step, AnswerToolCall) and step.respond:
            call = sim.last_call()
            if call is not None:
                sim.send({"type": "conversation.item.create", "item": {
                    "type": "function_call_output", "call_id": call.get("call_id"),
                    "output": step.output if isinstance(step.output, str) else str(step.output)}})
                sim.send({"type": "response.create"})
                if step.wait:
                    sim.until_done()
    sim.drain()
    return sim.now, sim.turns, sim.counts


def speech_stand_in(text: str, rate: int) -> bytes:
    """24 kHz PCM16 as long as ``speak`` of ``text`` at ``rate`` words a minute will be: the
    step's leading silence, a tone (-10 dBFS, loud enough for a VAD) for the words, then
    espeak-ng's own end-of-sentence pause (about 56,000 / rate ms, 350 ms at 160; measured
    80-550 ms) and the step's trailing silence, so that a server VAD ends the turn as it does
    on the real utterance."""
    from actors.speech import LEAD_MS, TRAIL_MS, estimated_seconds

    total = round(estimated_seconds(text, rate=rate) * PCM_RATE)
    pause_ms = min(550, max(80, 56_000 // rate))
    lead, trail = PCM_RATE * LEAD_MS // 1000, PCM_RATE * (TRAIL_MS + pause_ms) // 1000
    voiced = max(0, total - lead - trail)
    tone = np.round(10_000 * np.sin(2 * np.pi * 220 * np.arange(voiced) / PCM_RATE)).astype("<i2")
    return bytes(2 * lead) + tone.tobytes() + bytes(2 * trail)


def _flat(steps: tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        if isinstance(step, Repeat):
            for _ in range(step.times):
                out.extend(_flat(step.steps))
        else:
            out.append(step)
    return out


@attrs.define
class _Sim:
    """The model on a simulated clock: events in, time advanced through its timers."""

    session: Any
    now: float = 0.0
    turns: int = 0
    counts: dict[str, float] = attrs.field(factory=dict)
    calls: list[dict[str, Any]] = attrs.field(factory=list)

    def _take(self, events: list[dict[str, Any]]) -> int:
        done = 0
        for event in events:
            if event.get("type") == "response.done":
                done += 1
                self.turns += 1
                for name, amount in usage_counts(event["response"].get("usage")).items():
                    self.counts[name] = self.counts.get(name, 0) + amount
            elif event.get("type") == "response.output_item.done" and \
                    event.get("item", {}).get("type") == "function_call":
                self.calls.append(event["item"])
        return done

    def send(self, event: dict[str, Any]) -> None:
        self._take(self.session.receive_event(event, self.now))

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = self.session.get_timer()
            if due is None or due > target:
                break
            self.now = max(self.now, due)
            self._take(self.session.handle_timer(self.now))
        self.now = target

    def until_done(self, limit: float = 600.0) -> None:
        start = self.now
        while self.now - start < limit:
            due = self.session.get_timer()
            if due is None:
                return
            self.now = max(self.now, due)
            if self._take(self.session.handle_timer(self.now)):
                return

    def drain(self) -> None:
        self.until_done()

    def last_call(self) -> dict[str, Any] | None:
        return self.calls[-1] if self.calls else None


def format_estimate(estimate: Estimate, scenario: Scenario, *, hosted: bool) -> str:
    lines = ["estimate (before anything connects; see orchestrator/scenario/estimate.py):"]
    for p in estimate.populations:
        cost = "unknown (no price)" if p.cost is None else f"${p.cost:.4f}"
        per = "" if p.cost_per_session is None else f" (${p.cost_per_session:.5f}/session)"
        lines.append(f"  {p.name}: {p.protocol} {p.model}, ~{math.ceil(p.sessions):,} session(s) of "
                     f"~{p.session_seconds:.1f} s, {p.turns_per_session} turn(s) each: {cost}{per}")
    total = estimate.cost
    lines.append(f"  total: {'unknown' if total is None else f'${total:.4f}'} at list prices "
                 f"(the price table of {next(iter(PRICES.values())).source.split(' ')[0]}…, "
                 f"overridden by the scenario's prices:)")
    lines.append("  assumes answers as long as the embedded model's (the user's words plus two; "
                 "100 ms of audio a word)" + ("; a hosted model usually says more: take it as a "
                                             "floor" if hosted else ""))
    if scenario.budget is not None and scenario.budget.max_cost is not None and total is not None:
        verdict = "under" if total <= scenario.budget.max_cost else "OVER"
        lines.append(f"  budget: max_cost ${scenario.budget.max_cost:g}: the estimate is {verdict} it")
    return "\n".join(lines)
