"""The embedded target's model: ``target: {model: rules.yaml, voice: speech}`` made into the
stand-in's ``ModelConfig`` for a run (one process, or the server a multi-worker run shares)."""

from __future__ import annotations

import sys
from typing import Any

from orchestrator.scenario.model import EmbeddedTarget

__all__ = ["stand_in_model"]


def stand_in_model(target: EmbeddedTarget, seed: int | None) -> Any:
    """``target: {model: rules.yaml, voice: speech}``: the embedded server's model config
    (None: the echo model and the tone); the timing draws take ``seed`` when the rules file
    gives none. A bad rules file or voice raises ValueError saying which (the run's input
    error)."""
    if target.model is None and target.voice == "tone":
        return None
    from standin.model.rules import RulesError
    from standin.speech import SpeechError
    from standin.voice_model import model_config

    try:
        config, note = model_config(target.model, target.voice, seed=seed)
    except RulesError as exc:
        raise ValueError(f"target.model: {exc}") from None
    except (ValueError, SpeechError) as exc:
        raise ValueError(f"target.voice: {exc}") from None
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    return config
