"""The scenario model: attrs frozen values, built by the loader (via cattrs) or by hand.

A `Scenario` says what to connect to (`target`), how each session is configured (`session`),
who connects and when (`populations` of `Phase`s), what each session does (`scripts` of
steps, see `steps`), what goes wrong on purpose (`faults`, see `faults`) and what must hold at
the end (`thresholds`). Durations are float seconds; constructors also accept "2s"-style
strings, lists for tuples, and threshold strings::

    Scenario(
        name="smoke",
        populations=[Population(name="users", script="hello", phases=[Phase(sessions=5)])],
        scripts={"hello": [Say("Hi!")]},
        thresholds=["errors == 0"],
    )

Values are frozen (change them with `attrs.evolve`); the ones holding dicts (`Scenario`,
`SessionConfig`, `Send`) compare by value but are not hashable.
"""

import enum
import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Union

from pathlib import Path

import attrs

from .checks import at_least, at_most, non_empty, one_of, optional_seconds, seconds, to_tuple
from .durations import Duration, format_duration
from .errors import InvalidField, Problem, did_you_mean
from .faults import FaultEvent, ServerFaults
from .metric_names import threshold_problem
from orchestrator.usage import Price

from .admission import RateLimits
from .budget import Budget
from .targets import AzureAuth, AzureTarget, check_headers
from .steps import AnswerToolCall, BargeIn, Cancel, Expect, ExpectToolCall, Repeat, Say, Send, Step, WaitResponse
from .thresholds import Threshold, parse_threshold

__all__ = [
    "Transport",
    "Dialect",
    "Modality",
    "AudioFormat",
    "ServerVad",
    "SemanticVad",
    "TurnDetection",
    "Transcription",
    "SessionConfig",
    "EmbeddedTarget",
    "RemoteTarget",
    "AzureTarget",
    "AzureAuth",
    "Target",
    "Phase",
    "Population",
    "Scenario",
]


class Transport(enum.StrEnum):
    WEBSOCKET = "websocket"
    WEBRTC = "webrtc"
    SIP = "sip"


class Dialect(enum.StrEnum):
    GA = "ga"
    BETA = "beta"


class Modality(enum.StrEnum):
    AUDIO = "audio"
    TEXT = "text"


# -- session ------------------------------------------------------------------------------

AUDIO_TYPES = ("audio/pcm", "audio/pcmu", "audio/pcma")


def _audio_rate(instance: "AudioFormat", _attribute: attrs.Attribute, value: int) -> None:
    expected = 24000 if instance.type == "audio/pcm" else 8000
    if value != expected:
        raise InvalidField(f"{instance.type} is {expected} Hz, got rate {value}", ("rate",))


@attrs.frozen
class AudioFormat:
    """GA ``audio.{input,output}.format``. Files may also say ``pcm16``, ``g711_ulaw``, ..."""

    type: str = attrs.field(default="audio/pcm", validator=attrs.validators.in_(AUDIO_TYPES))
    rate: int = attrs.field(validator=_audio_rate)

    @rate.default
    def _default_rate(self) -> int:
        return 24000 if self.type == "audio/pcm" else 8000

    def to_session(self) -> dict[str, Any]:
        """The GA ``format`` object (``rate`` only for audio/pcm)."""
        if self.type == "audio/pcm":
            return {"type": self.type, "rate": self.rate}
        return {"type": self.type}


@attrs.frozen
class ServerVad:
    threshold: float = attrs.field(default=0.5, validator=[at_least(0), at_most(1)])
    prefix_padding_ms: int = attrs.field(default=300, validator=at_least(0))
    silence_duration_ms: int = attrs.field(default=500, validator=at_least(0))
    idle_timeout_ms: int | None = attrs.field(default=None, validator=at_least(0))
    create_response: bool = True
    interrupt_response: bool = True

    type: ClassVar[str] = "server_vad"


@attrs.frozen
class SemanticVad:
    eagerness: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("low", "medium", "high", "auto"))
    )
    create_response: bool = True
    interrupt_response: bool = True

    type: ClassVar[str] = "semantic_vad"


#: None turns turn detection off (the client commits audio and asks for responses)
TurnDetection = Union[ServerVad, SemanticVad, None]


@attrs.frozen
class Transcription:
    """GA ``audio.input.transcription``; a file may give just the model name."""

    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str | None = None


def _modalities(value: Any) -> tuple[Modality, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(Modality(v) for v in value)


def _check_modalities(_instance: Any, _attribute: attrs.Attribute, value: tuple) -> None:
    if not value:
        raise InvalidField("must name at least one of audio, text", ("output_modalities",))
    if len(set(value)) != len(value):
        raise InvalidField("lists a modality twice", ("output_modalities",))


@attrs.frozen
class SessionConfig:
    """What each session's ``session.update`` asks for (GA names)."""

    model: str = "gpt-realtime"
    instructions: str | None = None
    voice: str = "alloy"
    output_modalities: tuple[Modality, ...] = attrs.field(
        default=(Modality.AUDIO,), converter=_modalities, validator=_check_modalities
    )
    input_format: AudioFormat = attrs.field(factory=AudioFormat)
    output_format: AudioFormat = attrs.field(factory=AudioFormat)
    turn_detection: TurnDetection = attrs.field(factory=ServerVad)
    transcription: Transcription | None = None
    #: merged verbatim into the ``session`` object of ``session.update`` (tools, ...)
    extra: dict[str, Any] = attrs.field(factory=dict)

    def to_session(self) -> dict[str, Any]:
        """The GA ``session`` object for ``session.update`` (the beta dialect translates it)."""
        detection, transcription = self.turn_detection, self.transcription
        audio_input: dict[str, Any] = {
            "format": self.input_format.to_session(),
            "turn_detection": None
            if detection is None
            else {"type": detection.type, **attrs.asdict(detection)},
            "transcription": None
            if transcription is None
            else {k: v for k, v in attrs.asdict(transcription).items() if v is not None},
        }
        audio_output = {"format": self.output_format.to_session(), "voice": self.voice}
        session: dict[str, Any] = {
            "type": "realtime",
            "model": self.model,
            "output_modalities": [m.value for m in self.output_modalities],
            "audio": {"input": audio_input, "output": audio_output},
        }
        if self.instructions is not None:
            session["instructions"] = self.instructions
        return session | self.extra

    def to_transcription_session(self) -> dict[str, Any]:
        """The GA ``session`` of a transcription session made of this config's input side
        (format, turn detection, transcription: ``gpt-4o-transcribe`` when none is set, and
        ``extra``'s ``include`` and input noise reduction)."""
        audio_input = self.to_session()["audio"]["input"]
        if audio_input["transcription"] is None:
            audio_input["transcription"] = {"model": Transcription().model}
        extra_input = ((self.extra.get("audio") or {}).get("input") or {})
        if "noise_reduction" in extra_input:
            audio_input["noise_reduction"] = extra_input["noise_reduction"]
        session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
        if "include" in self.extra:
            session["include"] = self.extra["include"]
        return session


# -- target -------------------------------------------------------------------------------


@attrs.frozen
class EmbeddedTarget:
    """rtfleet's own realtime-compatible server, started for the run (file: ``embedded``)."""

    faults: ServerFaults = attrs.field(factory=ServerFaults)
    dialect: Dialect = attrs.field(default=Dialect.GA, converter=Dialect)
    #: a rules file (``standin/model/rules.py``): the server answers by it and hears the
    #: words it listens for (relative to the scenario file); None: the echo model
    model: Path | None = None
    #: how its answers sound: ``tone`` (the default), ``speech`` or ``speech:VOICE`` (espeak-ng)
    voice: str = attrs.field(default="tone", validator=lambda _i, _a, v: _voice(v))


def _voice(value: str) -> None:
    kind, colon, name = value.partition(":")
    if value != "tone" and (kind != "speech" or (colon and not name.strip())):
        raise InvalidField(f"unknown voice {value!r}: expected tone, speech or speech:VOICE "
                           "(an espeak-ng voice, e.g. speech:en-gb)", ("voice",))


def _url(_instance: Any, _attribute: attrs.Attribute, value: str) -> None:
    if not value.startswith(("ws://", "wss://", "http://", "https://")):
        message = f"expected a ws://, wss://, http:// or https:// URL, got {value!r}"
        raise InvalidField(message, ("url",))


def _headers(_instance: Any, _attribute: attrs.Attribute, value: dict[str, str]) -> None:
    check_headers(value)


@attrs.frozen
class RemoteTarget:
    """A real service; the key is read from the environment variable ``api_key_env``.
    ``headers`` go on every request (``${NAME}`` expands an environment variable at run time)."""

    url: str = attrs.field(validator=_url)
    api_key_env: str = attrs.field(default="OPENAI_API_KEY", validator=non_empty)
    dialect: Dialect = attrs.field(default=Dialect.GA, converter=Dialect)
    headers: dict[str, str] = attrs.field(factory=dict, validator=_headers)


Target = Union[EmbeddedTarget, RemoteTarget, AzureTarget]

#: steps that ask for or wait on a response: none is for a transcription session
_RESPONSE_STEPS = (Say, WaitResponse, BargeIn, Cancel, ExpectToolCall, AnswerToolCall, Expect)


# -- load shape -----------------------------------------------------------------------------


@attrs.frozen
class Phase:
    """One stretch of a population's load. Exactly one of:

    * ``arrival_rate``: open model, new sessions per second (each runs its script once);
    * ``concurrency``: closed model, keep this many sessions running (a finished one is
      replaced) for ``duration``;
    * ``sessions``: start this many sessions at once; the phase lasts until they finish
      (or ``duration``, when given).

    ``ramp_to`` (rate or concurrency only) moves the rate or concurrency linearly from its
    start value to ``ramp_to`` over ``duration``.
    """

    duration: Duration | None = attrs.field(default=None, converter=optional_seconds)
    arrival_rate: float | None = attrs.field(default=None, validator=at_least(0))
    concurrency: int | None = attrs.field(default=None, validator=at_least(0))
    sessions: int | None = attrs.field(default=None, validator=at_least(1))
    ramp_to: float | None = attrs.field(default=None, validator=at_least(0))
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        modes = ("arrival_rate", "concurrency", "sessions")
        given = [k for k in modes if getattr(self, k) is not None]
        if not given:
            raise InvalidField("a phase needs one of arrival_rate, concurrency or sessions")
        if len(given) > 1:
            message = (
                "a phase takes one of arrival_rate, concurrency or sessions, "
                f"not both {given[0]} and {given[1]}"
            )
            raise InvalidField(message, (given[1],), at_key=True)
        if self.sessions is not None:
            if self.ramp_to is not None:
                message = "ramp_to applies to arrival_rate or concurrency"
                raise InvalidField(message, ("ramp_to",), at_key=True)
        elif self.duration is None or self.duration <= 0:
            raise InvalidField(f"a {given[0]} phase needs a duration > 0", ("duration",))
        ramp = self.ramp_to
        if self.concurrency is not None and ramp is not None and ramp != int(ramp):
            message = f"a concurrency ramp goes to a whole number, got {ramp}"
            raise InvalidField(message, ("ramp_to",))

    @property
    def mode(self) -> str:
        """``"arrival_rate"``, ``"concurrency"`` or ``"sessions"``."""
        if self.arrival_rate is not None:
            return "arrival_rate"
        return "concurrency" if self.concurrency is not None else "sessions"

    def level_at(self, elapsed: float) -> float:
        """The rate (sessions/s) or concurrency ``elapsed`` seconds into the phase."""
        if self.arrival_rate is not None:
            start = float(self.arrival_rate)
        else:
            start = float(self.concurrency or self.sessions or 0)
        if self.ramp_to is None or not self.duration:
            return start
        frac = min(max(elapsed / self.duration, 0.0), 1.0)
        return start + (self.ramp_to - start) * frac

    def arrival_offsets(self, rng: Any = None) -> Iterator[float]:
        """Start times (seconds into the phase) of an ``arrival_rate`` phase.

        The expected number of arrivals by ``t`` is ``N(t) = r0*t + (r1-r0)*t**2/(2*D)``.
        Without ``rng`` the k-th session (k = 0, 1, ...) starts where ``N(t) = k`` (evenly
        spaced along the ramp, first at 0). With ``rng`` (a `random.Random`), arrivals are
        Poisson with that time-varying rate: unit exponential steps in ``N``.
        """
        if self.arrival_rate is None or self.duration is None:
            return
        r0, duration = self.arrival_rate, self.duration
        r1 = self.ramp_to if self.ramp_to is not None else r0
        a = (r1 - r0) / (2 * duration)
        total = r0 * duration + a * duration * duration
        u = 0.0 if rng is None else rng.expovariate(1.0)
        while u < total:
            if u == 0:
                t = 0.0
            elif a == 0:
                t = u / r0
            else:
                t = 2 * u / (r0 + math.sqrt(max(r0 * r0 + 4 * a * u, 0.0)))
            if t >= duration:
                return
            yield t
            u += 1.0 if rng is None else rng.expovariate(1.0)


@attrs.frozen
class Population:
    """Sessions that share a transport and a script. A file may write ``sessions: N`` instead
    of ``phases`` (one phase starting N sessions at once)."""

    name: str = attrs.field(validator=non_empty)
    script: str = attrs.field(validator=non_empty)
    phases: tuple[Phase, ...] = attrs.field(converter=to_tuple, validator=non_empty)
    transport: Transport = attrs.field(default=Transport.WEBSOCKET, converter=Transport)
    #: the protocol its sessions speak: "realtime" (/v1/realtime) or "live" (GPT-Live)
    protocol: str = attrs.field(default="realtime", validator=one_of("realtime", "live"))
    #: "realtime" (a voice session) or "transcription" (``?intent=transcription``: its audio
    #: is transcribed, nothing answers; the scenario's ``session`` gives its input side)
    session_type: str = attrs.field(default="realtime",
                                    validator=one_of("realtime", "transcription"))

    @classmethod
    def all_at_once(
        cls, name: str, script: str, sessions: int, transport: str = "websocket"
    ) -> "Population":
        """The file's ``sessions: N``: one phase starting N sessions at once."""
        phases = (Phase(sessions=sessions),)
        return cls(name=name, script=script, phases=phases, transport=transport)

    @property
    def duration(self) -> float | None:
        """Sum of the phase durations; None if a phase lasts until its sessions finish."""
        if any(p.duration is None for p in self.phases):
            return None
        return sum(p.duration for p in self.phases)  # type: ignore[misc]


# -- scenario -------------------------------------------------------------------------------


def _scripts(value: Mapping[str, Any]) -> dict[str, tuple[Step, ...]]:
    if not isinstance(value, Mapping):
        got = type(value).__name__
        raise InvalidField(f"expected a mapping of script names to steps, got {got}")
    return {name: to_tuple(steps) for name, steps in value.items()}


def _thresholds(value: Any) -> tuple[Threshold, ...]:
    return tuple(t if isinstance(t, Threshold) else parse_threshold(t) for t in to_tuple(value))


@attrs.frozen
class Scenario:
    name: str = attrs.field(validator=non_empty)
    description: str = ""
    seed: int = 0
    #: the run stops after this long whatever is still going on
    duration_limit: Duration = attrs.field(
        default=600.0, converter=seconds, validator=at_least(0, strict=True)
    )
    target: Target = attrs.field(factory=EmbeddedTarget)
    session: SessionConfig = attrs.field(factory=SessionConfig)
    populations: tuple[Population, ...] = attrs.field(default=(), converter=to_tuple)
    scripts: dict[str, tuple[Step, ...]] = attrs.field(factory=dict, converter=_scripts)
    faults: tuple[FaultEvent, ...] = attrs.field(default=(), converter=to_tuple)
    thresholds: tuple[Threshold, ...] = attrs.field(default=(), converter=_thresholds)
    #: the spending limit (``budget.py``); a run against a hosted target needs one
    budget: Budget | None = None
    #: price table entries that add to or override the shipped one (``orchestrator/usage.py``)
    prices: dict[str, Price] = attrs.field(factory=dict)
    #: admission paced under the service's rate limits (``admission.py``); None: not paced
    rate_limits: RateLimits | None = None

    def __attrs_post_init__(self) -> None:
        problems = [*self._population_problems(), *self._fault_problems(), *self._sip_problems(),
                    *self._live_problems(), *self._transcription_problems(),
                    *self._threshold_problems()]
        if problems:
            raise InvalidField.many(problems)

    def _population_problems(self) -> Iterator[Problem]:
        seen: set[str] = set()
        for i, pop in enumerate(self.populations):
            if pop.name in seen:
                message = f"population {pop.name!r} is defined twice"
                yield Problem(("populations", i, "name"), message)
            seen.add(pop.name)
            if pop.script not in self.scripts:
                known = ", ".join(sorted(self.scripts)) or "none defined"
                hint = did_you_mean(pop.script, self.scripts)
                yield Problem(
                    ("populations", i, "script"),
                    f"unknown script {pop.script!r}{hint} (scripts: {known})",
                )
            length = pop.duration
            if length is not None and length > self.duration_limit:
                yield Problem(
                    ("populations", i, "phases"),
                    f"phases last {format_duration(length)}, longer than duration_limit "
                    f"{format_duration(self.duration_limit)}",
                )

    def _threshold_problems(self) -> Iterator[Problem]:
        """A threshold on a metric no run records (or with a statistic it does not have) would
        only fail at the end of the run, like a real failure; say so now (see `metric_names`)."""
        for i, threshold in enumerate(self.thresholds):
            problem = threshold_problem(threshold.metric, threshold.stat)
            if problem is not None:
                yield Problem(("thresholds", i), problem, offset=0)

    def _fault_problems(self) -> Iterator[Problem]:
        remote = isinstance(self.target, RemoteTarget)
        for i, fault in enumerate(self.faults):
            if fault.at >= self.duration_limit:
                yield Problem(
                    ("faults", i, "at"),
                    f"at {format_duration(fault.at)} is not before duration_limit "
                    f"{format_duration(self.duration_limit)}",
                )
            if remote and fault.action.server_side:
                yield Problem(
                    ("faults", i, "action"),
                    f"{fault.action.action} needs the embedded server; a remote target only "
                    "takes drop_connections",
                )

    def _live_problems(self) -> Iterator[Problem]:
        """``protocol: live`` populations run over WebSocket or WebRTC."""
        for i, pop in enumerate(self.populations):
            if pop.protocol == "live" and pop.transport is Transport.SIP:
                yield Problem(("populations", i, "protocol"),
                              "protocol live runs over websocket or webrtc, not sip (a phone "
                              "call reaches Live through a sideband, not as a population)")

    def _transcription_problems(self) -> Iterator[Problem]:
        """``session_type: transcription`` populations: Realtime over WebSocket, and scripts
        with no step that asks for or waits on a response."""
        scripts_seen: set[str] = set()
        for i, pop in enumerate(self.populations):
            if pop.session_type != "transcription":
                continue
            if pop.transport is not Transport.WEBSOCKET or pop.protocol != "realtime":
                yield Problem(("populations", i, "session_type"),
                              "transcription sessions run over websocket on protocol realtime")
            if pop.script in self.scripts and pop.script not in scripts_seen:
                scripts_seen.add(pop.script)
                yield from self._transcription_step_problems(("scripts", pop.script),
                                                             self.scripts[pop.script], pop.name)

    def _transcription_step_problems(self, path: tuple, steps: tuple[Step, ...],
                                     population: str) -> Iterator[Problem]:
        for j, step in enumerate(steps):
            if isinstance(step, Repeat):
                yield from self._transcription_step_problems((*path, j, "steps"), step.steps, population)
            elif isinstance(step, _RESPONSE_STEPS):
                yield Problem((*path, j, step.kind),
                              f"{step.kind} is not for a transcription session (population "
                              f"{population!r}): nothing answers it; use play, wait_transcript, "
                              "pause and send", at_key=True)

    def _sip_problems(self) -> Iterator[Problem]:
        """A ``transport: sip`` population calls the embedded server's SIP side and drives the
        call through its sideband; audio reaches the service by RTP, in real time."""
        scripts_seen: set[str] = set()
        for i, pop in enumerate(self.populations):
            if pop.transport is not Transport.SIP:
                continue
            if isinstance(self.target, RemoteTarget):
                yield Problem(("populations", i, "transport"),
                              "transport sip needs the embedded target (its SIP user agent server "
                              "answers the calls)")
            if pop.script in self.scripts and pop.script not in scripts_seen:
                scripts_seen.add(pop.script)
                yield from self._sip_step_problems(("scripts", pop.script), self.scripts[pop.script],
                                                   pop.name)

    def _sip_step_problems(self, path: tuple, steps: tuple[Step, ...], population: str) -> Iterator[Problem]:
        for j, step in enumerate(steps):
            if isinstance(step, Repeat):
                yield from self._sip_step_problems((*path, j, "steps"), step.steps, population)
            elif isinstance(step, Send) and step.event.get("type") == "input_audio_buffer.append":
                yield Problem((*path, j, "send"),
                              f"input_audio_buffer.append is not supported on a phone call "
                              f"(population {population!r} calls over sip): the caller's audio "
                              "goes to the service by RTP; use play", at_key=True)

    def script(self, name: str) -> tuple[Step, ...]:
        return self.scripts[name]

    @property
    def sorted_faults(self) -> tuple[FaultEvent, ...]:
        """The fault timeline in time order (stable for equal times)."""
        return tuple(sorted(self.faults, key=lambda f: f.at))
