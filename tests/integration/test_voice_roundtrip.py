"""Voice you can check, offline and over loopback (issue 18's must-show): a scenario speaks
"What's the weather in Paris?" (espeak-ng), the embedded stand-in hears it (pocketsphinx against
its rules' phrases), its rules call get_weather(city=Paris), the script answers the call, the
stand-in speaks the answer (``voice: speech``: espeak-ng's speech of exactly the words it
says) and ``expect: said: /sunny/`` holds; a wrong expectation fails the run with the words
actually said in results.json and the report.

The scenario's ``speak`` sends audio only (no text), so the call's ``city=Paris`` can only
come from the stand-in hearing the words.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from actors.speech import synthesize
from orchestrator.cli import main
from standin.speech import SpeechVoice, to_format

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
    reason="needs the espeak-ng program (apt-get install espeak-ng) and pocketsphinx "
           "(pip install 'rtfleet[voice]')")

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "voice"


def _copy(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    for name in ("weather.yaml", "weather-rules.yaml"):
        shutil.copy(SCENARIOS / name, tmp_path / name)
    scenario = tmp_path / "weather.yaml"
    if replace is not None:
        text = scenario.read_text()
        assert replace[0] in text
        scenario.write_text(text.replace(*replace))
    return scenario


@pytest.fixture
def spoken(monkeypatch):
    """What the stand-in's voice spoke: text -> (audio, format, espeak-ng rate, espeak-ng voice)."""
    said: dict = {}
    prepare = SpeechVoice.prepare

    def recorded(self, text, fmt, wpm=None, session_voice=None):
        get = prepare(self, text, fmt, wpm, session_voice)

        def audio():
            said[text] = (get(), fmt, self.rate_for(wpm), self.espeak_voice(session_voice))
            return said[text][0]
        return audio
    monkeypatch.setattr(SpeechVoice, "prepare", recorded)
    return said


def test_a_spoken_question_is_heard_calls_the_tool_and_the_answer_checks_pass(tmp_path, spoken):
    out = tmp_path / "out"
    assert main(["run", str(_copy(tmp_path)), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    checks = {(c["step"], c["check"]): (c["passed"], c["failed"]) for c in results["checks"]}
    assert checks == {("steps[1]", "tool get_weather"): (1, 0),
                      ("steps[4]", "said /sunny/"): (1, 0), ("steps[4]", "within 2s"): (1, 0)}
    counters = results["summary"]["counters"]
    assert counters["checks.failed"] == 0 and counters["checks.passed"] == 3
    assert counters["tool.calls"] == 1 and results["sessions"]["errors"] == []
    # the stand-in spoke its answer: espeak-ng's speech of exactly those words, at a speaking rate
    said = "It is sunny, 21 degrees in Paris today."
    assert list(spoken) == [said]
    audio, fmt, rate, espeak = spoken[said]
    assert espeak == "en-us"  # the session's voice is the default, alloy
    assert audio == to_format(synthesize(said, voice=espeak, rate=rate, lead_ms=0, trail_ms=0), fmt)
    samples = fmt.decode(audio)
    voiced = np.flatnonzero(np.abs(samples) > 0.01)
    seconds = (voiced[-1] - voiced[0]) / fmt.rate
    assert 8 / 4.0 * 0.7 < seconds < 8 / 1.5 * 1.3  # 8 words ("twenty-one"), 1.5-4 words a second


def test_a_wrong_expectation_fails_the_run_and_the_report_shows_what_was_said(tmp_path):
    out = tmp_path / "out"
    scenario = _copy(tmp_path, ("said: /sunny/", "said: /rain/"))
    scenario.write_text(scenario.read_text().replace("  - checks.failed == 0\n", ""))  # the implicit one
    assert main(["run", str(scenario), "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())
    failed = [c for c in results["checks"] if c["failed"]]
    said = "It is sunny, 21 degrees in Paris today."
    assert [(c["step"], c["check"]) for c in failed] == [("steps[4]", "said /rain/")]
    assert failed[0]["failures"] == [f"said {said!r}"]
    assert [t["expression"] for t in results["thresholds"] if not t["passed"]] == ["checks.failed == 0"]
    report = (out / "report.html").read_text()
    assert "Answer checks (1 failed)" in report and "said /rain/" in report
    assert "It is sunny, 21 degrees in Paris today." in report.replace("&#x27;", "'")
