"""G.711 µ-law and A-law against reference values, the standard's structure and SNR."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from actors.proto.audio import (ALAW_DECODE_TABLE, ULAW_DECODE_TABLE, alaw_decode, alaw_encode,
                                g711_decode, g711_encode, ulaw_decode, ulaw_encode)

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def enc(fn: object, values: list[int]) -> list[int]:
    return list(fn(np.array(values, dtype=np.int16)))  # type: ignore[operator]


def dec(fn: object, codes: list[int]) -> list[int]:
    return np.frombuffer(fn(bytes(codes)), dtype="<i2").tolist()  # type: ignore[operator]


def test_ulaw_reference_values() -> None:
    assert enc(ulaw_encode, [0, -1, 32767, -32768, 8, -8]) == [0xFF, 0x7F, 0x80, 0x00, 0xFE, 0x7E]
    assert dec(ulaw_decode, [0x00, 0x01, 0x80, 0xFF, 0x7F, 0xFE, 0x7E]) == [
        -32124, -31100, 32124, 0, 0, 8, -8]


def test_alaw_reference_values() -> None:
    assert enc(alaw_encode, [0, -1, 32767, -32768]) == [0xD5, 0x55, 0xAA, 0x2A]
    assert dec(alaw_decode, [0xD5, 0x55, 0xAA, 0x2A, 0x00, 0x01]) == [8, -8, 32256, -32256, -5504, -5248]


@pytest.mark.parametrize(("encode", "decode", "shared"), [
    (ulaw_encode, ulaw_decode, {0x7F: 0xFF}),  # µ-law has two zeros; 0x7F comes back as 0xFF
    (alaw_encode, alaw_decode, {}),
])
def test_every_code_round_trips(encode: object, decode: object, shared: dict[int, int]) -> None:
    again = encode(np.frombuffer(decode(ALL_CODES), dtype="<i2"))  # type: ignore[operator]
    for code in range(256):
        assert again[code] == shared.get(code, code), hex(code)


@pytest.mark.parametrize("table", [ULAW_DECODE_TABLE, ALAW_DECODE_TABLE])
def test_decode_tables_are_symmetric(table: np.ndarray) -> None:
    codes = np.arange(256)
    assert np.array_equal(table[codes], -table[codes ^ 0x80])
    assert not table.flags.writeable


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_quantiser_is_monotonic_and_symmetric(encode: object, decode: object) -> None:
    codes = np.frombuffer(encode(ALL_SAMPLES), dtype=np.uint8)  # type: ignore[operator]
    values = np.frombuffer(decode(codes.tobytes()), dtype="<i2")  # type: ignore[operator]
    assert np.all(np.diff(values.astype(np.int32)) >= 0)
    # one's complement for negatives: x and -1-x get the same magnitude
    assert np.array_equal(values[::-1].astype(np.int32), -values.astype(np.int32))


@pytest.mark.parametrize("amplitude", [32000, 10000, 3000, 1000])
@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_sine_snr_above_35_db(encode: object, decode: object, amplitude: int) -> None:
    x = np.rint(amplitude * np.sin(2 * np.pi * 1013 * np.arange(8000) / 8000)).astype(np.int16)
    y = np.frombuffer(decode(encode(x.tobytes())), dtype="<i2").astype(float)  # type: ignore[operator]
    snr = 10 * np.log10(np.sum(x.astype(float) ** 2) / np.sum((y - x) ** 2))
    assert snr > 35


def test_matches_audioop_where_defined_alike() -> None:
    """Cross-check with CPython's audioop (when importable): identical decode tables and
    A-law; µ-law identical for x >= 0 (audioop rounds negatives with a floor shift, the
    ITU reference software with one's complement, which this module follows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = ALL_SAMPLES.tobytes()
    assert audioop.ulaw2lin(ALL_CODES, 2) == ulaw_decode(ALL_CODES)
    assert audioop.alaw2lin(ALL_CODES, 2) == alaw_decode(ALL_CODES)
    assert audioop.lin2alaw(pcm, 2) == alaw_encode(pcm)
    ours, theirs = ulaw_encode(pcm)[32768:], audioop.lin2ulaw(pcm, 2)[32768:]
    assert ours == theirs


def test_inputs_and_payload_types() -> None:
    frame = np.zeros(160, dtype=np.int16)
    assert ulaw_encode(frame) == ulaw_encode(frame.tobytes()) == b"\xff" * 160
    assert g711_encode(8, frame) == b"\xd5" * 160
    assert g711_decode(0, b"\xff" * 160) == bytes(320) and len(g711_decode(8, b"\xd5" * 160)) == 320
    with pytest.raises(ValueError):
        g711_encode(18, frame)
    with pytest.raises(ValueError):
        g711_decode(101, b"")
    with pytest.raises(ValueError):
        ulaw_encode(b"\x00\x01\x02")  # odd number of bytes is not PCM16
