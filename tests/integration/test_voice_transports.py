"""Voice you can check over every transport (issue 18's must-show): the spoken weather round
trip of ``test_voice_roundtrip.py`` (``scenarios/voice/weather.yaml``: speak "What's the
weather in Paris?", the stand-in hears it, its rules call get_weather(city=Paris), the script
answers the call, ``expect: said: /sunny/``) against the embedded server over WebRTC and a SIP
call (G.711 µ-law and A-law), and its GPT-Live sibling (``weather-live.yaml``: Live has no
function calls, so the rule says the city it heard and the check is ``said: /sunny in Paris/``)
over WebSocket and WebRTC. Everything starts over loopback inside ``rtfleet run``, bounded by
the scenario's ``duration_limit``.

``speak`` sends audio only, so ``city=Paris`` (or "in Paris") can only come from the stand-in
hearing the words. Spies on the real code path (wrapping, not replacing) show how the audio
travelled: over WebRTC it reached the model as media (Opus decoded, ``receive_audio``) and no
``input_audio_buffer.append`` went over the data channel; on a call it was the negotiated
G.711 law's RTP, and the recognizer heard the phrase.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None
    or importlib.util.find_spec("aiortc") is None,
    reason="needs the espeak-ng program (apt-get install espeak-ng), pocketsphinx "
           "(pip install 'rtfleet[voice]') and aiortc (pip install 'rtfleet[webrtc]')")

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "voice"
PHRASE = "What's the weather in Paris"


def _copy(tmp_path: Path, scenario: str, rules: str, edits: list[tuple[str, str]]) -> Path:
    for name in (scenario, rules):
        shutil.copy(SCENARIOS / name, tmp_path / name)
    path = tmp_path / scenario
    text = path.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture
def heard(monkeypatch) -> list[tuple[int, str | None]]:
    """Every utterance the stand-in's recognizer decoded: (rate, phrase heard or None)."""
    from standin.hearing import Hearing

    out: list[tuple[int, str | None]] = []
    real = Hearing.hear

    def hear(self, samples, rate):
        phrase = real(self, samples, rate)
        out.append((rate, phrase))
        return phrase

    monkeypatch.setattr(Hearing, "hear", hear)
    return out


@pytest.fixture
def model_input(monkeypatch) -> dict[str, int]:
    """How input audio reached the Realtime model: media bytes (``receive_audio``: WebRTC
    track, SIP RTP) and ``input_audio_buffer.append`` events."""
    from standin.model.realtime import RealtimeSession

    seen = {"media_bytes": 0, "appends": 0}
    real_media, real_append = RealtimeSession.receive_audio, RealtimeSession._on_append

    def receive_audio(self, pcm, now):
        seen["media_bytes"] += len(pcm)
        return real_media(self, pcm, now)

    def on_append(self, obj, now, out):
        seen["appends"] += 1
        return real_append(self, obj, now, out)

    monkeypatch.setattr(RealtimeSession, "receive_audio", receive_audio)
    monkeypatch.setattr(RealtimeSession, "_on_append", on_append)
    return seen


@pytest.fixture
def laws(monkeypatch) -> list[int]:
    """The G.711 payload type each of the scenario's phone calls negotiated."""
    from actors.sip_phone import SipPhone

    out: list[int] = []
    real = SipPhone._start_media

    def start_media(self, call, remote):
        real(self, call, remote)
        if call.media is not None:
            out.append(call.codec)

    monkeypatch.setattr(SipPhone, "_start_media", start_media)
    return out


def _run(scenario: Path, out: Path) -> dict:
    assert main(["run", str(scenario), "--out", str(out)]) == 0, (out / "results.json").read_text()
    return json.loads((out / "results.json").read_text())


def _round_trip_passed(results: dict) -> None:
    checks = {(c["step"], c["check"]): (c["passed"], c["failed"]) for c in results["checks"]}
    assert checks == {("steps[1]", "tool get_weather"): (1, 0),
                      ("steps[4]", "said /sunny/"): (1, 0), ("steps[4]", "within 2s"): (1, 0)}
    counters = results["summary"]["counters"]
    assert counters["checks.failed"] == 0 and counters["tool.calls"] == 1
    assert results["sessions"]["errors"] == []


SERVER_VAD = ("  turn_detection: null\n", "  turn_detection: server_vad\n")
A_LAW = ("  turn_detection: null\n",
         "  turn_detection: null\n  input_format: g711_alaw\n  output_format: g711_alaw\n")


@pytest.mark.parametrize("edits", [[], [SERVER_VAD]], ids=["manual-commit", "server-vad"])
def test_over_webrtc_the_spoken_audio_goes_as_media_and_is_heard(tmp_path, heard, model_input, edits):
    scenario = _copy(tmp_path, "weather.yaml", "weather-rules.yaml",
                     [("transport: websocket", "transport: webrtc"), *edits])
    _round_trip_passed(_run(scenario, tmp_path / "out"))
    # the utterance (~2.3 s with its silences) came up the media track, not the data channel
    assert model_input["appends"] == 0
    assert model_input["media_bytes"] >= 2 * 24_000 * 2
    assert (24_000, PHRASE) in heard


@pytest.mark.parametrize("law, edits", [
    (0, []),  # the scenario's session is audio/pcm: the phone offers PCMU first
    (8, [A_LAW]),  # audio/pcma: the phone offers PCMA first; the model hears at 8 kHz
    (0, [SERVER_VAD]),  # the server's VAD ends the utterance (the line goes on with silence)
], ids=["pcmu", "pcma", "pcmu-server-vad"])
def test_over_a_sip_call_the_spoken_g711_is_heard_and_the_tool_call_goes_over_the_sideband(
        tmp_path, heard, model_input, laws, law, edits):
    scenario = _copy(tmp_path, "weather.yaml", "weather-rules.yaml",
                     [("transport: websocket", "transport: sip"), *edits])
    results = _run(scenario, tmp_path / "out")
    _round_trip_passed(results)
    assert laws == [law]
    assert model_input["appends"] == 0  # the caller's audio is RTP, not sideband appends
    assert model_input["media_bytes"] >= 2 * 24_000 * 2
    # heard as the session keeps the call's audio: 8 kHz G.711 for an A-law session, else 24 kHz
    assert (8_000 if law == 8 else 24_000, PHRASE) in heard


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_on_gpt_live_the_model_hears_the_words_and_says_the_city(tmp_path, heard, transport):
    scenario = _copy(tmp_path, "weather-live.yaml", "weather-live-rules.yaml",
                     [("transport: websocket", f"transport: {transport}")])
    results = _run(scenario, tmp_path / "out")
    checks = {(c["step"], c["check"]): (c["passed"], c["failed"]) for c in results["checks"]}
    assert checks == {("steps[1]", "said /sunny in Paris/"): (1, 0), ("steps[1]", "within 2s"): (1, 0)}
    assert results["summary"]["counters"]["transcripts.completed"] == 1  # Live's input transcript
    assert results["sessions"]["errors"] == []
    assert (24_000, PHRASE) in heard


def test_on_gpt_live_a_wrong_expectation_fails_with_the_words_said(tmp_path, heard):
    scenario = _copy(tmp_path, "weather-live.yaml", "weather-live-rules.yaml",
                     [("said: /sunny in Paris/", "said: /sunny in London/")])
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out)]) == 1
    failed = [c for c in json.loads((out / "results.json").read_text())["checks"] if c["failed"]]
    assert [(c["check"], c["failures"]) for c in failed] == [
        ("said /sunny in London/", ["said 'It is sunny in Paris today.'"])]


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_over_websocket_a_g711_session_is_sent_its_law_and_hears_the_words(tmp_path, heard, model_input, fmt):
    """A WebSocket session whose input is G.711 gets ``speak``'s words in that law at 8 kHz
    (160 bytes a 20 ms append), not 24 kHz PCM16 the server would read as six times longer
    noise."""
    scenario = _copy(tmp_path, "weather.yaml", "weather-rules.yaml", [(
        "  turn_detection: null\n",
        f"  turn_detection: null\n  input_format: {fmt}\n  output_format: {fmt}\n")])
    _round_trip_passed(_run(scenario, tmp_path / "out"))
    assert model_input["media_bytes"] == 0  # appended, not media
    # 24 kHz PCM16 read as G.711 would be noise: only the law's own bytes can be heard as words
    assert (8_000, PHRASE) in heard
