"""The model configuration of a stand-in that answers by rules, hears words and speaks:
``rtfleet serve --model rules.yaml --voice speech`` and a scenario's
``target: {model: rules.yaml, voice: speech}``.

:func:`rules_model_config` loads the rules (`standin.model.rules`, errors with file and line)
and, when pocketsphinx is installed, a `standin.hearing.Hearing` listening for the rules'
phrases; without it the rules still answer typed words and audio stays ``"audio of N ms"``
(the returned note says what to install). :func:`model_config` adds the voice
(`standin.speech`: ``tone``, the default, or ``speech[:VOICE]``, which needs espeak-ng).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from standin.model.realtime import ModelConfig
from standin.model.rules import load_rules

__all__ = ["model_config", "rules_model_config"]


def rules_model_config(path: str | Path, base: ModelConfig | None = None, *,
                       hear: bool = True, seed: int | None = None) -> tuple[ModelConfig, str | None]:
    """``base`` (default `ModelConfig()`) answering by the rules at ``path``; and a note for
    the user when hearing is off for want of pocketsphinx (else None). ``seed``: the timing
    draws' seed when the file gives none (a scenario's seed)."""
    from standin.hearing import Hearing, HearingUnavailable

    rules = load_rules(path)
    if seed is not None and rules.timing.seed is None:
        rules = attrs.evolve(rules, timing=attrs.evolve(rules.timing, seed=seed))
    hearing, note = None, None
    if hear:
        try:
            hearing = Hearing(rules.phrases())
        except HearingUnavailable as exc:
            note = f"{exc}; until then audio is heard as 'audio of N ms'"
        except ValueError as exc:
            note = f"{path}: hearing off: {exc}"
    return attrs.evolve(base or ModelConfig(), rules=rules, hearing=hearing), note


def model_config(rules: str | Path | None = None, voice: str | None = None, *,
                 base: ModelConfig | None = None, seed: int | None = None) -> tuple[ModelConfig, str | None]:
    """The stand-in's model: by the ``rules`` file (None: the echo model), speaking with
    ``voice`` (``tone``/None, ``speech``, ``speech:VOICE``). Raises `RulesError` (the file),
    ValueError (the voice option) or `standin.speech.SpeechError` (espeak-ng missing, with
    what to install, or the voice unknown to it)."""
    from standin.speech import voice_from_option

    speaker = voice_from_option(voice)
    config, note = base or ModelConfig(), None
    if rules is not None:
        config, note = rules_model_config(rules, config, seed=seed)
    return attrs.evolve(config, voice=speaker), note
