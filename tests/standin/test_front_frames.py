"""standin/front/frames.py: the lean front's frame reader gives exactly what the ``websockets``
protocol alone gives (frames, answers, state, errors), for any bytes split anywhere."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask
from websockets.uri import parse_uri

from actors.wsconn import QUIET_LOGGER
from standin.front.frames import FrameReader


def _open(max_size: int) -> ServerProtocol:
    client = ClientProtocol(parse_uri("ws://x/v1/realtime"), logger=QUIET_LOGGER)
    client.send_request(client.connect())
    server = ServerProtocol(max_size=max_size, logger=QUIET_LOGGER)
    server.receive_data(b"".join(client.data_to_send()))
    request = server.events_received()[0]
    server.send_response(server.accept(request))
    server.data_to_send()
    assert server.state is State.OPEN
    return server


def _raw(head1: int, payload: bytes, *, masked: bool = True, declared: int | None = None) -> bytes:
    length = len(payload) if declared is None else declared
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes([head1, mask_bit | length])
    elif length < 2**16:
        head = bytes([head1, mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([head1, mask_bit | 127]) + length.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


_PAYLOADS = st.one_of(st.binary(max_size=40), st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 1500]),
                      st.text(max_size=20).map(str.encode), st.just("\u00e9t\u00e9".encode()[:-1]))
_COMMON = st.tuples(st.sampled_from([0x81, 0x82]), _PAYLOADS, st.just(True), st.just(None))
_ODD = st.one_of(
    # near misses of the common frame: fragments, control frames, reserved bits, bad opcode,
    # unmasked
    st.tuples(st.sampled_from([0x01, 0x02, 0x00, 0x80, 0x89, 0x8A, 0x88, 0x09, 0xC1, 0xA1, 0x91,
                               0x83, 0x8B]), _PAYLOADS, st.booleans(), st.just(None)),
    st.tuples(st.sampled_from([0x81, 0x82]), _PAYLOADS, st.just(False), st.just(None)),
    # a close frame with a valid code, and a header that declares more than the limit
    st.tuples(st.just(0x88), st.sampled_from([b"\x03\xe8", b"\x03\xe8bye", b"\x0f\xa1"]), st.just(True),
              st.just(None)),
    st.tuples(st.just(0x81), st.just(b"abc"), st.just(True), st.sampled_from([3000, 70000, 2**40])),
)
#: mostly common frames, with odd ones among them (a fragmented message: 0x01 then 0x00 / 0x80)
_FRAMES = st.lists(st.one_of(_COMMON, _COMMON, _COMMON, _ODD), max_size=14)


@settings(max_examples=600, deadline=None)
@given(_FRAMES, st.lists(st.one_of(st.integers(1, 4000), st.just(10**6)), min_size=1, max_size=20),
       st.binary(max_size=8))
def test_the_reader_gives_what_the_protocol_alone_gives(specs, cuts, tail):
    _same_as_the_protocol(specs, cuts, tail)


def _same_as_the_protocol(specs, cuts, tail) -> int:
    """Feeds the frames, cut into pieces, to a protocol alone and to one behind a reader; checks
    that every step gives the same; returns the frames the reader took itself."""
    stream = b"".join(_raw(h, p, masked=m, declared=d) for h, p, m, d in specs) + tail
    alone, behind = _open(2000), _open(2000)
    reader = FrameReader(behind)
    pos, k = 0, 0
    while pos < len(stream):
        piece = stream[pos:pos + cuts[k % len(cuts)]]
        pos += len(piece)
        k += 1
        alone.receive_data(piece)
        assert reader.feed(piece) == alone.events_received()
        assert behind.data_to_send() == alone.data_to_send()
        assert behind.state is alone.state
        assert type(behind.parser_exc) is type(alone.parser_exc)
    if alone.state is not State.CLOSED:
        alone.receive_eof()
        assert reader.feed_eof() == alone.events_received()
        assert behind.data_to_send() == alone.data_to_send()
        assert behind.state is alone.state
    return reader.fast_frames


def test_streams_of_appends_with_odd_frames_among_them_read_the_same():
    """Realistic streams (mostly whole appends, TCP-sized reads) so that most frames take the
    reader's own path, each with one odd frame somewhere: the same outcome as the protocol's."""
    rng = random.Random(13)
    fast = total = 0
    for _ in range(200):
        specs = [(rng.choice([0x81, 0x81, 0x82]), os.urandom(rng.choice([20, 125, 126, 1328])), True, None)
                 for _ in range(rng.randint(5, 30))]
        odd = rng.choice([(0x89, b"ping", True, None), (0x8A, b"", True, None), (0x01, b"frag", True, None),
                          (0x81, b"x", False, None), (0xC1, b"rsv", True, None), (0x81, b"", True, 5000),
                          (0x88, b"\x03\xe8", True, None), (0x80, b"cont", True, None)])
        specs.insert(rng.randrange(len(specs) + 1), odd)
        cuts = [rng.choice([1, 7, 700, 1400, 4096, 65536]) for _ in range(8)]
        fast += _same_as_the_protocol(specs, cuts, b"")
        total += len(specs)
    assert fast > total // 3  # the reader's own path was taken, and often


def test_the_common_frame_is_parsed_by_the_reader_and_split_ones_too():
    protocol = _open(2**20)
    reader = FrameReader(protocol)
    text = b'{"type":"input_audio_buffer.append","audio":"' + b"A" * 1280 + b'"}'
    frames = [_raw(0x81, text) for _ in range(3)]
    got = reader.feed(frames[0] + frames[1][:700])
    got += reader.feed(frames[1][700:] + frames[2][:1])
    got += reader.feed(frames[2][1:] + frames[0])
    assert [f.data for f in got] == [text] * 4
    assert reader.fast_frames == 4  # the two split frames were kept here until whole
    assert reader.protocol_feeds == 0
    assert protocol.state is State.OPEN


def test_bytes_after_the_handshake_keep_every_frame_with_the_protocol():
    protocol = _open(2**20)
    reader = FrameReader(protocol, at_boundary=False)
    got = reader.feed(_raw(0x81, b"hello"))
    assert [f.data for f in got] == [b"hello"]
    assert reader.fast_frames == 0


def _frame_by_frame(specs) -> int:
    """Each frame in a read of its own (the common read of a streaming client)."""
    frames = [_raw(h, p, masked=m, declared=d) for h, p, m, d in specs]
    alone, behind = _open(2000), _open(2000)
    reader = FrameReader(behind)
    for frame in frames:
        alone.receive_data(frame)
        assert reader.feed(frame) == alone.events_received()
        assert behind.data_to_send() == alone.data_to_send()
        assert behind.state is alone.state
        assert type(behind.parser_exc) is type(alone.parser_exc)
    return reader.fast_frames


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_COMMON, _ODD, st.tuples(st.sampled_from([0x81, 0x82]),
                                                   st.sampled_from([b"a" * 126, b"b" * 1999, b"c" * 2000,
                                                                    b"d" * 2001, b"e" * 5000]),
                                                   st.booleans(), st.just(None))), max_size=10))
def test_whole_frames_read_one_at_a_time_give_what_the_protocol_gives(specs):
    """The reader's one-frame read (a whole masked text frame with a 16-bit length) and its
    near misses: binary, unmasked, over the size limit, inside a fragmented message, after a
    close, a 7-bit or 64-bit length."""
    _frame_by_frame(specs)


def test_a_stream_of_appends_read_a_frame_at_a_time_is_read_by_the_reader():
    text = b'{"type":"input_audio_buffer.append","audio":"' + b"A" * 1280 + b'"}'
    assert _frame_by_frame([(0x81, text[:1990], True, None)] * 20) == 20
    # inside a fragmented message the protocol decides (an error: a new message in the middle)
    assert _frame_by_frame([(0x01, b"frag", True, None)] + [(0x81, text[:1990], True, None)] * 3) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a" * 126, b"b" * 1328, b"c" * 1999, b"d" * 2001]), min_size=1, max_size=6),
       st.one_of(st.none(), st.integers(1, 3000)), st.sampled_from([b"", b"\x89\x80abcd", b"\x81\x85abcdhello"]))
def test_a_read_of_whole_appends_is_taken_at_once_and_anything_else_left_whole(payloads, cut, odd):
    """``texts``: a read of whole masked 16-bit text frames gives their payloads (those over
    the size limit, a frame cut short, or any other frame after them: None, nothing read,
    and ``feed`` then reads it as the protocol would)."""
    frames = [_raw(0x81, p) for p in payloads]
    data = b"".join(frames) + odd
    if cut is not None:
        data = data[:cut]
    reader = FrameReader(_open(2000))
    got = reader.texts(data)
    ends = [sum(len(f) for f in frames[:k + 1]) for k in range(len(frames))]  # frame boundaries
    taken = ends.index(len(data)) + 1 if len(data) in ends else 0
    if taken and all(len(p) <= 2000 for p in payloads[:taken]):
        assert got == payloads[:taken] and reader.fast_frames == taken
    else:
        assert got is None and reader.fast_frames == 0 and reader.protocol_feeds == 0
    _same_as_the_protocol([(0x81, p, True, None) for p in payloads], [len(data) if cut is None else cut, 10**6],
                          odd)
