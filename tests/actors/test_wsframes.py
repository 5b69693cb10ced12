"""actors.wsframes.FrameSplitter: the server's bytes cut at frame boundaries in front of the
``websockets`` protocol. Whatever the frames and however the stream is cut into reads, the
messages, pongs, close and errors are those the protocol alone gives."""

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from actors.wsconn import QUIET_LOGGER
from actors.wsframes import FrameSplitter, MessageAssembler, frame_limit


def _open_pair(max_size=2**20) -> ClientProtocol:
    client = ClientProtocol(parse_uri("ws://x/"), max_size=max_size, logger=QUIET_LOGGER)
    server = ServerProtocol()
    client.send_request(client.connect())
    for data in client.data_to_send():
        server.receive_data(data)
    request = server.events_received()[0]
    server.send_response(server.accept(request))
    for data in server.data_to_send():
        client.receive_data(data)
    client.events_received()
    assert client.state is State.OPEN
    return client


def _messages(items, assembler=None):
    """What WsConnection.get_message hands on, in order (pongs and closes named)."""
    assembler = assembler or MessageAssembler()
    out = []
    for item in items:
        if isinstance(item, (str, bytes)):
            out.append(item)
        elif item.opcode is Opcode.PONG:
            out.append(("pong", bytes(item.data)))
        elif item.opcode is Opcode.CLOSE:
            out.append(("close", bytes(item.data)))
        elif item.opcode is Opcode.PING:
            out.append(("ping", bytes(item.data)))
        else:
            message = assembler.take(item)
            if message is not None:
                out.append(message)
    return out


def _sent(chunks):
    """The client's output frames, unmasked: (opcode, payload), and EOF as None."""
    reader = StreamReader()
    out = []
    for chunk in chunks:
        if chunk == b"":
            out.append(None)
            continue
        reader.feed_data(chunk)
        while True:
            parser = Frame.parse(reader.read_exact, mask=True, max_size=None, extensions=[])
            try:
                next(parser)
            except StopIteration as done:
                out.append((done.value.opcode, bytes(done.value.data)))
                if not reader.buffer:
                    break
            else:
                raise AssertionError("a partial frame in the client's output")
    return out


FRAME = st.one_of(
    st.builds(lambda t: [Frame(Opcode.TEXT, t.encode())], st.text(max_size=300)),
    st.builds(lambda b: [Frame(Opcode.TEXT, b)], st.binary(max_size=20)),  # maybe not UTF-8
    st.builds(lambda b: [Frame(Opcode.BINARY, b)], st.binary(max_size=200)),
    st.builds(lambda b: [Frame(Opcode.PING, b)], st.binary(max_size=20)),
    st.builds(lambda b: [Frame(Opcode.PONG, b)], st.binary(max_size=20)),
    st.builds(lambda parts: [Frame(Opcode.TEXT, parts[0].encode(), fin=False),
                             *[Frame(Opcode.CONT, p.encode(), fin=False) for p in parts[1:-1]],
                             Frame(Opcode.CONT, parts[-1].encode())],
              st.lists(st.text(max_size=40), min_size=2, max_size=4)),
    st.builds(lambda n: [Frame(Opcode.TEXT, b"x" * n)], st.sampled_from([125, 126, 65535, 65536, 70000])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAME, max_size=12), st.lists(st.integers(1, 70000), max_size=8), st.booleans())
def test_split_anywhere_gives_what_the_protocol_alone_gives(groups, cuts, close):
    frames = [f for group in groups for f in group]
    if close:
        frames.append(Frame(Opcode.CLOSE, (4001).to_bytes(2, "big") + b"bye"))
        frames.append(Frame(Opcode.TEXT, b"after the close"))
    wire = b"".join(f.serialize(mask=False, extensions=[]) for f in frames)
    reference = _open_pair()
    reference.receive_data(wire)
    expected = _messages(reference.events_received())

    client = _open_pair()
    splitter = FrameSplitter(frame_limit(client))
    got: deque = deque()
    at = 0
    for cut in sorted(set(cuts)):
        if cut < len(wire):
            splitter.feed(wire[at:cut], client, got)
            at = cut
    splitter.feed(wire[at:], client, got)
    assert _messages(got) == expected
    # the same pongs and close echo (masked with different keys)
    assert _sent(client.data_to_send()) == _sent(reference.data_to_send())
    assert client.state is reference.state


def test_a_frame_over_the_limit_and_a_masked_frame_are_the_protocols_to_refuse():
    for frame_bytes, code in (
        (Frame(Opcode.TEXT, b"x" * 2000).serialize(mask=False, extensions=[]), 1009),
        (Frame(Opcode.TEXT, b"hi").serialize(mask=True, extensions=[]), 1002),
    ):
        client = _open_pair(max_size=1000)
        got: deque = deque()
        FrameSplitter(frame_limit(client)).feed(frame_bytes, client, got)
        assert not [m for m in got if isinstance(m, (str, bytes))]
        assert client.close_sent is not None and client.close_sent.code == code


def test_a_partial_frame_at_the_end_of_stream_goes_to_the_protocol():
    client = _open_pair()
    splitter = FrameSplitter(frame_limit(client))
    got: deque = deque()
    wire = Frame(Opcode.TEXT, b"complete").serialize(mask=False, extensions=[])
    splitter.feed(wire + wire[:5], client, got)
    assert list(got) == ["complete"]
    splitter.end(client)
    assert client.parser_exc is not None  # the protocol saw the stream end inside a frame


def test_text_frames_parse_back_with_a_fresh_key_each_across_refills():
    """``text_frame``: what the ``websockets`` parser reads back as the same text, each frame
    masked with its own key (more frames than one read of keys holds)."""
    from websockets.streams import StreamReader

    from actors.wsframes import _mask_keys, text_frame

    _mask_keys.reset()
    sizes = [0, 1, 125, 126, 65535, 65536, *range(2000)]
    keys = []
    for size in sizes:
        payload = bytes((size + k) % 256 for k in range(size))
        wire = text_frame(payload)
        keys.append(wire[2:6] if size < 126 else wire[4:8] if size < 65536 else wire[10:14])
        reader = StreamReader()
        reader.feed_data(wire)
        parser = Frame.parse(reader.read_exact, mask=True, max_size=None, extensions=[])
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
    assert len(set(keys)) > len(keys) - 5  # random 4-byte keys: (almost) never the same twice
