"""cattrs structuring of the scenario model (plain YAML data -> frozen attrs values).

Structuring is strict: primitives must have the right YAML type (no silent ``"3"`` -> 3),
unknown keys are errors, and every error is raised as `InvalidField` or a cattrs
validation group that `errors.problems_of` turns into field paths. Custom hooks give the
file its short forms: step and fault kinds as keys, ``target: embedded``, ``turn_detection:
server_vad``, ``input_format: pcm16``, ``transcription: <model>``, ``sessions: N``, and
threshold strings.

The way back (model -> plain data) is in `unstructure`.
"""

import contextvars
import enum
import math
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from .admission import Percent, parse_percent
from .budget import Money, parse_money
from .checks import primary_key
from .durations import Duration, DurationError, parse_duration
from .errors import (
    InvalidField,
    Problem,
    describe,
    did_you_mean,
    problems_of,
    unknown_key,
    yaml_keys,
)
from .faults import FAULT_ACTIONS, FaultEvent
from .model import (
    AUDIO_TYPES,
    AudioFormat,
    Dialect,
    EmbeddedTarget,
    Modality,
    Population,
    RemoteTarget,
    Scenario,
    SemanticVad,
    ServerVad,
    Target,
    Transcription,
    Transport,
    TurnDetection,
)
from .steps import STEP_KINDS, Play, Step
from .targets import AUTH_TYPES, AzureAuth, AzureTarget, _api_version
from .thresholds import Threshold, parse_threshold

__all__ = ["converter", "structure_scenario", "base_dir"]

#: directory that relative ``play`` paths are resolved against (set by the loader); when
#: None, paths are left as written and not checked
base_dir: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "scenario_base_dir", default=None
)

converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)

_URL_PREFIXES = ("ws://", "wss://", "http://", "https://")
_FORMAT_ALIASES = {
    "pcm16": "audio/pcm",
    "pcm": "audio/pcm",
    "g711_ulaw": "audio/pcmu",
    "pcmu": "audio/pcmu",
    "g711_alaw": "audio/pcma",
    "pcma": "audio/pcma",
    **{t: t for t in AUDIO_TYPES},
}
_VADS: dict[str, type] = {"server_vad": ServerVad, "semantic_vad": SemanticVad}


# -- primitives -------------------------------------------------------------------------------


def _str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    hint = " (quote it to make it a string)" if isinstance(value, (int, float, bool)) else ""
    raise InvalidField(f"expected a string, got {describe(value)}{hint}")


def _int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidField(f"expected an integer, got {describe(value)}")


def _float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
        raise InvalidField(f"expected a finite number, got {value!r}")
    raise InvalidField(f"expected a number, got {describe(value)}")


def _bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidField(f"expected true or false, got {describe(value)}")


def _duration(value: Any, _: Any) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise InvalidField(str(exc)) from None


def _path(value: Any, _: Any) -> Path:
    return Path(_str(value, None))


def _any(value: Any, _: Any) -> Any:
    return _plain(value)


def _plain(value: Any) -> Any:
    """Marked YAML containers to plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _enum_hook(cls: type[enum.Enum]) -> Callable[[Any, Any], Any]:
    values = [str(m.value) for m in cls]

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, str) and value in values:
            return cls(value)
        hint = did_you_mean(value, values)
        raise InvalidField(f"expected one of {', '.join(values)}; got {describe(value)}{hint}")

    return structure


# -- containers -------------------------------------------------------------------------------


def _collect(items: Any, structure: Callable[[Any], Any]) -> list[tuple[Any, Any]]:
    """Structure ``(token, value)`` pairs; report every failure under its token."""
    out, problems = [], []
    for token, value in items:
        try:
            out.append((token, structure(value)))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a located problem
            problems.extend(problems_of(exc, (token,)))
    if problems:
        raise InvalidField.many(problems)
    return out


def _tuple_hook(t: Any) -> Callable[[Any, Any], tuple]:
    (item_type, _ellipsis) = typing.get_args(t)
    item = converter.get_structure_hook(item_type)

    def structure(value: Any, _: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise InvalidField(f"expected a list, got {describe(value)}")
        return tuple(v for _, v in _collect(enumerate(value), lambda v: item(v, item_type)))

    return structure


def _dict_hook(t: Any) -> Callable[[Any, Any], dict]:
    _key_type, value_type = typing.get_args(t)
    item = converter.get_structure_hook(value_type)

    def structure(value: Any, _: Any) -> dict:
        if not isinstance(value, Mapping):
            raise InvalidField(f"expected a mapping, got {describe(value)}")
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            message = f"keys must be non-empty strings, got {describe(bad[0])}"
            raise InvalidField(message, (bad[0],), at_key=True)
        return dict(_collect(value.items(), lambda v: item(v, value_type)))

    return structure


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


# -- attrs classes ----------------------------------------------------------------------------


def _audio_format(value: Any) -> Any:
    short = isinstance(value, str)
    if short:
        value = {"type": value}
    if isinstance(value, Mapping) and "type" in value:
        kind = value["type"]
        if not isinstance(kind, str) or kind not in _FORMAT_ALIASES:
            hint = did_you_mean(kind, _FORMAT_ALIASES)
            path = () if short else ("type",)
            raise InvalidField(
                f"unknown audio format {describe(kind)}{hint} (expected audio/pcm, audio/pcmu, "
                "audio/pcma or pcm16, g711_ulaw, g711_alaw)",
                path,
            )
        value = {**value, "type": _FORMAT_ALIASES[kind]}
    return value


def _transcription(value: Any) -> Any:
    return {"model": value} if isinstance(value, str) else value


def _population(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    if "sessions" in value:
        if "phases" in value:
            message = "give either sessions or phases, not both"
            raise InvalidField(message, ("sessions",), at_key=True)
        try:
            sessions = _int(value["sessions"], None)
        except InvalidField as exc:
            raise InvalidField(exc.problems[0].message, ("sessions",)) from None
        if sessions < 1:
            raise InvalidField(f"must be >= 1, got {sessions}", ("sessions",))
        rest = {k: v for k, v in value.items() if k != "sessions"}
        return {**rest, "phases": [{"sessions": sessions}]}
    if "phases" not in value:
        raise InvalidField("a population needs phases (a list) or sessions: N")
    return value


#: short forms: applied to the raw value before the class's mapping is structured
_PREPARE: dict[type, Callable[[Any], Any]] = {
    AudioFormat: _audio_format,
    Transcription: _transcription,
    Population: _population,
    AzureTarget: lambda value: {**value, "api_version": _api_version(value["api_version"])}
    if isinstance(value, Mapping) and "api_version" in value else value,
}


#: keys a short form accepts besides the class's own (``sessions: N`` of a population)
_SHORT_KEYS: dict[type, tuple[str, ...]] = {Population: ("sessions",)}


def _unknown_keys(cls: type, value: Mapping[Any, Any]) -> None:
    """Unknown keys first: a misspelt key is the mistake to report, not the structural
    complaint its absence causes (``sesions: 20`` -> "unknown key", not "needs phases")."""
    allowed = [*yaml_keys(cls), *_SHORT_KEYS.get(cls, ())]
    extra = [k for k in value if k not in allowed]
    if extra:
        raise InvalidField.many(Problem((k,), unknown_key(k, allowed), at_key=True) for k in extra)


def _attrs_hook(cls: type) -> Callable[[Any, Any], Any]:
    renames = {
        a.name: override(rename=a.metadata["key"]) for a in attrs.fields(cls) if "key" in a.metadata
    }
    generated = make_dict_structure_fn(cls, converter, **renames)
    prepare = _PREPARE.get(cls)

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, Mapping):
            _unknown_keys(cls, value)
        if prepare is not None:
            value = prepare(value)
        if not isinstance(value, Mapping):
            raise InvalidField(f"expected a mapping, got {describe(value)}")
        return generated(value, cls)

    return structure


def _tagged(cls: type, tag: str | None, tag_value: Any, siblings: Mapping[str, Any]) -> Any:
    """Structure ``cls`` from a kind key's value plus the keys beside it, reporting errors
    at the file's own paths (``say``, ``say.wait`` or ``wait``)."""
    fields: dict[str, Any] = {}
    origin: dict[Any, tuple] = {}
    primary = primary_key(cls)
    if tag is not None:
        if isinstance(tag_value, Mapping) and primary != "event":
            for k, v in tag_value.items():
                fields[k], origin[k] = v, (tag, k)
        elif tag_value is not None or primary == "event":
            if primary is None:
                raise InvalidField(f"{tag} takes no value, got {describe(tag_value)}", (tag,))
            fields[primary], origin[primary] = tag_value, (tag,)
    for k, v in siblings.items():
        if k in fields:
            message = f"{k!r} is given twice, beside and inside {tag!r}"
            raise InvalidField(message, (k,), at_key=True)
        fields[k], origin[k] = v, (k,)
    try:
        result = converter.structure(fields, cls)
        if isinstance(result, Play):
            result = _resolve_play(result)
        return result
    except Exception as exc:  # noqa: BLE001 - remapped and re-raised
        problems = problems_of(exc)
    raise InvalidField.many(_remap(p, origin) for p in problems)


def _remap(problem: Problem, origin: Mapping[Any, tuple]) -> Problem:
    if problem.path and problem.path[0] in origin:
        return attrs.evolve(problem, path=(*origin[problem.path[0]], *problem.path[1:]))
    return problem


def _resolve_play(step: Play) -> Play:
    root = base_dir.get()
    if root is None:
        return step
    path = step.path.expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise InvalidField(f"audio file not found: {path}", ("path",))
    return attrs.evolve(step, path=path.resolve())


def _structure_step(value: Any, _: Any) -> Step:
    kinds_listed = ", ".join(STEP_KINDS)
    if isinstance(value, str):
        if value not in STEP_KINDS:
            hint = did_you_mean(value, STEP_KINDS)
            raise InvalidField(f"unknown step {value!r}{hint} (steps: {kinds_listed})")
        return _tagged(STEP_KINDS[value], value, None, {})
    if not isinstance(value, Mapping):
        message = f"expected a step (say: ..., play: ..., cancel, ...), got {describe(value)}"
        raise InvalidField(message)
    kinds = [k for k in value if k in STEP_KINDS]
    if not kinds:
        first = next(iter(value), None)
        if first is None:
            raise InvalidField(f"empty step (steps: {kinds_listed})")
        hint = did_you_mean(first, STEP_KINDS)
        message = f"unknown step {first!r}{hint} (steps: {kinds_listed})"
        raise InvalidField(message, (first,), at_key=True)
    if len(kinds) > 1:
        message = f"a step has one kind, found both {kinds[0]!r} and {kinds[1]!r}"
        raise InvalidField(message, (kinds[1],), at_key=True)
    kind = kinds[0]
    siblings = {k: v for k, v in value.items() if k != kind}
    return _tagged(STEP_KINDS[kind], kind, value[kind], siblings)


def _structure_fault(value: Any, _: Any) -> FaultEvent:
    actions = ", ".join(FAULT_ACTIONS)
    if not isinstance(value, Mapping):
        message = f"expected a fault (a mapping: {{at: 10s, action: ...}}), got {describe(value)}"
        raise InvalidField(message)
    problems: list[Problem] = []
    at = None
    if "at" not in value:
        problems.append(Problem((), "missing required key 'at'"))
    else:
        try:
            at = _duration(value["at"], None)
        except InvalidField as exc:
            problems.extend(p.prefixed(("at",)) for p in exc.problems)
    rest = {k: v for k, v in value.items() if k != "at"}
    action = None
    try:
        if "action" in rest:
            name = rest.pop("action")
            if not isinstance(name, str) or name not in FAULT_ACTIONS:
                hint = did_you_mean(name, FAULT_ACTIONS)
                message = f"unknown action {describe(name)}{hint} (actions: {actions})"
                raise InvalidField(message, ("action",))
            action = _tagged(FAULT_ACTIONS[name], None, None, rest)
        else:
            kinds = [k for k in rest if k in FAULT_ACTIONS]
            if not kinds:
                first = next(iter(rest), None)
                if first is None:
                    raise InvalidField(f"missing required key 'action' (actions: {actions})")
                message = unknown_key(first, ["at", "action", *FAULT_ACTIONS])
                raise InvalidField(message, (first,), at_key=True)
            if len(kinds) > 1:
                message = f"one action per fault, found {kinds[0]!r} and {kinds[1]!r}"
                raise InvalidField(message, (kinds[1],), at_key=True)
            kind = kinds[0]
            siblings = {k: v for k, v in rest.items() if k != kind}
            action = _tagged(FAULT_ACTIONS[kind], kind, rest[kind], siblings)
    except InvalidField as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidField.many(problems)
    return FaultEvent(at=at, action=action)


def _structure_target(value: Any, _: Any) -> Target:
    if isinstance(value, str):
        if value == "embedded":
            return EmbeddedTarget()
        if value.startswith(_URL_PREFIXES):
            return RemoteTarget(url=value)
        hint = did_you_mean(value, ["embedded"])
        raise InvalidField(f"expected 'embedded', a wss:// URL or a mapping; got {value!r}{hint}")
    if not isinstance(value, Mapping):
        raise InvalidField(f"expected 'embedded', a wss:// URL or a mapping; got {describe(value)}")
    if "azure" in value:
        others = [key for key in value if key != "azure"]
        if others:
            message = f"{others[0]!r} does not go beside azure: (put endpoint, auth, headers inside it)"
            raise InvalidField(message, (others[0],), at_key=True)
        azure = value["azure"]
        if not isinstance(azure, Mapping):
            message = f"expected a mapping (endpoint, deployment, api_version, auth), got {describe(azure)}"
            raise InvalidField(message, ("azure",))
        return _prefixed(("azure",), lambda: converter.structure(azure, AzureTarget))
    allowed = ["url", "api_key_env", "dialect", "headers", "azure", "faults", "model", "voice"]
    for key in value:
        if key not in allowed:
            raise InvalidField(unknown_key(key, allowed), (key,), at_key=True)
    if "url" in value:
        for key, what in (("faults", "faults apply to"), ("model", "model (a rules file) is for"),
                          ("voice", "voice (how the stand-in speaks) is for")):
            if key in value:
                message = f"{what} the embedded target only (it has no url)"
                raise InvalidField(message, (key,), at_key=True)
        return converter.structure(value, RemoteTarget)
    if "api_key_env" in value:
        message = "api_key_env needs a url (a remote target)"
        raise InvalidField(message, ("api_key_env",), at_key=True)
    target = converter.structure(value, EmbeddedTarget)
    root = base_dir.get()
    if target.model is not None and root is not None:
        path = target.model.expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise InvalidField(f"rules file not found: {path}", ("model",))
        target = attrs.evolve(target, model=path.resolve())
    return target


def _prefixed(prefix: tuple, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - re-raised located under ``prefix``
        raise InvalidField.many(problems_of(exc, prefix)) from None


def _structure_azure_auth(value: Any, _: Any) -> AzureAuth:
    """``auth: api_key`` / ``auth: token`` (the type, default env), or the mapping."""
    if isinstance(value, str):
        if value not in AUTH_TYPES:
            hint = did_you_mean(value, AUTH_TYPES)
            raise InvalidField(f"unknown auth type {value!r}; expected api_key or token{hint}")
        return AzureAuth(type=value)
    if not isinstance(value, Mapping):
        raise InvalidField(f"expected api_key, token or a mapping (type, env, command); got {describe(value)}")
    kind = value.get("type", "api_key")
    if kind not in AUTH_TYPES:
        hint = did_you_mean(kind, AUTH_TYPES)
        message = f"unknown auth type {describe(kind)}; expected api_key or token{hint}"
        raise InvalidField(message, ("type",))
    return _azure_auth_hook(value, AzureAuth)


def _structure_turn_detection(value: Any, _: Any) -> Any:
    if value is None:
        return None
    rest: Mapping[str, Any] = {}
    path: tuple = ()
    if isinstance(value, Mapping):
        if "type" not in value:
            raise InvalidField("missing required key 'type' (server_vad or semantic_vad)")
        name, path = value["type"], ("type",)
        rest = {k: v for k, v in value.items() if k != "type"}
    else:
        name = value
    cls = _VADS.get(name) if isinstance(name, str) else None
    if cls is None:
        hint = did_you_mean(name, _VADS)
        message = f"expected server_vad, semantic_vad or null; got {describe(name)}{hint}"
        raise InvalidField(message, path)
    return converter.structure(rest, cls)


def _structure_modalities(value: Any, t: Any) -> tuple:
    return _modalities_hook(value if not isinstance(value, str) else [value], t)


def _structure_threshold(value: Any, _: Any) -> Threshold:
    return parse_threshold(value)


converter.register_structure_hook(str, _str)
converter.register_structure_hook(int, _int)
converter.register_structure_hook(float, _float)
converter.register_structure_hook(bool, _bool)
converter.register_structure_hook(Duration, _duration)
converter.register_structure_hook(Money, lambda value, _: parse_money(value))
converter.register_structure_hook(Percent, lambda value, _: parse_percent(value))
converter.register_structure_hook(Path, _path)
converter.register_structure_hook(Any, _any)
for _enum in (Transport, Dialect, Modality):  # direct: StrEnums would otherwise match the str hook
    converter.register_structure_hook(_enum, _enum_hook(_enum))
converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook)
converter.register_structure_hook_factory(lambda t: typing.get_origin(t) is dict, _dict_hook)
converter.register_structure_hook_factory(attrs.has, _attrs_hook)
converter.register_structure_hook(Step, _structure_step)
converter.register_structure_hook(FaultEvent, _structure_fault)
converter.register_structure_hook(Target, _structure_target)
_azure_auth_hook = converter.get_structure_hook(AzureAuth)
converter.register_structure_hook(AzureAuth, _structure_azure_auth)
converter.register_structure_hook(TurnDetection, _structure_turn_detection)
converter.register_structure_hook(Threshold, _structure_threshold)
_modalities_hook = _tuple_hook(tuple[Modality, ...])
# "text" is short for [text]; registered last, so it wins over the generic tuple hook
converter.register_structure_hook_func(lambda t: t == tuple[Modality, ...], _structure_modalities)


def structure_scenario(raw: Any, *, play_base: Path | None = None) -> Scenario:
    """Structure a parsed document; raises `InvalidField` or cattrs groups (see `problems_of`).

    With ``play_base``, relative ``play`` paths are resolved against it and must exist.
    """
    if not isinstance(raw, Mapping):
        message = f"a scenario is a mapping (name:, populations:, ...), got {describe(raw)}"
        raise InvalidField(message)
    token = base_dir.set(play_base)
    try:
        return converter.structure(raw, Scenario)
    finally:
        base_dir.reset(token)
