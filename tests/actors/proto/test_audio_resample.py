"""Resampling 8 <-> 24 kHz and 24 <-> 48 kHz stereo: accuracy, anti-aliasing, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from actors.proto.audio import (AudioConverter, Downsampler, Upsampler, lowpass_taps,
                                mono_to_stereo, resample, stereo_to_mono)


def tone(freq: float, rate: int, seconds: float = 0.5, amplitude: float = 10000) -> np.ndarray:
    return np.rint(amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.int16)


def fit_tone(y: np.ndarray, freq: float, rate: int) -> tuple[float, float]:
    """Amplitude and SNR (dB) of the best sine at ``freq`` in ``y`` (any phase/delay)."""
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(float), rcond=None)
    model = basis @ coef
    return float(np.hypot(*coef)), float(10 * np.log10(np.sum(model**2) / np.sum((y - model) ** 2)))


def rms_db(y: np.ndarray, reference: float = 10000 / np.sqrt(2)) -> float:
    return float(20 * np.log10(max(np.sqrt(np.mean(y.astype(float) ** 2)), 1e-9) / reference))


@pytest.mark.parametrize("freq", [300, 1000, 3000])
def test_upsample_8k_to_24k_in_band(freq: int) -> None:
    y = Upsampler(3).process_array(tone(freq, 8000))
    assert len(y) == 3 * 4000
    amplitude, snr = fit_tone(y[200:-10], freq, 24000)
    assert amplitude == pytest.approx(10000, rel=0.005) and snr > 60


@pytest.mark.parametrize("freq", [300, 1000, 3000, 3400])
def test_round_trip_8k_24k_8k_bounded_error(freq: int) -> None:
    up, down = Upsampler(3), Downsampler(3)
    y = down.process_array(up.process_array(tone(freq, 8000)))
    assert len(y) == 4000
    amplitude, snr = fit_tone(y[100:], freq, 8000)
    assert amplitude == pytest.approx(10000, rel=0.01 if freq < 3400 else 0.08)
    assert snr > 60
    # the delay is the two filters' group delays: (95 + 95) / 2 samples at 24 kHz
    assert up.delay + down.delay == 95.0


@pytest.mark.parametrize("freq", [4600, 6000, 9000, 11000])
def test_downsample_rejects_aliases(freq: int) -> None:
    y = Downsampler(3).process_array(tone(freq, 24000))
    assert rms_db(y[50:]) < -70


def test_upsample_suppresses_images() -> None:
    y = Upsampler(3).process_array(tone(1000, 8000, seconds=1.0)).astype(float)
    window = y[1200:1200 + 12000] * np.hanning(12000)
    spectrum = np.abs(np.fft.rfft(window))
    freqs = np.fft.rfftfreq(12000, 1 / 24000)
    main = spectrum[np.argmin(abs(freqs - 1000))]
    for image in (7000, 9000):
        assert 20 * np.log10(spectrum[np.argmin(abs(freqs - image))] / main) < -70


def test_streaming_in_20ms_frames_equals_one_shot() -> None:
    x24 = tone(440, 24000, seconds=1.0)
    whole = Downsampler(3).process_array(x24)
    down = Downsampler(3)
    frames = [down.process(x24[i : i + 480].tobytes()) for i in range(0, len(x24), 480)]
    assert b"".join(frames) == whole.tobytes() and {len(f) for f in frames} == {320}
    x8 = tone(440, 8000, seconds=1.0)
    whole_up = Upsampler(3).process_array(x8)
    up = Upsampler(3)
    assert b"".join(up.process(x8[i : i + 160]) for i in range(0, len(x8), 160)) == whole_up.tobytes()


def test_streaming_with_odd_chunk_sizes() -> None:
    rng = np.random.default_rng(3)
    x = tone(700, 24000, seconds=0.5)
    whole = Downsampler(3).process_array(x)
    down, parts, i = Downsampler(3), [], 0
    while i < len(x):
        n = int(rng.integers(1, 500))
        parts.append(down.process_array(x[i : i + n]))
        i += n
    assert np.array_equal(np.concatenate(parts), whole)
    down.reset()
    assert np.array_equal(down.process_array(x), whole)


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 4 + [-32768] * 4, dtype=np.int16), 200)
    for stage in (Upsampler(3), Downsampler(3)):
        y = stage.process_array(square).astype(np.int32)
        assert y.max() <= 32767 and y.min() >= -32768
        assert y.max() > 30000 and y.min() < -30000


def test_impulse_response_peaks_at_the_group_delay() -> None:
    impulse = np.zeros(100, dtype=np.int16)
    impulse[0] = 10000
    up = Upsampler(3)
    assert abs(int(np.argmax(up.process_array(impulse))) - up.delay) <= 0.5
    taps = lowpass_taps(96, 0.475 / 3)
    assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1])


def test_webrtc_stereo_48k_to_realtime_24k_and_back() -> None:
    left, right = tone(1000, 48000), tone(1000, 48000, amplitude=6000)
    stereo = np.stack([left, right], axis=1).ravel()
    to_realtime = AudioConverter(48000, 24000, src_channels=2)
    mono = np.frombuffer(to_realtime.process(stereo.tobytes()), dtype="<i2")
    assert len(mono) == len(left) // 2
    amplitude, snr = fit_tone(mono[100:], 1000, 24000)
    assert amplitude == pytest.approx(8000, rel=0.01) and snr > 55  # the channels are averaged
    to_webrtc = AudioConverter(24000, 48000, dst_channels=2)
    back = np.frombuffer(to_webrtc.process(mono.tobytes()), dtype="<i2").reshape(-1, 2)
    assert len(back) == len(left) and np.array_equal(back[:, 0], back[:, 1])
    amplitude, snr = fit_tone(back[400:, 0], 1000, 48000)
    assert amplitude == pytest.approx(8000, rel=0.01) and snr > 55


def test_channel_helpers_and_validation() -> None:
    assert stereo_to_mono(np.array([100, 200, -5, -6], dtype=np.int16)).tolist() == [150, -6]
    assert mono_to_stereo(np.array([1, -2], dtype=np.int16)).tolist() == [1, 1, -2, -2]
    assert len(resample(tone(1000, 8000).tobytes(), 8000, 24000)) == 2 * 12000
    assert AudioConverter(24000, 24000).process(b"\x01\x00") == b"\x01\x00"
    with pytest.raises(ValueError):
        AudioConverter(44100, 24000)
    with pytest.raises(ValueError):
        Upsampler(1)
    assert Upsampler(3).process_array(np.zeros(0, dtype=np.int16)).size == 0


def test_converters_share_one_read_only_filter_and_keep_their_own_state() -> None:
    # the filter is built once per process (a SIP call made two at its accept); each stream
    # still has its own history: interleaving two streams gives what each gives alone
    a, b = AudioConverter(8000, 24000), AudioConverter(8000, 24000)
    assert a._stage._matrix is b._stage._matrix and not a._stage._matrix.flags.writeable
    down_a, down_b = AudioConverter(24000, 8000), AudioConverter(24000, 8000)
    assert down_a._stage._taps is down_b._stage._taps and not down_a._stage._taps.flags.writeable
    x, y = tone(440, 8000, 0.2), tone(1000, 8000, 0.2)
    frames = [(x[i:i + 160], y[i:i + 160]) for i in range(0, x.size, 160)]
    mixed = [(a.process(fx), b.process(fy)) for fx, fy in frames]
    assert b"".join(m[0] for m in mixed) == AudioConverter(8000, 24000).process(x)
    assert b"".join(m[1] for m in mixed) == AudioConverter(8000, 24000).process(y)
    # the shared filter is what lowpass_taps designs
    taps = lowpass_taps(3 * 32, 0.475 / 3)
    assert np.allclose(down_a._stage._taps, taps[::-1])
