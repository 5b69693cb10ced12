import math

import pytest
from hypothesis import given, strategies as st

from actors.events import (
    TRANSITIONS,
    ConnectionEvent,
    ConnectionState,
    EventKind,
    EventStamper,
    IllegalTransition,
    StateMachine,
    Transport,
    decode_event,
    encode_event,
)

S = ConnectionState


def test_every_state_has_a_row_and_closed_is_terminal():
    assert set(TRANSITIONS) == set(ConnectionState)
    assert TRANSITIONS[S.CLOSED] == frozenset()


@pytest.mark.parametrize("current", list(ConnectionState))
@pytest.mark.parametrize("target", list(ConnectionState))
def test_transition_table_is_enforced(current, target):
    machine = StateMachine("s1", current)
    if target in TRANSITIONS[current]:
        payload = machine.advance(target, "why")
        assert payload == {"from": current.value, "to": target.value, "reason": "why"}
        assert machine.state is target
    else:
        with pytest.raises(IllegalTransition) as info:
            machine.advance(target)
        assert machine.state is current, "an illegal transition must leave the state unchanged"
        assert current.value in str(info.value) and target.value in str(info.value)
        assert "s1" in str(info.value)


def test_stamper_numbers_events_and_stamps_both_clocks():
    ticks = iter([1.0, 2.5])
    stamper = EventStamper("abc", Transport.WEBSOCKET, lambda: next(ticks), wall=lambda: 1700000000.0)
    a = stamper.make(EventKind.INFO, {"x": 1})
    b = stamper.make(EventKind.SERVER, {"type": "session.created"})
    assert (a.seq, b.seq) == (1, 2)
    assert (a.mono, b.mono) == (1.0, 2.5)
    assert b.type == "session.created" and a.type is None
    assert a.wall == 1700000000.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(
    payload=json_values | st.binary(max_size=64),
    seq=st.integers(0, 2**40),
    mono=st.floats(allow_nan=False, allow_infinity=False),
    kind=st.sampled_from(list(EventKind)),
    transport=st.sampled_from(list(Transport)),
)
def test_msgpack_round_trip(payload, seq, mono, kind, transport):
    event = ConnectionEvent("sess-1", transport, kind, payload, seq, mono, 1.7e9)
    back = decode_event(encode_event(event))
    assert back == event
    assert isinstance(back.transport, Transport) and isinstance(back.kind, EventKind)


def test_msgpack_keeps_audio_binary():
    event = ConnectionEvent("s", Transport.SIP, EventKind.AUDIO, b"\x00\x01" * 480, 7, 0.0, 0.0)
    data = encode_event(event)
    assert len(data) < 1000 + 40
    assert decode_event(data).payload == b"\x00\x01" * 480
    assert not math.isnan(decode_event(data).mono)
