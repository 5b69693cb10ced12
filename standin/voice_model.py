"""The model configuration of a stand-in that answers by rules and hears words:
``rtfleet serve --model rules.yaml`` and a scenario's ``target: {model: rules.yaml}``.

:func:`rules_model_config` loads the rules (`standin.model.rules`, errors with file and line)
and, when pocketsphinx is installed, a `standin.hearing.Hearing` listening for the rules'
phrases; without it the rules still answer typed words and audio stays ``"audio of N ms"``
(the returned note says what to install).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from standin.model.realtime import ModelConfig
from standin.model.rules import load_rules

__all__ = ["rules_model_config"]


def rules_model_config(path: str | Path, base: ModelConfig | None = None, *,
                       hear: bool = True) -> tuple[ModelConfig, str | None]:
    """``base`` (default `ModelConfig()`) answering by the rules at ``path``; and a note for
    the user when hearing is off for want of pocketsphinx (else None)."""
    from standin.hearing import Hearing, HearingUnavailable

    rules = load_rules(path)
    hearing, note = None, None
    if hear:
        try:
            hearing = Hearing(rules.phrases())
        except HearingUnavailable as exc:
            note = f"{exc}; until then audio is heard as 'audio of N ms'"
        except ValueError as exc:
            note = f"{path}: hearing off: {exc}"
    return attrs.evolve(base or ModelConfig(), rules=rules, hearing=hearing), note
