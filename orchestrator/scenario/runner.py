"""Runs a scenario: target, populations and their phases, scripts, faults, metrics, verdict.

::

    result = await run_scenario(load_scenario("scenarios/smoke.yaml"))
    result.exit_code   # 0 thresholds held, 1 a threshold failed

Load models per phase (see :class:`~orchestrator.scenario.model.Phase`): ``sessions`` (N at
once, each runs its script once), ``arrival_rate`` (open model: new sessions per second,
Poisson arrivals seeded by the scenario seed, ramped), ``concurrency`` (closed model: keep N
running, a finished session is replaced; ramped).  Populations run side by side.  The whole
run is bounded by ``duration_limit``: what still runs then is stopped (``sessions.stopped``).

``transport: sip`` populations (embedded target only) are phone calls: the embedded server
gets its SIP side (a UDP user agent server) and announces each call by a signed webhook to a
:class:`~orchestrator.sip_controller.SipController` run here, which accepts it with the
scenario's session; each session dials the server from one shared :class:`~actors.sip_phone.SipPhone`
and, once its call is accepted, attaches the call's sideband (``?call_id=``) and runs its
script there (``play`` is the phone's RTP audio). A lost sideband is reconnected with the call
held; the call's end ends the session.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import sys
import time
from functools import partial
from typing import Any, Callable
from urllib.parse import urlsplit

import attrs
import trio

from actors.events import ConnectionEvent, ConnectionState, EventKind
from actors.proto.session import SessionConfig as ProtoSessionConfig
from orchestrator.exits import EXIT_BUDGET, EXIT_OK, EXIT_THRESHOLDS
from orchestrator.heap_guard import server_stores, watch_heap
from orchestrator.fleet import Fleet, FleetError, available_transports, open_fleet
from orchestrator.metrics import make_lookup
from orchestrator.policy import Backoff
from orchestrator.ratelimits import rate_limited_category
from orchestrator.scenario.admission import AdmissionGate
from orchestrator.scenario.chaos import ServerControl, run_faults
from orchestrator.scenario.budget import BudgetGate
from orchestrator.scenario.driver import BudgetReached, SessionDriver, StepFailed, g711_law
from orchestrator.scenario.spend import run_prices, spend_summary
from orchestrator.scenario.metric_names import DECLARED
from orchestrator.scenario.model import (
    EmbeddedTarget, Phase, Population, RemoteTarget, Scenario, ServerVad)
from orchestrator.scenario.remote import remote_access
from orchestrator.scenario.stand_in import stand_in_model
from orchestrator.scenario.runmetrics import RunMetrics
from orchestrator.scenario.expect import CheckLog, implicit_check_threshold
from orchestrator.scenario.thresholds import evaluate
from standin import EmbeddedServer, FaultPlan
from orchestrator.telemetry import start_span

__all__ = ["RunError", "RunInputError", "RunResult", "run_scenario"]

S = ConnectionState
CONNECT_TIMEOUT = 30.0
MAX_ERRORS_KEPT = 50
#: at the budget, how long the turns in flight may take to end (their usage is spend too)
BUDGET_GRACE = 10.0


class RunError(Exception):
    """The run could not be carried out (exit 3)."""


class RunInputError(RunError):
    """The scenario asks for something this build cannot do (exit 2)."""


@attrs.frozen
class RunResult:
    results: dict[str, Any]
    passed: bool

    @property
    def exit_code(self) -> int:
        if self.results.get("verdict") == "budget":
            return EXIT_BUDGET
        return EXIT_OK if self.passed else EXIT_THRESHOLDS


def _speak_trail_ms(scenario: Scenario) -> int | None:
    """``speak``'s trailing silence under a server VAD: 200 ms more than the silence it waits
    for, so the turn ends whatever espeak-ng's own closing pause (short at fast rates); None
    (the default trail) otherwise."""
    from actors.speech import TRAIL_MS

    vad = scenario.session.turn_detection
    if isinstance(vad, ServerVad) and vad.silence_duration_ms + 200 > TRAIL_MS:
        return vad.silence_duration_ms + 200
    return None


@attrs.define(eq=False)
class _Run:
    scenario: Scenario
    fleet: Fleet
    metrics: RunMetrics
    rng: random.Random
    on_tick: Callable[[dict[str, Any]], None] | None
    drivers: dict[str, SessionDriver] = attrs.field(factory=dict)
    started_at: dict[str, float] = attrs.field(factory=dict)
    outage_since: dict[str, float] = attrs.field(factory=dict)
    states: dict[str, ConnectionState] = attrs.field(factory=dict)
    spans: dict[str, Any] = attrs.field(factory=dict)
    connect_spans: dict[str, Any] = attrs.field(factory=dict)
    marks: list[dict[str, Any]] = attrs.field(factory=list)
    errors: list[dict[str, str]] = attrs.field(factory=list)
    #: expect steps' outcomes per population, step and check (results.json "checks")
    checks: CheckLog = attrs.field(factory=CheckLog)
    phase: str = ""
    #: SIP populations: ``SipOptions`` for one new call (None: no SIP side)
    sip_call: Callable[[], Any] | None = None
    #: the spending limit's gate (None: no budget), and each protocol's price (None: unknown)
    budget: BudgetGate | None = None
    prices: dict[str, Any] = attrs.field(factory=dict)
    #: ``session_type: transcription`` populations' config, made once for the run
    transcription_config: ProtoSessionConfig | None = attrs.field(init=False, default=None)
    #: ``speak``'s trailing silence when the session's server VAD waits longer than its default
    speak_trail_ms: int | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if any(p.session_type == "transcription" for p in self.scenario.populations):
            self.transcription_config = _transcription_config(self.scenario)
        self.speak_trail_ms = _speak_trail_ms(self.scenario)
    #: the rate-limit admission gate (None: no ``rate_limits:``, sessions start unpaced)
    admission: AdmissionGate | None = None
    #: the key manager's 429s already counted as ``rate_limited.key_mints``
    key_mints_seen: int = 0

    # -- event dispatch -------------------------------------------------------------------

    async def dispatch(self, subscription: Any) -> None:
        async for event in subscription:
            self.on_event(event)

    def on_event(self, event: ConnectionEvent) -> None:
        kind = event.kind
        sid = event.session_id
        if kind is EventKind.SERVER:
            self.metrics.inc("events.received")  # run-level only: the hot path
            driver = self.drivers.get(sid)
            if driver is not None:
                driver.on_event(event)
            if event.type == "error":
                self._rate_limited(sid, event)
        elif kind is EventKind.STATE:
            self._rate_limited(sid, event)
            self._on_state(sid, event.payload)
        elif kind is EventKind.SENT:  # control events written (audio is not echoed): the trail
            driver = self.drivers.get(sid)
            if driver is not None:
                driver.note(f"sent {event.payload.get('type')}")
        elif kind is EventKind.PROTOCOL_ERROR:
            driver = self.drivers.get(sid)
            if driver is not None:
                driver.note(f"protocol error: {str(event.payload.get('error', ''))[:80]}")
            self._metrics(sid).inc("errors")
            self._metrics(sid).inc("errors.protocol")
        elif kind is EventKind.DROPPED:
            category = event.payload.get("category", "other")
            self._metrics(sid).inc(f"dropped.{category}", event.payload.get("count", 1))
            if category == "turn":  # an audio turn lost at a drop: its wait fails now
                self._metrics(sid).inc("turns.lost", event.payload.get("count", 1))
                driver = self.drivers.get(sid)
                if driver is not None:
                    driver.turn_lost(str(event.payload.get("reason", "turn lost at a drop")))
        elif kind is EventKind.INFO and event.payload.get("event") == "turns.replayed":
            self._metrics(sid).inc("turns.replayed", event.payload.get("turns", 1))

    def _rate_limited(self, sid: str, event: ConnectionEvent) -> None:
        """A refusal over a rate limit is its own category (``rate_limited.*``), not an error."""
        category = rate_limited_category(event.kind.value, event.payload,
                                         connected=self.states.get(sid) is S.CONNECTED)
        if category is not None:
            self._metrics(sid).inc(f"rate_limited.{category}")

    def sync_key_mints(self) -> None:
        """Client-secret mints refused with 429 (the fleet's one key manager counts them)."""
        throttled = getattr(self.fleet.keys, "throttled", 0)
        if throttled > self.key_mints_seen:
            self.metrics.inc("rate_limited.key_mints", throttled - self.key_mints_seen)
            self.key_mints_seen = throttled

    def _metrics(self, sid: str) -> Any:
        """The metrics as the session's population records them (the run's, once it ended)."""
        driver = self.drivers.get(sid)
        return driver.metrics if driver is not None else self.metrics

    def _on_state(self, sid: str, change: dict[str, Any]) -> None:
        now = self.metrics.clock()
        target = S(change["to"])
        if sid not in self.drivers and target in (S.CLOSED, S.ERROR):
            # the last event of a session whose run has ended (dispatched after it was removed):
            # recording it would keep a state per ended session for the whole run, and count
            # ended sessions in the sessions.<state> gauges
            return
        previous = self.states.get(sid)
        self.states[sid] = target
        driver = self.drivers.get(sid)
        if driver is not None:
            reason = change.get("reason")
            driver.note(f"state {target.value}" + (f" ({reason})" if reason else ""))
        if target is S.CONNECTED:
            if sid in self.outage_since:
                self._metrics(sid).inc("reconnect.succeeded")
                self._metrics(sid).observe("reconnect.duration", now - self.outage_since.pop(sid))
            elif sid in self.started_at:
                self._metrics(sid).observe("connect.duration", now - self.started_at[sid])
            self._end_connect_span(sid, "connected")
        elif target is S.RECONNECTING:
            if previous is not S.RECONNECTING and sid not in self.outage_since:
                self._metrics(sid).inc("reconnect.attempts")
                self.outage_since[sid] = now
            self._start_connect_span(sid, change.get("reason", ""))
        elif target is S.CONNECTING:
            self._start_connect_span(sid, "initial")
        elif target in (S.ERROR, S.CLOSED):
            self._end_connect_span(sid, target.value)
            if target is S.ERROR:
                self._metrics(sid).inc("sessions.errored")
                if self.outage_since.pop(sid, None) is not None:
                    self._metrics(sid).inc("reconnect.failed")

    def _start_connect_span(self, sid: str, reason: str) -> None:
        parent = self.spans.get(sid)
        if parent is None or sid in self.connect_spans:
            return
        self.connect_spans[sid] = start_span("rtfleet.connect", {"rtfleet.session.id": sid,
                                                                 "rtfleet.connect.reason": reason},
                                             parent=parent)

    def _end_connect_span(self, sid: str, outcome: str) -> None:
        span = self.connect_spans.pop(sid, None)
        if span is not None:
            span.set_attribute("rtfleet.connect.outcome", outcome)
            span.end()

    def mark(self, kind: str, label: str) -> None:
        self.marks.append({"t": round(self.metrics.elapsed(), 3), "kind": kind, "label": label})

    # -- sessions -------------------------------------------------------------------------

    async def one_session(self, population: Population, stop: list[trio.CancelScope] | None = None) -> None:
        """One session of ``population``, once the rate-limit gate (if any) admits it."""
        gate = self.admission
        if gate is None:
            await self._one_session(population, stop)
            return
        if not await self._admitted(gate, population, stop):
            return  # the phase or the run ended while it waited: it never started
        try:
            await self._one_session(population, stop)
        finally:
            gate.release()

    async def _admitted(self, gate: AdmissionGate, population: Population,
                        stop: list[trio.CancelScope] | None) -> bool:
        metrics = self.metrics.labelled(population.name, protocol=population.protocol,
                                        transport=population.transport.value)
        plain = population.protocol == "realtime" and population.session_type == "realtime"
        scope = trio.CancelScope()
        if stop is not None:
            stop.append(scope)
        try:
            with scope:
                waited = await gate.admit(self.scenario.session.model if plain else None)
        finally:
            if stop is not None:
                stop.remove(scope)
        if scope.cancelled_caught:
            return False
        if gate.config.pace:
            metrics.observe("admission.wait", waited)
        if waited > 0:
            metrics.inc("admission.delayed")
        return True

    async def _one_session(self, population: Population, stop: list[trio.CancelScope] | None = None) -> None:
        fleet = self.fleet
        metrics = self.metrics.labelled(population.name, protocol=population.protocol,
                                        transport=population.transport.value)
        steps = self.scenario.scripts[population.script]
        sip = population.transport.value == "sip"
        if sip:
            if self.sip_call is None:  # pragma: no cover - run_scenario sets it for SIP populations
                raise RunInputError("transport sip needs the embedded target")
            sid = await fleet.add_session(transport="sip", sip_options=self.sip_call(),
                                          policy="transient", replay=False)
        elif population.session_type == "transcription":
            sid = await fleet.add_session(transport=population.transport.value,
                                          config=self.transcription_config)
        else:
            sid = await fleet.add_session(transport=population.transport.value,
                                          protocol=population.protocol)
        metrics.inc("sessions.started")
        vad = self.scenario.session.turn_detection is not None
        span = start_span("rtfleet.session", {
            "rtfleet.session.id": sid, "rtfleet.population": population.name,
            "rtfleet.transport": population.transport.value, "rtfleet.protocol": population.protocol,
            "gen_ai.operation.name": population.protocol,
            "gen_ai.request.model": self.scenario.session.model, "gen_ai.system": "openai",
        })
        self.spans[sid] = span
        self.started_at[sid] = metrics.clock()
        self._start_connect_span(sid, "initial")
        input_law = (g711_law(self.scenario.session.input_format.type)
                     if population.transport.value == "websocket" else None)
        driver = SessionDriver(sid, fleet, metrics, vad, span=span, sip=sip,
                               transcribe=population.session_type == "transcription",
                               input_law=input_law, speak_trail_ms=self.speak_trail_ms,
                               price=self.prices.get(population.protocol), budget=self.budget,
                               checks=self.checks, population=population.name)
        self.drivers[sid] = driver
        outcome = "failed"
        scope = trio.CancelScope()
        if stop is not None:
            stop.append(scope)
        try:
            with scope:
                try:
                    with trio.fail_after(CONNECT_TIMEOUT):
                        await fleet.wait_connected(sid)
                    conversation = fleet.links[sid].core.session_id
                    if conversation:
                        span.set_attribute("gen_ai.conversation.id", conversation)
                    await driver.run(steps)
                    outcome = "completed"
                except trio.TooSlowError:
                    self._error(sid, f"not connected within {CONNECT_TIMEOUT:g}s")
                except (FleetError, StepFailed) as exc:
                    self._error(sid, str(exc))
                except BudgetReached:  # the run is ending at its budget: not this session's fault
                    outcome = "stopped"
            if scope.cancelled_caught:
                outcome = "stopped"
        except trio.Cancelled:  # the whole run is ending (interrupted, or its duration limit)
            outcome = "stopped"
            raise
        finally:
            metrics.inc(f"sessions.{outcome}")
            if outcome == "failed":
                metrics.inc("errors")
            span.set_attribute("rtfleet.session.outcome", outcome)
            span.set_attribute("rtfleet.session.turns", driver.turns)
            with trio.CancelScope(shield=True):
                status = await fleet.remove_session(sid, forget=True)
            span.set_attribute("rtfleet.session.reconnects", status.reconnects)
            self._end_connect_span(sid, "closed")
            span.end()
            self.spans.pop(sid, None)
            self.drivers.pop(sid, None)
            self.started_at.pop(sid, None)
            if self.outage_since.pop(sid, None) is not None:
                # the session ended (script done, or stopped) while reconnecting: no verdict
                metrics.inc("reconnect.abandoned")
            self.states.pop(sid, None)
            if stop is not None:
                stop.remove(scope)

    def _error(self, sid: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            record: dict[str, Any] = {"session": sid, "error": message}
            driver = self.drivers.get(sid)
            if driver is not None and driver.trail:
                # what the session saw last (deltas aside): why a turn timed out, say
                record["trail"] = driver.trail_lines()
            self.errors.append(record)

    # -- phases ---------------------------------------------------------------------------

    async def population(self, population: Population) -> None:
        async with trio.open_nursery() as sessions:
            for index, phase in enumerate(population.phases):
                name = phase.name or f"{population.name}[{index}] {phase.mode}"
                self.mark("phase", name)
                self.phase = name
                if phase.mode == "sessions":
                    await self._phase_sessions(population, phase)
                elif phase.mode == "arrival_rate":
                    await self._phase_arrivals(population, phase, sessions)
                else:
                    await self._phase_concurrency(population, phase)

    async def _phase_sessions(self, population: Population, phase: Phase) -> None:
        stop: list[trio.CancelScope] = []
        async with trio.open_nursery() as timer:
            if phase.duration:
                timer.start_soon(_stop_after, stop, phase.duration)
            async with trio.open_nursery() as nursery:
                for _ in range(phase.sessions or 0):
                    nursery.start_soon(self.one_session, population, stop)
            timer.cancel_scope.cancel()

    async def _phase_arrivals(self, population: Population, phase: Phase, sessions: trio.Nursery) -> None:
        start = trio.current_time()
        for offset in phase.arrival_offsets(random.Random(self.rng.random())):
            await trio.sleep_until(start + offset)
            sessions.start_soon(self.one_session, population)
        await trio.sleep_until(start + (phase.duration or 0))

    async def _phase_concurrency(self, population: Population, phase: Phase) -> None:
        start = trio.current_time()
        end = start + (phase.duration or 0)
        stop: list[trio.CancelScope] = []
        running = 0
        changed = trio.Event()

        async def slot() -> None:
            nonlocal running
            try:
                await self.one_session(population, stop)
            finally:
                running -= 1
                changed.set()

        async with trio.open_nursery() as nursery:
            while trio.current_time() < end:
                want = round(phase.level_at(trio.current_time() - start))
                while running < want:
                    running += 1
                    nursery.start_soon(slot)
                # wake on a finished session, or every 250 ms to follow a ramp
                with trio.move_on_at(min(end, trio.current_time() + 0.25)):
                    await changed.wait()
                changed = trio.Event()
            for scope in list(stop):
                scope.cancel()

    # -- sampling ------------------------------------------------------------------------

    async def sample(self) -> None:
        """Sessions by state at the end of every second (slot ``n`` holds the count at
        ``n + 1`` s); `sample_states` takes the final one when the run ends."""
        second = 0
        while True:
            second += 1
            await trio.sleep_until(self.metrics.origin + second)
            self.sample_states(slot=second - 1)
            self.sync_key_mints()
            if self.budget is not None:
                self.budget.add_session_seconds(sum(1 for st in self.states.values() if st is S.CONNECTED))

    def sample_states(self, slot: int | None = None) -> None:
        """Record the live states (``closed`` is not one: ended sessions are the
        ``sessions.completed/failed/stopped`` counters) into ``slot`` (default: the slot the
        run is in now, for the final sample)."""
        counts = {state: 0 for state in S}
        for state in self.states.values():
            counts[state] += 1
        if slot is None:
            slot = max(math.ceil(self.metrics.elapsed()) - 1, 0)
        for state, n in counts.items():
            if state is not S.CLOSED:
                self.metrics.gauge(f"sessions.{state.value}", n, at=slot + 0.5)
        if self.on_tick is not None:
            self.on_tick(self.progress(counts))

    def progress(self, counts: dict[ConnectionState, int] | None = None) -> dict[str, Any]:
        c = self.metrics.counter
        if counts is None:
            counts = {state: 0 for state in S}
            for state in self.states.values():
                counts[state] += 1
        return {
            "t": round(self.metrics.elapsed(), 1), "phase": self.phase,
            "limit": self.scenario.duration_limit,
            "sessions": {state.value: n for state, n in counts.items()},
            "started": int(c("sessions.started")), "completed": int(c("sessions.completed")),
            "failed": int(c("sessions.failed")), "turns": int(c("turns.completed")),
            "errors": int(c("errors")), "reconnects": int(c("reconnect.attempts")),
        }


async def _sip_calls(nursery: trio.Nursery, fleet: Fleet, controller: Any, server: Any,
                     law: int = 0) -> Callable[[], Any]:
    """Start the phone every SIP session dials from; returns a maker of their ``SipOptions``
    (``law``: the G.711 law the phone offers first, 8 A-law when the session's input is
    ``audio/pcma``, else 0 µ-law)."""
    from actors.sip import SipOptions
    from actors.sip_phone import SipPhone

    controller.attach(None, api_base=fleet.url, api_key=server.api_key)
    phone = SipPhone()
    await nursery.start(phone.run)
    target = f"sip:openai@{server.sip.host}:{server.sip.port}"
    return lambda: SipOptions(phone, target=target, call_id=controller.call_id_for,
                              credentials=fleet.keys.credential, law=law)


async def _stop_after(scopes: list[trio.CancelScope], delay: float) -> None:
    await trio.sleep(delay)
    for scope in list(scopes):
        scope.cancel()


def _proto_config(scenario: Scenario) -> ProtoSessionConfig:
    return ProtoSessionConfig.from_dict(scenario.session.to_session())


def _transcription_config(scenario: Scenario) -> ProtoSessionConfig:
    """A ``session_type: transcription`` population's config: the scenario's input side."""
    return ProtoSessionConfig.from_dict(scenario.session.to_transcription_session())


def _check_supported(scenario: Scenario) -> None:
    available = {t.value for t in available_transports()}
    for population in scenario.populations:
        if population.transport.value not in available:
            raise RunInputError(
                f"population {population.name!r}: transport {population.transport.value!r} is not "
                f"available in this build (available: {', '.join(sorted(available))})")


async def run_scenario(
    scenario: Scenario,
    *,
    file: str = "",
    target: str | None = None,
    seed: int | None = None,
    on_tick: Callable[[dict[str, Any]], None] | None = None,
    stop: trio.Event | None = None,
    heap_warn_mb: float | None = None,
    on_live: Callable[[Callable[[], dict[str, Any]]], None] | None = None,
) -> RunResult:
    """Run ``scenario`` to the end and evaluate its thresholds.

    ``stop`` (set on Ctrl-C or SIGTERM by the CLI) ends the run early: the sessions are closed
    as at the end of a run and the results, marked ``"verdict": "interrupted"``, cover what ran.
    ``on_live`` (the live page, ``rtfleet run --ui``) is called once the fleet is open with a
    function that returns the results so far: the same ``results.json`` data as at the end,
    ``"verdict": "running"``, built by the same code from the metrics as they are now.
    """
    from orchestrator.scenario.results import build_results

    _check_supported(scenario)
    seed = scenario.seed if seed is None else seed
    rng = random.Random(seed)
    config = _proto_config(scenario)
    started_wall = time.time()
    metrics = RunMetrics(trio.current_time, trio.current_time())
    for name in DECLARED:
        metrics.inc(name, 0)
    target_spec = scenario.target
    if target is not None:
        target_spec = EmbeddedTarget() if target == "embedded" else RemoteTarget(url=target)
    remote = None
    if not isinstance(target_spec, EmbeddedTarget):  # OpenAI, Azure OpenAI, generic (remote.py)
        try:
            remote = remote_access(target_spec, os.environ)
        except LookupError as exc:
            raise RunError(str(exc)) from None
        problem = await _unreachable(remote.endpoint.base)
        if problem is not None:
            raise RunError(f"target {remote.label} unreachable: {problem}")
        if remote.key_mode != "ephemeral" and any(p.transport.value == "webrtc" for p in scenario.populations):
            raise RunInputError("webrtc populations need client secrets: set the target's "
                                "key_mode: ephemeral")
    run: _Run | None = None
    interrupted = False
    budget = BudgetGate(scenario.budget) if scenario.budget is not None else None
    prices = run_prices(scenario)
    sip = any(p.transport.value == "sip" for p in scenario.populations)
    if sip and not isinstance(target_spec, EmbeddedTarget):
        raise RunInputError("transport sip populations need the embedded target")
    target_label = "embedded" if remote is None else remote.label

    def results_now(run: _Run, *, interrupted: bool = False,
                    running: bool = False) -> tuple[dict[str, Any], bool]:
        """The results, and whether the run passed, from the metrics as they are now: at the
        end of the run, or while it goes (``running``: the live page's "results so far")."""
        run.sync_key_mints()
        # Outages that ended because the session itself ended (reconnect.abandoned) have no
        # outcome; the rate is over those that did.
        succeeded = metrics.counter("reconnect.succeeded")
        decided = succeeded + metrics.counter("reconnect.failed")
        metrics.gauge("reconnect.success_rate", succeeded / decided if decided else 1.0,
                      series=False)
        elapsed = metrics.elapsed()
        checked = evaluate((*scenario.thresholds, *implicit_check_threshold(scenario)),
                           make_lookup(metrics.registry, elapsed=elapsed))
        results = build_results(
            scenario, file=file, target=target_label, seed=seed, started=started_wall,
            elapsed=elapsed, metrics=metrics, thresholds=checked, marks=list(run.marks),
            errors=list(run.errors), interrupted=interrupted, running=running,
            spend=spend_summary(metrics, prices, budget),
        )
        results["checks"] = run.checks.snapshot()
        results["rate_limits"] = {"seen": run.fleet.rate_limits.snapshot(),
                                  "admission": None if run.admission is None
                                  else run.admission.summary(scenario.session.model)}
        stopped = budget is not None and budget.reached.is_set()
        if stopped and not running:
            results["verdict"] = "budget"
        return results, all(r.passed for r in checked) and not interrupted and not stopped

    async with trio.open_nursery() as root:
        control = None
        controller = None
        if isinstance(target_spec, EmbeddedTarget):
            key = f"sk-local-{secrets.token_urlsafe(16)}"
            plan = FaultPlan(**target_spec.faults.plan_fields(seed))
            sip_side: dict[str, Any] = {}
            if sip:
                from standin.keys.webhooks import new_webhook_secret
                from orchestrator.sip_controller import SipController

                secret = new_webhook_secret()
                controller = SipController(secret, {"type": "realtime", **scenario.session.to_session()},
                                           attach_sessions=False)
                sip_side = {"sip_port": 0, "webhook_secret": secret,
                            "webhook_url": await root.start(controller.serve)}
            try:
                model_config = stand_in_model(target_spec, seed)
            except ValueError as exc:
                raise RunInputError(str(exc)) from None
            if model_config is not None:
                sip_side["model_config"] = model_config
            server = EmbeddedServer(api_keys={key}, faults=plan, **sip_side)
            control = ServerControl(server, root)
            url = await control.start()
            access: dict[str, Any] = {"api_key": key}
        else:
            assert remote is not None
            url = remote.endpoint
            access = {"api_key": remote.api_key, "key_mode": remote.key_mode,
                      "token_source": remote.token_source}
        webrtc = any(p.transport.value == "webrtc" for p in scenario.populations)
        async with open_fleet(url, **access, config=config, seed=seed, webrtc=webrtc,
                              backoff=Backoff(base=0.25, cap=5.0)) as fleet:
            run = _Run(scenario, fleet, metrics, rng, on_tick, budget=budget,
                       prices={protocol: price for protocol, (_, price) in prices.items()})
            if scenario.rate_limits is not None:
                run.admission = AdmissionGate(scenario.rate_limits, fleet.admission_readings)
            if on_live is not None:
                on_live(lambda: results_now(run, running=True)[0])
            if controller is not None:
                run.sip_call = await _sip_calls(
                    root, fleet, controller, server,
                    law=8 if scenario.session.input_format.type == "audio/pcma" else 0)
            subscription = fleet.subscribe(buffer=math.inf)
            if heap_warn_mb is not None:
                root.start_soon(watch_heap, heap_warn_mb, partial(
                    _run_stores, metrics, fleet, control.server if control else None))
            interrupt = trio.CancelScope()
            if stop is not None:
                root.start_soon(_cancel_when_set, stop, interrupt)
            over_budget = trio.CancelScope()
            if budget is not None:
                root.start_soon(budget.stop_after_in_flight, over_budget, BUDGET_GRACE)
            with interrupt, over_budget, trio.move_on_after(scenario.duration_limit) as limit:
                async with trio.open_nursery() as background:
                    background.start_soon(run.dispatch, subscription)
                    background.start_soon(run.sample)
                    if scenario.faults:
                        background.start_soon(partial(
                            run_faults, scenario.faults, fleet=fleet, control=control,
                            metrics=metrics, rng=random.Random(rng.random()), mark=run.mark))
                    async with trio.open_nursery() as populations:
                        for population in scenario.populations:
                            populations.start_soon(run.population, population)
                    background.cancel_scope.cancel()
            if limit.cancelled_caught:
                run.mark("phase", "duration limit reached")
            if interrupt.cancelled_caught:
                interrupted = True
                run.mark("phase", "interrupted")
            if over_budget.cancelled_caught:
                run.mark("budget", f"budget reached: {budget.reason}")
            subscription.close()
            async for event in subscription:  # what is still buffered
                run.on_event(event)
            run.sample_states()  # the final sample, at the end of the run
        root.cancel_scope.cancel()
    assert run is not None
    return RunResult(*results_now(run, interrupted=interrupted))


def _run_stores(metrics: RunMetrics, fleet: Fleet, server: Any) -> list[Any]:
    """The stores a run keeps, for the heap guard's warning."""
    timeline = metrics.series
    size = len(json.dumps(timeline.snapshot(), default=str))
    stores = [("run timeline", size, f"in {len(timeline.slots)} slots of {timeline.interval:g} s"),
              ("fleet sessions", 2048 * len(fleet.links), f"{len(fleet.links)} sessions")]
    if server is not None:
        stores += server_stores(server)
    return stores


#: how long the pre-flight check waits for the target's TCP port before the run gives up
PREFLIGHT_TIMEOUT = 5.0


async def _unreachable(url: str) -> str | None:
    """Why the target's host:port takes no TCP connection (None: it does). A run against a
    target nobody answers on fails at once with this reason instead of after every session's
    retries (exit 3)."""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        return str(exc)
    host = parts.hostname or ""
    with trio.move_on_after(PREFLIGHT_TIMEOUT):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            attempts = getattr(exc.__cause__, "exceptions", ())  # trio: one error per address
            reasons = sorted({e.strerror or str(e) for e in attempts if isinstance(e, OSError)})
            return f"{host}:{port}: {', '.join(reasons) or exc.strerror or exc}"
        await stream.aclose()
        return None
    return f"{host}:{port}: no answer within {PREFLIGHT_TIMEOUT:g}s"


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
