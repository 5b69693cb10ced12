"""The server's cheap path for ``input_audio_buffer.append`` (standin/model/append.py, the VAD's
``feed_pcm16``) decides exactly as the full path: the same JSON value, the same bytes, the same
speech transitions, the same events and records."""

from __future__ import annotations

import base64
import binascii
import json
import random
import string

import numpy as np
import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standin.model.append import bare_append, strict_b64decode
from standin.model.audio import AudioFormat
from standin.model.events import IdFactory
from standin.model.memo import Memo
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.model.vad import EnergyVad, SpeechStarted, SpeechStopped, VadParams
from standin.testing import pcm16_silence, pcm16_tone

PCM = AudioFormat("audio/pcm")
APPEND = "input_audio_buffer.append"
B64 = string.ascii_letters + string.digits + "+/"


def compact(audio: str) -> str:
    return json.dumps({"type": APPEND, "audio": audio}, separators=(",", ":"))


def spaced(audio: str) -> str:
    return json.dumps({"type": APPEND, "audio": audio})


def rtfleet(audio: str, event_id: str = "evt_c_1") -> str:
    """As the rtfleet client writes an append (compact, an event id after the audio)."""
    from actors.proto.realtime.events import encode_client_event

    return encode_client_event({"type": APPEND, "audio": audio, "event_id": event_id})


def spaced_id(audio: str, event_id: str = "e-1") -> str:
    """As the openai SDK writes an append given an event id."""
    return json.dumps({"type": APPEND, "audio": audio, "event_id": event_id})


# -- recognising a bare append -----------------------------------------------------------------


@pytest.mark.parametrize("write", [compact, spaced])
def test_a_bare_append_is_read_without_parsing_json(write):
    pcm = pcm16_tone(20)
    audio = base64.b64encode(pcm).decode()
    assert bare_append(write(audio)) == (audio, pcm, None)
    assert bare_append(write("")) == ("", b"", None)


@pytest.mark.parametrize("write", [rtfleet, spaced_id])
def test_an_append_with_an_event_id_after_its_audio_is_read_too(write):
    pcm = pcm16_tone(20)
    audio = base64.b64encode(pcm).decode()
    assert write(audio).endswith('"}') and "event_id" in write(audio)
    assert bare_append(write(audio, "evt_c_42")) == (audio, pcm, "evt_c_42")
    assert bare_append(write(audio, "")) == (audio, pcm, "")
    # the SDK's json.dumps escapes non-ASCII (\\u00fc): that goes to the full parse
    assert bare_append(write(audio, "ünïcode id")) == ((audio, pcm, "ünïcode id") if write is rtfleet else None)


def test_digital_silence_is_read_as_zero_bytes_every_time():
    """Silence's bytes are kept per length after its first decode: the same bytes each time,
    and audio that only looks like silence (padding, another length) is decoded as before."""
    for n in (0, 1, 2, 3, 960, 961, 962, 960, 960):
        audio = base64.b64encode(bytes(n)).decode()
        assert bare_append(compact(audio)) == (audio, bytes(n), None)
        assert bare_append(rtfleet(audio)) == (audio, bytes(n), "evt_c_1")
    assert bare_append(compact("A" * 1279)) is None  # not strict base64: the full path's error
    assert bare_append(compact("A" * 1276 + "AAA=")) == ("A" * 1276 + "AAA=", bytes(959), None)
    assert bare_append(compact("A" * 1279 + "B")) == ("A" * 1279 + "B", bytes(959) + b"\x01", None)


@pytest.mark.parametrize("text", [
    '{"type":"input_audio_buffer.append","audio":"AAAA","item_id":"e1"}',  # another key
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e1","x":"y"}',
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e\\"1"}',  # an escape
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e\\u0041"}',
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e\n1"}',  # a raw control
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e\t1"}',
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":1}',  # not a string
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e1"',  # truncated
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e1"} ',
    '{"type":"input_audio_buffer.append","audio":"AAAA", "event_id":"e1"}',  # mixed separators
    '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e1","audio":"AAAA"}',
    '{"type":"input_audio_buffer.append","audio":"AAA","event_id":"e1"}',  # bad padding
    '{"audio":"AAAA","type":"input_audio_buffer.append"}',  # another order
    '{"type":"input_audio_buffer.append","audio":"AAAA"} ',  # trailing whitespace
    '{"type":"input_audio_buffer.append","audio":"AAAA"}}',
    '{"type":"input_audio_buffer.append","audio":"AAAA',  # truncated
    '{"type":"input_audio_buffer.append","audio":"AA\\/A"}',  # an escape (valid JSON)
    '{"type":"input_audio_buffer.append","audio":"AAA"}',  # bad padding
    '{"type":"input_audio_buffer.append","audio":"AA=A"}',
    '{"type":"input_audio_buffer.append","audio":"=AAA"}',
    '{"type":"input_audio_buffer.append","audio":"AA==AA=="}',
    '{"type":"input_audio_buffer.append","audio":"AA\u00e9A"}',  # not ASCII
    '{"type":"input_audio_buffer.append","audio":"AA A"}',
    '{"type":"input_audio_buffer.append","audio":"AAAA","type":"session.update"}',
])
def test_anything_else_goes_through_the_full_parse(text):
    assert bare_append(text) is None


_PIECES = st.sampled_from(['{"type":"input_audio_buffer.append","audio":"',
                           '{"type": "input_audio_buffer.append", "audio": "',
                           '{"type":"input_audio_buffer.append", "audio":"', '"}', '" }', '"',
                           '\\"', '\\', "=", "==", "}", " ", '","event_id":"x', '", "event_id": "',
                           '","event_id":', '"event_id"', "\u00e9", "\n", "\t", "\x7f", "A" * 8])


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(alphabet=B64, max_size=12)), max_size=8))
def test_whatever_it_accepts_the_full_path_reads_the_same(pieces):
    text = "".join(pieces)
    found = bare_append(text)
    if found is None:
        return
    audio, data, event_id = found
    expected = {"type": APPEND, "audio": audio} | ({} if event_id is None else {"event_id": event_id})
    assert json.loads(text) == expected
    assert list(json.loads(text)) == list(expected)  # no key twice
    assert base64.b64decode(audio, validate=True) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_every_encoded_append_is_accepted(pcm, use_compact):
    audio = base64.b64encode(pcm).decode()
    assert bare_append((compact if use_compact else spaced)(audio)) == (audio, pcm, None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.text(max_size=12), st.booleans())
def test_every_append_with_an_event_id_reads_as_the_full_parse(pcm, event_id, use_rtfleet):
    """Any event id at all: read here with the value the full parse gives, or left to it."""
    audio = base64.b64encode(pcm).decode()
    text = (rtfleet if use_rtfleet else spaced_id)(audio, event_id)
    found = bare_append(text)
    assert found is None or found == (audio, pcm, json.loads(text)["event_id"])
    if event_id.isascii() and event_id.isalnum():  # the common ids are always read here
        assert found == (audio, pcm, event_id)


def _stdlib_strict(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_B64_PIECES = st.one_of(st.text(alphabet=B64 + "=", max_size=14), st.sampled_from(
    ["=", "==", "===", "A=", "AA==", "AAA=", "AAAA", "\n", "\r\n", " ", "-", "_", "é", "\x00", "\u2028"]))


@settings(max_examples=3000, deadline=None)
@given(st.lists(_B64_PIECES, max_size=6))
def test_the_decoder_decides_as_the_stdlibs_strict_mode(pieces):
    """pybase64 accepts a subset of what the stdlib's strict mode accepts, with the same bytes
    (padding anywhere, junk, non-ASCII, any length): whatever it refuses the stdlib decides."""
    text = "".join(pieces)
    assert strict_b64decode(text) == _stdlib_strict(text)
    try:
        mine = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return
    assert mine == _stdlib_strict(text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3), st.integers(0, 4))
def test_encoded_audio_decodes_to_its_bytes_and_bent_audio_as_the_stdlib_says(pcm, cut, pad):
    text = base64.b64encode(pcm).decode()
    assert strict_b64decode(text) == pcm
    bent = text[:len(text) - cut] + "=" * pad
    assert strict_b64decode(bent) == _stdlib_strict(bent)


def test_audio_decoded_before_is_found_and_the_store_stays_bounded(monkeypatch):
    """The same text gives the same bytes (the ones decoded first); a full store is emptied and
    decoding goes on right."""
    import standin.model.append as append

    monkeypatch.setattr(append, "_DECODED", Memo(4 * (1280 + 960)))  # four 20 ms appends
    pcm = [bytes([k]) * 960 for k in range(10)]
    texts = [rtfleet(base64.b64encode(p).decode(), f"e{k}") for k, p in enumerate(pcm)]
    first = bare_append(texts[1])
    assert bare_append(texts[1])[1] is first[1]  # found, not decoded again
    for k in list(range(10)) * 2:
        assert bare_append(texts[k]) == (base64.b64encode(pcm[k]).decode(), pcm[k], f"e{k}")
        assert len(append._DECODED) <= 4 and append._DECODED.held_bytes <= 4 * (1280 + 960)
        assert append._DECODED.held_bytes == sum(len(t) + len(append._DECODED.get(t)) for t in append._DECODED)
    big = bytes(range(256)) * 200  # over the size kept: decoded, not kept
    assert bare_append(compact(base64.b64encode(big).decode()))[1] == big
    assert all(len(text) <= append._DECODED_TEXT for text in append._DECODED)


# -- the VAD on PCM16 bytes --------------------------------------------------------------------


def _transitions(vad: EnergyVad, chunks: list[bytes], pcm16: list[bool]) -> list:
    out = []
    for chunk, as_bytes in zip(chunks, pcm16):
        out += vad.feed_pcm16(chunk) if as_bytes else vad.feed(PCM.decode(chunk))
    return out


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.lists(st.integers(1, 2000), min_size=1, max_size=40))
def test_feed_pcm16_decides_as_feed_on_the_decoded_floats(seed, threshold, sizes):
    """Random levels around the threshold (speech and silence alike, digital silence among
    them), chunks of any size (odd ones drop their last byte in both), the two feeds mixed at
    random on one detector."""
    rng = np.random.default_rng(seed)
    scale = 32768 * 10 ** (3 * (threshold - 1))  # the threshold's RMS, in PCM16 units
    segments = [rng.normal(0, scale * rng.uniform(0.5, 1.5), rng.integers(100, 6000))
                * (rng.random() < 0.75)  # or digital silence (decided without levels)
                for _ in range(6)]
    pcm = np.clip(np.concatenate(segments), -32768, 32767).astype("<i2").tobytes()
    chunks, at = [], 0
    while at < len(pcm):  # the given sizes, each followed by an odd 20 ms (bounds the count)
        size = sizes[len(chunks) // 2 % len(sizes)] if len(chunks) % 2 == 0 else 961
        chunks.append(pcm[at:at + size])
        at += size
    params = VadParams(threshold=threshold, silence_duration_ms=int(rng.integers(10, 300)))
    reference = _transitions(EnergyVad(params, 24_000), chunks, [False] * len(chunks))
    assert _transitions(EnergyVad(params, 24_000), chunks, [True] * len(chunks)) == reference
    mixed = rng.integers(0, 2, len(chunks)).astype(bool).tolist()
    assert _transitions(EnergyVad(params, 24_000), chunks, mixed) == reference


@pytest.mark.parametrize("vecdot", [True, False])
def test_feed_pcm16_at_full_scale_and_positions(vecdot, monkeypatch):
    if not vecdot:  # numpy < 2: the energies by squares and a product with ones
        monkeypatch.setattr("standin.model.vad._vecdot", None)
    monkeypatch.setattr("standin.model.vad._ENERGIES", Memo(4 << 20, 4096))  # computed here, not found
    rng = np.random.default_rng(5)
    levels = np.repeat(rng.choice([300, 1100, 1200, 3000], 40), 2400)  # 100 ms at each level
    noise = np.clip(rng.normal(0, 1, len(levels)) * levels, -32768, 32767).astype("<i2").tobytes()
    reference = EnergyVad(VadParams(silence_duration_ms=200), 24_000)
    fast = EnergyVad(VadParams(silence_duration_ms=200), 24_000)
    expected = reference.feed(PCM.decode(noise))
    assert len(expected) >= 3 and fast.feed_pcm16(noise) == expected
    vad = EnergyVad(VadParams(silence_duration_ms=500), rate=24_000, start_ms=1000.0)
    loud = np.full(24_000 * 300 // 1000, -32768, dtype="<i2").tobytes()
    audio = pcm16_silence(300) + loud + pcm16_silence(700)
    changes = []
    for i in range(0, len(audio), 333):  # chunks that do not align with 10 ms frames
        changes += vad.feed_pcm16(audio[i:i + 333])
    assert changes == [SpeechStarted(1300.0), SpeechStopped(2100.0)]


def test_quiet_chunks_are_decided_whole_as_frame_by_frame():
    """While nobody speaks, a chunk whose whole energy is under one frame's bound is quiet
    without a level per frame; one just over it (one loud frame among quiet ones) is not,
    nor is digital silence with one sample set, and digital silence ends a turn on time."""
    floor_rms = 32768 * 10 ** (3 * (0.5 - 1))  # threshold 0.5: a frame's RMS bound (-30 dBFS)
    frame = 240
    def frames(*rms: float) -> bytes:
        return b"".join(np.full(frame, r, dtype="<i2").tobytes() for r in rms)
    for chunk, speech in [
        (frames(0.7 * floor_rms, 0.7 * floor_rms), False),  # the sum is under one frame's bound
        (frames(0.7 * floor_rms, 0.75 * floor_rms), False),  # each frame quiet, the sum over
        (frames(0, 1.01 * floor_rms), True),
        (frames(0, 0)[:-2] + np.array([100], dtype="<i2").tobytes(), False),  # one quiet sample
        (frames(0, 0)[:-2] + np.array([-32768], dtype="<i2").tobytes(), True),  # one loud one
        (np.array([-32768], dtype="<i2").tobytes() + frames(0, 0)[2:], True),
        (frames(0, 0, 0, floor_rms * 1.5), True),
    ]:
        fast, slow = EnergyVad(VadParams(), 24_000), EnergyVad(VadParams(), 24_000)
        got = fast.feed_pcm16(chunk)
        assert got == slow.feed(PCM.decode(chunk))
        assert bool(got) is speech
        assert fast.position_ms == slow.position_ms == len(chunk) // 2 // frame * 10
    vad = EnergyVad(VadParams(silence_duration_ms=200), 24_000)
    changes = vad.feed_pcm16(frames(floor_rms * 2, floor_rms * 2))
    for _ in range(15):
        changes += vad.feed_pcm16(bytes(960))
    assert changes == [SpeechStarted(0.0), SpeechStopped(220.0)]


def test_known_energies_decide_as_computed_ones_at_every_threshold(monkeypatch):
    """Energies found for a chunk (kept by a detector at another threshold, in another
    state) decide as the float feed decides, and the store stays bounded."""
    import standin.model.vad as vad_module

    monkeypatch.setattr(vad_module, "_ENERGIES", Memo(4 << 20, 3))
    rng = np.random.default_rng(11)
    chunks = [np.clip(rng.normal(0, 32768 * 10 ** (3 * (t - 1)), 480), -32768, 32767).astype("<i2").tobytes()
              for t in (0.3, 0.5, 0.52, 0.48, 0.7)]
    for threshold in (0.3, 0.5, 0.7):
        params = VadParams(threshold=threshold, silence_duration_ms=20)
        fast, slow = EnergyVad(params, 24_000), EnergyVad(params, 24_000)
        for k in [0, 1, 2, 3, 4, 1, 1, 2, 0, 4, 3, 3]:
            assert fast.feed_pcm16(chunks[k]) == slow.feed(PCM.decode(chunks[k]))
            assert len(vad_module._ENERGIES) <= 3


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.95), st.lists(st.integers(0, 7), min_size=1, max_size=60),
       st.integers(10, 200))
def test_chunks_seen_before_decide_as_the_float_feed(seed, threshold, order, silence_ms):
    """A few chunks of whole frames (quiet throughout, speech throughout, mixed, digital
    silence), fed in any order and so mostly found among the known energies, decided at once
    when all quiet or all speech: the transitions and positions of the float feed."""
    import standin.model.vad as vad_module

    vad_module._ENERGIES.clear()
    rng = np.random.default_rng(seed)
    bound = 32768 * 10 ** (3 * (threshold - 1))  # a frame's RMS at the threshold
    def chunk(*rms: float) -> bytes:
        return np.clip(np.concatenate([rng.normal(0, r, 240) for r in rms]), -32768, 32767).astype("<i2").tobytes()
    chunks = [chunk(0.5 * bound, 0.6 * bound), chunk(2 * bound, 3 * bound), chunk(0.5 * bound, 2 * bound),
              chunk(2 * bound, 0.5 * bound), chunk(1.02 * bound, 0.98 * bound), bytes(960),
              chunk(0.9 * bound, 0.9 * bound, 1.1 * bound, 0.2 * bound), chunk(5 * bound, 4 * bound)]
    params = VadParams(threshold=threshold, silence_duration_ms=silence_ms)
    fast, slow = EnergyVad(params, 24_000), EnergyVad(params, 24_000)
    for k in order:
        assert fast.feed_pcm16(chunks[k]) == slow.feed(PCM.decode(chunks[k]))
        assert (fast.speaking, fast.position_ms) == (slow.speaking, slow.position_ms)


def test_known_energies_are_bounded_by_the_bytes_their_keys_hold(monkeypatch):
    """The store's keys keep their chunks alive: it empties at its byte budget, not only at its
    count (4,096 chunks of 16 KiB would otherwise hold 64 MiB)."""
    import standin.model.vad as vad_module

    monkeypatch.setattr(vad_module, "_ENERGIES", Memo(10_000, 4096))
    vad = EnergyVad(VadParams(threshold=0.5, silence_duration_ms=20), 24_000)
    rng = np.random.default_rng(3)
    for _ in range(50):  # loud chunks of 3,840 bytes (8 frames), each new
        vad.feed_pcm16(rng.integers(-20_000, 20_000, 1920).astype("<i2").tobytes())
        held = sum(len(chunk) for _, chunk in vad_module._ENERGIES)
        assert held == vad_module._ENERGIES.held_bytes <= 10_000
    assert vad_module._ENERGIES  # it keeps what fits


# -- the session: same events and records either way ------------------------------------------


class _Hearing:
    """A hearing model that reports how many samples it was given (the kept audio)."""

    def hear(self, samples: np.ndarray, rate: int) -> str:
        return f"{len(samples)} samples at {rate} Hz, sum {float(np.sum(np.abs(samples))):.6f}"


def _session(fmt: str, hearing: bool) -> RealtimeSession:
    session = RealtimeSession.create(model="gpt-realtime", wall_now=1_000_000.0,
                                     config=ModelConfig(hearing=_Hearing() if hearing else None),
                                     ids=IdFactory(random.Random(7)))
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": fmt}, "transcription": {"model": "whisper-1"}}}}}, 0.0)
    return session


@pytest.mark.parametrize("fmt", ["audio/pcm", "audio/pcmu"])
@pytest.mark.parametrize("hearing", [False, True])
@pytest.mark.parametrize("writers", [(compact, spaced), (rtfleet, spaced_id)], ids=["bare", "event_id"])
def test_text_appends_give_the_events_and_records_of_parsed_appends(fmt, hearing, writers):
    pcm = pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700) + pcm16_tone(900) + pcm16_silence(800)
    data = pcm if fmt == "audio/pcm" else AudioFormat(fmt).encode(PCM.decode(pcm)[::3])
    size = 960 if fmt == "audio/pcm" else 160
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    chunks[3] = chunks[3][:-1]  # an odd length
    fast, full = _session(fmt, hearing), _session(fmt, hearing)
    out_fast, out_full = [], []
    for k, chunk in enumerate(chunks):
        now = k * 0.02
        audio = base64.b64encode(chunk).decode()
        text = writers[k % 2](audio)
        assert bare_append(text) is not None
        out_fast += fast.receive_text(text, now) + fast.handle_timer(now)
        out_full += full.receive_event(json.loads(text), now) + full.handle_timer(now)
    out_fast += fast.receive_text(writers[0]("AAA"), 9.0)  # bad audio: the full path's error
    out_full += full.receive_event(json.loads(writers[0]("AAA")), 9.0)
    assert [e["type"] for e in out_fast].count("input_audio_buffer.speech_stopped") == 2
    assert [e["error"]["param"] for e in out_fast if e["type"] == "error"] == ["audio"]
    assert out_fast == out_full
    assert fast.received == full.received
    assert fast.items == full.items


@pytest.mark.parametrize("write", [compact, rtfleet])
def test_an_error_in_the_turn_an_append_ends_is_an_error_event_either_way(monkeypatch, write):
    """A client error raised while the append's VAD ends a turn (here: planning the answer)
    is an ``error`` event and the session lives on, by text or parsed alike (naming the
    append's event id when it has one)."""
    from standin.model.events import ClientError

    def refuse(self, *args, **kwargs):
        raise ClientError("invalid_value", "no answer today", "tools")

    monkeypatch.setattr(RealtimeSession, "_start_response", refuse)
    pcm = pcm16_silence(100) + pcm16_tone(400) + pcm16_silence(700)
    fast, full = _session("audio/pcm", False), _session("audio/pcm", False)
    out_fast, out_full = [], []
    for k in range(0, len(pcm), 960):
        text = write(base64.b64encode(pcm[k:k + 960]).decode(), f"evt_c_{k}") if write is rtfleet else \
            write(base64.b64encode(pcm[k:k + 960]).decode())
        assert bare_append(text) is not None
        out_fast += fast.receive_text(text, k / 48_000)
        out_full += full.receive_event(json.loads(text), k / 48_000)
    assert [e["error"]["message"] for e in out_fast if e["type"] == "error"] == ["no answer today"]
    client_ids = [e["error"]["event_id"] for e in out_fast if e["type"] == "error"]
    assert client_ids == [None] if write is compact else client_ids[0].startswith("evt_c_")
    assert out_fast == out_full
