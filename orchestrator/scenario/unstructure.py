"""Model -> plain data (dicts, lists, str, float, int, bool, None): YAML, JSON and msgpack
ready, in the canonical long forms, and structuring back to an equal model."""

import enum
from pathlib import Path
from typing import Any

import attrs

from .checks import primary_key
from .faults import FaultEvent
from .model import AzureTarget, EmbeddedTarget, Scenario, SemanticVad, ServerVad
from .steps import STEP_KINDS
from .thresholds import Threshold

__all__ = ["unstructure_value", "unstructure_scenario"]


def _fields_of(obj: Any, effective: bool = False) -> dict[str, Any]:
    out = {}
    for a in attrs.fields(type(obj)):
        value = getattr(obj, a.name)
        if not effective and _is_default(a, value):
            continue
        out[a.metadata.get("key", a.name)] = unstructure_value(value, effective=effective)
    return out


def _is_default(a: attrs.Attribute, value: Any) -> bool:
    default = a.default
    if default is attrs.NOTHING:
        return False
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return not default.takes_self and value == default.factory()
    return value == default


def _step(step: Any, effective: bool) -> dict[str, Any]:
    """``{kind: main value, other fields...}``, e.g. ``{"say": "hi", "wait": False}``."""
    fields = _fields_of(step, effective)
    primary = primary_key(type(step))
    head = fields.pop(primary) if primary in fields else None
    if isinstance(head, dict) and primary != "event":  # a mapping there would read as fields
        head = {primary: head}
    return {type(step).kind: head, **fields}


def unstructure_value(obj: Any, *, effective: bool = False) -> Any:
    """Plain data for any model value (tuples become lists, enums their values). With
    ``effective``, defaulted fields are written out too (what the run used, for reports)."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Threshold):
        return obj.source_text
    if isinstance(obj, (list, tuple)):
        return [unstructure_value(v, effective=effective) for v in obj]
    if isinstance(obj, dict):
        return {k: unstructure_value(v, effective=effective) for k, v in obj.items()}
    cls = type(obj)
    if cls in STEP_KINDS.values():
        return _step(obj, effective)
    if isinstance(obj, FaultEvent):
        action = _fields_of(obj.action, effective)
        return {"at": obj.at, "action": type(obj.action).action, **action}
    if isinstance(obj, (ServerVad, SemanticVad)):
        return {"type": obj.type, **_fields_of(obj, effective)}
    if isinstance(obj, EmbeddedTarget):
        return _fields_of(obj, effective) or "embedded"
    if isinstance(obj, AzureTarget):
        return {"azure": _fields_of(obj, effective)}
    if attrs.has(cls):
        return _fields_of(obj, effective)
    return obj


def unstructure_scenario(scenario: Scenario, *, effective: bool = False) -> dict[str, Any]:
    """The scenario as plain data that `structure_scenario` (and the loader) read back equal;
    with ``effective``, every field, defaults filled in (what ``results.json`` records)."""
    return {"name": scenario.name, **_fields_of(scenario, effective)}
