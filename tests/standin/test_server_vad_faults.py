"""Pure pieces: the energy VAD, G.711 tables, per-connection fault decisions, the secret store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from standin.model.audio import AudioFormat, Tone
from standin.keys.client_secrets import ClientSecretStore
from standin.model.events import ClientError
from standin.faults.plan import ConnectionFaults, Drop, Expire, FaultPlan
from hypothesis import given, settings
from hypothesis import strategies as st

from standin.model.vad import (EnergyVad, SpeechStarted, SpeechStopped, VadParams, frame_levels,
                                     speech_energy)
from standin.testing import pcm16_silence, pcm16_tone

PCM = AudioFormat("audio/pcm")


def test_levels_map_dbfs_onto_unit_range():
    frames = np.stack([np.zeros(240), np.full(240, 10 ** (-30 / 20)), np.ones(240)])
    assert frame_levels(frames) == pytest.approx([0.0, 0.5, 1.0])


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_the_energy_comparison_decides_as_the_level_comparison(threshold, scale, seed):
    """The VAD's hot path compares mean squares with speech_energy(threshold) instead of levels."""
    frames = np.random.default_rng(seed).uniform(-scale, scale, (4, 240)).astype(np.float32)
    energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / 240
    by_level = frame_levels(frames) > threshold
    by_energy = energy > speech_energy(threshold)
    # equal except within rounding of the boundary itself
    near = np.isclose(frame_levels(frames), threshold, atol=1e-9)
    assert ((by_level == by_energy) | near).all()


def test_vad_start_and_stop_positions_with_odd_chunking():
    vad = EnergyVad(VadParams(silence_duration_ms=500), rate=24_000, start_ms=1000.0)
    audio = PCM.decode(pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700))
    changes = []
    for i in range(0, len(audio), 333):  # chunks that do not align with 10 ms frames
        changes += vad.feed(audio[i : i + 333])
    assert changes == [SpeechStarted(1300.0), SpeechStopped(2400.0)]
    assert not vad.speaking


def test_vad_short_pause_does_not_end_speech():
    vad = EnergyVad(VadParams(silence_duration_ms=500), rate=24_000)
    audio = PCM.decode(pcm16_tone(300) + pcm16_silence(200) + pcm16_tone(300) + pcm16_silence(600))
    assert vad.feed(audio) == [SpeechStarted(0.0), SpeechStopped(1300.0)]


@pytest.mark.parametrize("kind", ["audio/pcmu", "audio/pcma"])
def test_g711_round_trip(kind):
    fmt = AudioFormat(kind)
    codes = bytes(range(256))
    assert fmt.encode(fmt.decode(codes)) == codes or kind == "audio/pcmu"  # µ-law has two zeros
    assert fmt.decode(fmt.encode(fmt.decode(codes))).tolist() == fmt.decode(codes).tolist()
    tone = Tone(440.0, 0.5).samples(8000, 800)
    assert np.max(np.abs(fmt.decode(fmt.encode(tone)) - tone)) < 0.02


def test_tone_is_continuous_across_chunks():
    whole = Tone().samples(24_000, 4800)
    tone = Tone()
    parts = np.concatenate([tone.samples(24_000, 2400), tone.samples(24_000, 2400)])
    assert np.allclose(whole, parts)


# -- faults ----------------------------------------------------------------------------------------

def test_fault_plan_validation():
    with pytest.raises(ValueError):
        FaultPlan(drop_rate=1.5)
    with pytest.raises(ValueError):
        FaultPlan(malformed_kinds=("nonsense",))
    with pytest.raises(ValueError):
        FaultPlan(drop_after_events=0)
    assert not FaultPlan(seed=3).active and FaultPlan(latency_ms=5).active


def test_drop_after_events_and_malformed_every():
    plan = FaultPlan(drop_after_events=3, malformed_every=2, malformed_kinds=("binary",))
    faults = ConnectionFaults.for_connection(plan, index=1, connected_at=0.0, max_session_s=3600)
    assert faults.after_event(plan) == (None, None)
    assert faults.after_event(plan) == ("binary", None)
    assert faults.after_event(plan) == (None, Drop("after_events", "abort", 1011))


def test_timed_faults_pick_the_earliest():
    faults = ConnectionFaults.for_connection(FaultPlan(), 1, connected_at=100.0, max_session_s=3600)
    assert faults.next_timed(FaultPlan(), 100.0) == (3700.0, Expire("max_session"))
    plan = FaultPlan(expire_after_s=5, drop_after_s=7, drop_mode="close", drop_close_code=1012)
    assert faults.next_timed(plan, 101.0) == (105.0, Expire("fault"))
    plan = FaultPlan(expire_after_s=9, drop_after_s=7, drop_mode="close", drop_close_code=1012)
    assert faults.next_timed(plan, 101.0) == (107.0, Drop("after_s", "close", 1012))


def test_drop_rate_is_seeded_and_roughly_right():
    plan = FaultPlan(seed=42, drop_rate=0.5)
    first = [ConnectionFaults.for_connection(plan, i, 0.0, 3600).next_timed(plan, 0.0)[0] for i in range(2000)]
    again = [ConnectionFaults.for_connection(plan, i, 0.0, 3600).next_timed(plan, 0.0)[0] for i in range(2000)]
    assert first == again
    # P(drop within 1 s) = 0.5
    assert sum(t <= 1.0 for t in first) / len(first) == pytest.approx(0.5, abs=0.05)
    assert np.mean(first) == pytest.approx(1 / math.log(2), rel=0.1)
    faults = ConnectionFaults.for_connection(plan, 1, 0.0, 3600)
    assert faults.next_timed(plan, 0.0) == faults.next_timed(plan, 0.5)  # same plan: same draw
    assert faults.next_timed(FaultPlan(drop_rate=1.0), 2.0)[0] == 2.0


# -- client secrets --------------------------------------------------------------------------------

def test_secret_mint_ttl_and_expiry():
    store = ClientSecretStore()
    minted = store.mint({"expires_after": {"anchor": "created_at", "seconds": 10}}, now=1000.5,
                        default_model="gpt-realtime")
    assert minted["value"].startswith("ek_") and minted["expires_at"] == 1010
    assert minted["session"]["id"].startswith("sess_") and minted["session"]["object"] == "realtime.session"
    assert store.lookup(minted["value"], now=1009.9)[0] is not None
    assert store.lookup(minted["value"], now=1010.0) == (None, "expired")
    assert store.lookup("ek_unknown", now=0) == (None, "unknown")
    default = store.mint(None, now=0, default_model="m")
    assert default["expires_at"] == 600 and default["session"]["model"] == "m"
    assert minted["value"] not in repr(store)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_after": {"seconds": 9}}, "expires_after.seconds"),
        ({"expires_after": {"seconds": 7201}}, "expires_after.seconds"),
        ({"expires_after": {"seconds": "60"}}, "expires_after.seconds"),
        ({"expires_after": {"anchor": "now", "seconds": 60}}, "expires_after.anchor"),
        ({"session": {"model": "x"}}, "session.type"),
        ({"session": {"type": "realtime", "output_modalities": ["video"]}}, "session.output_modalities"),
        ({"other": 1}, "other"),
    ],
)
def test_secret_bad_bodies(body, param):
    with pytest.raises(ClientError) as info:
        ClientSecretStore().mint(body, now=0, default_model="m")
    assert info.value.param == param


def test_secret_bounds_accepted():
    store = ClientSecretStore()
    for seconds in (10, 7200):
        assert store.mint({"expires_after": {"seconds": seconds}}, now=0, default_model="m")["expires_at"] == seconds
