"""The speaking stand-in over each transport, through the CLI and loopback: a scenario with
``target: {model: rules, voice: speech}`` asks by text, the stand-in answers by its rules with
espeak-ng speech (WebSocket: audio deltas; WebRTC: the media track; SIP: G.711 RTP to the
phone), the answer's words check out (``expect: said``) and its first audio reaches the caller
after the rules' time to first audio."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from standin.speech import SpeechVoice

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="needs the espeak-ng program (apt-get install espeak-ng)")

RULES = """\
rules:
  - keywords: [book, table]
    say: "Your table is booked for two."
default: "Sorry, I did not catch that."
timing:
  first_audio: 400ms
  words_per_second: 2.5
"""

SCENARIO = """\
name: speaking-{transport}
seed: 5
duration_limit: 1m
target: {{model: rules.yaml, voice: speech}}
session:
  output_modalities: [audio]
  turn_detection: {turn_detection}
populations:
  - {{name: callers, transport: {transport}, script: ask, sessions: 1}}
scripts:
  ask:
    - say: "Please book a table"
      timeout: 20s
    - expect: {{said: /booked for two/, within: 2s}}
thresholds:
  - errors == 0
"""

TRANSPORTS = [
    pytest.param("websocket", "null", id="websocket"),
    pytest.param("webrtc", "null", id="webrtc", marks=pytest.mark.skipif(
        importlib.util.find_spec("aiortc") is None, reason="needs aiortc (pip install 'rtfleet[webrtc]')")),
    pytest.param("sip", "{type: server_vad}", id="sip"),
]


@pytest.mark.parametrize("transport, turn_detection", TRANSPORTS)
def test_the_stand_in_speaks_its_answer_over(transport, turn_detection, tmp_path, monkeypatch):
    spoken: list[tuple[str, str, int]] = []
    prepare = SpeechVoice.prepare

    def recorded(self, text, fmt, wpm=None, session_voice=None):
        get = prepare(self, text, fmt, wpm, session_voice)

        def audio():
            data = get()
            spoken.append((text, fmt.type, len(data or b"")))
            return data
        return audio
    monkeypatch.setattr(SpeechVoice, "prepare", recorded)
    (tmp_path / "rules.yaml").write_text(RULES)
    scenario = tmp_path / "speaking.yaml"
    scenario.write_text(SCENARIO.format(transport=transport, turn_detection=turn_detection))
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--quiet", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    checks = {c["check"]: (c["passed"], c["failed"]) for c in results["checks"]}
    assert checks == {"said /booked for two/": (1, 0), "within 2s": (1, 0)}
    # the caller got the answer's audio (the track / RTP playout on calls) after the 400 ms
    first_audio = results["summary"]["histograms"]["turn.time_to_first_audio"]
    assert first_audio["count"] == 1 and first_audio["min"] >= 0.4
    # ... and it was speech: espeak-ng's of exactly those words, ~2 s of 24 kHz PCM16
    [(text, fmt, size)] = spoken
    assert (text, fmt) == ("Your table is booked for two.", "audio/pcm")
    assert 48_000 * 1.2 < size < 48_000 * 3.5
