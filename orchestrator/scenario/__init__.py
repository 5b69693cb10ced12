"""Scenario files: the model (`model`, `steps`, `faults`), the loader (`loader`) and
thresholds (`thresholds`). The runner lives elsewhere and consumes these values."""

from .durations import Duration, DurationError, format_duration, parse_duration
from .errors import InvalidField, ScenarioError
from .faults import (
    AddLatency,
    DropConnections,
    ExpireKeys,
    FaultAction,
    FaultEvent,
    KillServer,
    Malformed,
    RejectKeys,
    ServerFaults,
)
from .loader import dump_scenario_text, load_scenario, load_scenario_text
from .model import (
    AudioFormat,
    Dialect,
    EmbeddedTarget,
    Modality,
    Phase,
    Population,
    RemoteTarget,
    Scenario,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Target,
    Transcription,
    Transport,
    TurnDetection,
)
from .steps import (AnswerToolCall, BargeIn, Cancel, ExpectToolCall, Pause, Play, Repeat, Say, Send, Step,
                    WaitResponse, WaitTranscript)
from .thresholds import Threshold, ThresholdError, ThresholdResult, evaluate, parse_threshold

__all__ = [
    "AddLatency", "AnswerToolCall", "AudioFormat", "BargeIn", "Cancel", "Dialect", "DropConnections", "Duration",
    "DurationError", "EmbeddedTarget", "ExpectToolCall", "ExpireKeys", "FaultAction", "FaultEvent", "InvalidField",
    "KillServer", "Malformed", "Modality", "Pause", "Phase", "Play", "Population", "RejectKeys",
    "RemoteTarget", "Repeat", "Say", "Scenario", "ScenarioError", "SemanticVad", "Send",
    "ServerFaults", "ServerVad", "SessionConfig", "Step", "Target", "Threshold", "ThresholdError",
    "ThresholdResult", "Transcription", "Transport", "TurnDetection", "WaitResponse", "WaitTranscript",
    "dump_scenario_text", "evaluate", "format_duration", "load_scenario", "load_scenario_text",
    "parse_duration", "parse_threshold",
]
