"""A stand-in that speaks (issue 18 item 5): with ``voice: speech`` each answer is espeak-ng's
speech of exactly its transcript, in the session's output format (PCM16 24 kHz or G.711),
paced a chunk at a time like the tone, for the Realtime and the GPT-Live models; the speech is
recognized back (pocketsphinx against a grammar holding the answer), lasts what its words take
at the drawn rate, and is cached per text/voice/rate/format within a byte bound."""

from __future__ import annotations

import base64
import importlib.util
import shutil

import numpy as np
import pytest

from actors.speech import synthesize
from standin.model.audio import PCM_24K, AudioFormat
from standin.model.live import LiveSession
from standin.model.events import IdFactory
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.model.rules import parse_rules
from standin.model.config import VOICES
from standin.speech import SESSION_VOICES, SpeechUnavailable, SpeechVoice, to_format, voice_from_option

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="needs the espeak-ng program (apt-get install espeak-ng)")
needs_hearing = pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                                   reason="decoding the answer needs pocketsphinx (pip install 'rtfleet[voice]')")

RULES = """\
rules:
  - when: /weather in (?P<city>[a-z]+)/
    call: {name: get_weather, args: {city: $city}}
    then: "It is $output in $city today."
  - keywords: [book, table]
    say: "Your table is booked."
timing:
  first_audio: 300ms
  words_per_second: 2.5        # espeak-ng at 150 words a minute
  tool_decision: 400ms
"""
ANSWER = "Your table is booked."
#: what the decoder may hear: the answer among look-alikes
PHRASES = ["your table is booked", "your table is ready", "sorry i did not catch that",
           "it is sunny in paris today", "it is raining in london"]
G711 = [AudioFormat("audio/pcmu"), AudioFormat("audio/pcma")]


def _config(voice: SpeechVoice) -> ModelConfig:
    return ModelConfig(rules=parse_rules(RULES, "rules.yaml"), voice=voice)


def _run(session, until: float = 30.0, step: float = 0.05) -> list[tuple[float, dict]]:
    """Every event the session's timer gives up to ``until``, with the time it was due."""
    out, now = [], 0.0
    while (due := session.get_timer()) is not None and due <= until:
        now = max(now, due)
        out += [(round(now, 3), e) for e in session.handle_timer(now)]
    return out


def _voiced_seconds(samples: np.ndarray, rate: int) -> float:
    voiced = np.flatnonzero(np.abs(samples) > 0.01)
    return (voiced[-1] - voiced[0]) / rate


@pytest.fixture(scope="module")
def voice():
    voice = SpeechVoice()
    yield voice
    voice.close()


@pytest.mark.parametrize("fmt", [PCM_24K, *G711], ids=lambda f: f.type)
def test_a_realtime_answer_is_espeak_speech_of_its_transcript_paced_as_the_tone(voice, fmt):
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=_config(voice))
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
        "output": {"format": {"type": fmt.type} if fmt != PCM_24K else {"type": "audio/pcm", "rate": 24000}},
        "input": {"turn_detection": None}}}}, 0.0)
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "book a table"}]}}, 0.0)
    session.receive_event({"type": "response.create"}, 0.0)
    events = _run(session)
    words = [(t, e["delta"]) for t, e in events if e["type"] == "response.output_audio_transcript.delta"]
    chunks = [(t, base64.b64decode(e["delta"])) for t, e in events if e["type"] == "response.output_audio.delta"]
    done = next(e for _, e in events if e["type"] == "response.done")
    # the transcript is the answer, word for word
    assert "".join(w for _, w in words) == ANSWER
    assert done["response"]["output"][0]["content"][0]["transcript"] == ANSWER
    # the audio is espeak-ng's speech of it at the drawn rate (2.5 words a second = 150 wpm)
    audio = b"".join(c for _, c in chunks)
    assert audio == to_format(synthesize(ANSWER, rate=150, lead_ms=0, trail_ms=0), fmt)
    # paced as the tone: the first chunk after the time to first audio, then one every 100 ms
    assert [t for t, _ in chunks] == pytest.approx([0.3 + 0.1 * k for k in range(len(chunks))], abs=1e-6)
    assert all(len(c) == round(fmt.bytes_per_ms * 100) for _, c in chunks[:-1])
    assert words[0][0] == 0.3 and [t for t, _ in words] == sorted(t for t, _ in words)
    assert words[-1][0] < chunks[-1][0]  # the last word starts before the audio ends
    # it lasts what four words take at 2.5 words a second (espeak-ng's own rate, +-35 %)
    samples = fmt.decode(audio)
    assert _voiced_seconds(samples, fmt.rate) == pytest.approx(4 / 2.5, rel=0.35)
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] == \
        round(fmt.duration_ms(len(audio))) // 50


@needs_hearing
@pytest.mark.parametrize("fmt", [PCM_24K, G711[0]], ids=lambda f: f.type)
def test_the_spoken_answer_is_recognized_back(voice, fmt):
    from standin.hearing import Hearing

    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=_config(voice))
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
        "output": {"format": {"type": fmt.type, **({"rate": 24000} if fmt == PCM_24K else {})}}}}}, 0.0)
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "book a table"}]}}, 0.0)
    session.receive_event({"type": "response.create"}, 0.0)
    audio = b"".join(base64.b64decode(e["delta"]) for _, e in _run(session)
                     if e["type"] == "response.output_audio.delta")
    assert Hearing(PHRASES).hear(fmt.decode(audio), fmt.rate) == "your table is booked"


def test_a_live_answer_and_a_rules_delegation_are_spoken(voice):
    session = LiveSession(_config(voice), IdFactory(), 0.0)
    session.receive_text('{"type": "session.start", "session": {"model": "gpt-live-1"}}', 0.0)
    out = session.receive_text('{"type": "session.commentary.append", "content": "weather in Paris?"}', 0.0)
    assert [e["type"] for e in out] == ["session.commentary.appended"]  # the delegation waits
    later = _run(session)
    delegated = [(t, e) for t, e in later if e["type"] == "session.delegation.created"]
    assert [t for t, _ in delegated] == [0.4]  # the rules' tool-decision delay
    assert delegated[0][1]["offset_ms"] == 400
    dlg = delegated[0][1]["delegation"]["id"]
    session.receive_text('{"type": "session.commentary.append", "content": "sunny", "delegation_id": "%s"}'
                         % dlg, 1.0)
    events = _run(session)
    said = "It is sunny in Paris today."
    assert "".join(e["delta"] for _, e in events if e["type"] == "session.output_transcript.delta") == said
    chunks = [(t, base64.b64decode(e["delta"])) for t, e in events if e["type"] == "session.output_audio.delta"]
    # Live's default voice, marin, speaks as its espeak-ng voice
    assert b"".join(c for _, c in chunks) == synthesize(said, voice=SESSION_VOICES["marin"], rate=150,
                                                         lead_ms=0, trail_ms=0)
    assert [t for t, _ in chunks] == pytest.approx([1.3 + 0.1 * k for k in range(len(chunks))], abs=1e-6)
    assert session.history[-1] == {"role": "assistant", "text": said}


def test_each_of_the_services_voices_speaks_as_its_own_espeak_ng_voice():
    assert set(SESSION_VOICES) == set(VOICES)
    spoken = {name: synthesize("hello there", voice=espeak, lead_ms=0, trail_ms=0, cache=False)
              for name, espeak in SESSION_VOICES.items()}
    assert len(set(spoken.values())) == len(VOICES)  # ten voices, ten different speeches
    assert SESSION_VOICES["alloy"] == "en-us"  # the Realtime default keeps espeak-ng's default


@pytest.mark.parametrize("option, session_voice, espeak", [
    ("speech", "coral", SESSION_VOICES["coral"]),
    ("speech", "cedar", SESSION_VOICES["cedar"]),
    ("speech", "a-custom-voice", "en-us"),        # not one of the service's: espeak-ng's default
    ("speech:en-gb-x-rp", "coral", "en-gb-x-rp"),  # a voice named in the option speaks for all
])
def test_a_realtime_session_is_answered_in_the_espeak_voice_of_its_own_voice(option, session_voice, espeak):
    voice = voice_from_option(option)
    try:
        session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=_config(voice))
        session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
            "output": {"voice": session_voice}, "input": {"turn_detection": None}}}}, 0.0)
        session.receive_event({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "book a table"}]}}, 0.0)
        session.receive_event({"type": "response.create"}, 0.0)
        events = _run(session)
    finally:
        voice.close()
    audio = b"".join(base64.b64decode(e["delta"]) for _, e in events if e["type"] == "response.output_audio.delta")
    assert audio == synthesize(ANSWER, voice=espeak, rate=150, lead_ms=0, trail_ms=0)


def test_the_tone_stays_the_default_and_speech_is_cached_within_a_byte_bound():
    assert voice_from_option(None) is None and voice_from_option("tone") is None
    voice = SpeechVoice(cache_bytes=200_000)
    try:
        first = voice.prepare("one two three", PCM_24K, 150)
        again = voice.prepare("one two three", PCM_24K, 153)  # rounds to the same 150 wpm
        assert first() == again() and voice.synthesized == 1 and voice.hits == 1
        assert voice.prepare("one two three", G711[0], 150)() != first()  # per format
        assert voice.synthesized == 2
        size = voice.cached_bytes
        for text in ("four five six seven", "eight nine ten eleven twelve", "thirteen fourteen"):
            voice.prepare(text, PCM_24K, 150)()
        assert voice.cached_bytes <= 200_000 < size + 3 * 48_000  # older answers made room
        voice.prepare("one two three", PCM_24K, 150)()
        assert voice.synthesized == 6  # evicted: synthesized again
    finally:
        voice.close()


def test_bad_voices_and_a_missing_espeak_say_what_to_do(monkeypatch):
    for bad in ("loud", "speech:", "tone:en"):
        with pytest.raises(ValueError, match="expected tone, speech or speech:VOICE"):
            voice_from_option(bad)
    with pytest.raises(Exception, match="voice does not exist"):
        voice_from_option("speech:nosuchvoice")
    assert voice_from_option("speech:en-gb").voice == "en-gb"
    monkeypatch.setattr("actors.speech.shutil.which", lambda name: None)
    with pytest.raises(SpeechUnavailable) as caught:
        voice_from_option("speech")
    assert "apt-get install espeak-ng" in str(caught.value) and "rtfleet[voice]" in str(caught.value)


def test_the_echo_model_speaks_too_and_truncation_keeps_the_words_played(voice):
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=ModelConfig(voice=voice))
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "good morning to you"}]}}, 0.0)
    events = [(0.0, e) for e in session.receive_event({"type": "response.create"}, 0.0)] + _run(session)
    said = "You said: good morning to you"
    audio = b"".join(base64.b64decode(e["delta"]) for _, e in events if e["type"] == "response.output_audio.delta")
    assert audio == synthesize(said, lead_ms=0, trail_ms=0)  # the voice's own rate (160 wpm)
    # no rules: no timing, the first audio at once, a chunk every 100 ms
    starts = [t for t, e in events if e["type"] == "response.output_audio.delta"]
    assert starts[0] == 0.0 and starts[1] == pytest.approx(0.1)
    # truncating at 700 ms keeps the words whose chunk was wholly played
    item = next(e for _, e in events if e["type"] == "response.done")["response"]["output"][0]
    deltas, chunk = [], -1
    for _, e in events:
        if e["type"] == "response.output_audio.delta":
            chunk += 1
        elif e["type"] == "response.output_audio_transcript.delta":
            deltas.append((chunk + 1, e["delta"]))
    kept = "".join(w for k, w in deltas if k < 7).rstrip()
    assert kept and kept != said
    out = session.receive_event({"type": "conversation.item.truncate", "item_id": item["id"],
                                 "content_index": 0, "audio_end_ms": 700}, 10.0)
    assert [e["type"] for e in out] == ["conversation.item.truncated"]
    assert session.conversation.get(item["id"])["content"][0]["transcript"] == kept


class _GatedVoice(SpeechVoice):
    """The real voice, whose synthesis starts only once ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Event()

    def _synthesize(self, key, fmt):
        self.gate.wait(30)
        return super()._synthesize(key, fmt)


def test_a_live_answer_is_planned_without_waiting_for_its_speech_and_answers_queue_in_order():
    voice = _GatedVoice()
    try:
        session = LiveSession(_config(voice), IdFactory(), 0.0)
        session.receive_text('{"type": "session.start", "session": {"model": "gpt-live-1"}}', 0.0)
        for text in ("book a table", "a table, book it"):
            # planning returns while the speech is not synthesized (it would wait on the gate)
            out = session.receive_text('{"type": "session.commentary.append", "content": "%s"}' % text, 0.0)
            assert [e["type"] for e in out] == ["session.commentary.appended"]
        assert not voice.gate.is_set() and voice.synthesized == 0
        voice.gate.set()  # the speech is taken when the first audio is due (0.3 s)
        events = _run(session)
    finally:
        voice.close()
    chunks = [(t, base64.b64decode(e["delta"])) for t, e in events if e["type"] == "session.output_audio.delta"]
    speech = synthesize(ANSWER, voice=SESSION_VOICES["marin"], rate=150, lead_ms=0, trail_ms=0)
    assert b"".join(c for _, c in chunks) == speech + speech  # both spoken, neither the tone
    # from 0.3 s each chunk follows the one before by its length: the second answer starts
    # where the first ends (no gap, no overlap)
    ends = [0.3]
    for _, chunk in chunks[:-1]:
        ends.append(ends[-1] + len(chunk) / 48_000)
    assert [t for t, _ in chunks] == pytest.approx(ends, abs=1e-3)  # durations in whole ms
    said = "".join(e["delta"] for _, e in events if e["type"] == "session.output_transcript.delta")
    assert said == ANSWER + ANSWER
