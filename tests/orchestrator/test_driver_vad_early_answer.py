"""A server VAD can answer audio before its last frame is sent: the audio's trailing silence
is longer than the VAD waits (or the process's audio clock runs late). ``wait_response``
after such a ``play`` counts the answer the VAD started, not only answers after the step."""

import json
import wave
from pathlib import Path

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name: early
session:
  output_modalities: [text]
  turn_detection: {type: server_vad, silence_duration_ms: 200, prefix_padding_ms: 100}
populations:
  - {name: p, script: s, sessions: 2}
scripts:
  s:
    - repeat: 2
      steps:
        - play: tail.wav          # 1.2 s of hello, then 1.5 s of silence
        - wait_response: 5s       # answered ~1.3 s before the play step returned
thresholds:
  - errors == 0
  - turns.completed == 4
"""


def write_tail(path, silence_s: float) -> None:
    with wave.open(str(ROOT / "scenarios" / "audio" / "hello.wav")) as hello:
        rate, frames = hello.getframerate(), hello.readframes(hello.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames + bytes(2 * int(rate * silence_s)))


def test_wait_response_counts_an_answer_that_came_before_the_play_ended(tmp_path):
    write_tail(tmp_path / "tail.wav", 1.5)
    path = tmp_path / "early.yaml"
    path.write_text(SCENARIO)
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0, (results["thresholds"], results["sessions"].get("errors"))
    assert results["sessions"]["completed"] == 2
    assert results["summary"]["counters"].get("errors", 0) == 0
