"""The server's cheap way out: events written as ``json.dumps`` writes them
(``standin.model.events.event_json``) and text frames made as the ``websockets`` protocol makes
them (``standin.front.lean._text_frame``)."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from standin.front.lean import _text_frame
from standin.model.events import Base64Text, event_json
from standin.model.response import audio_text

_SCALARS = st.one_of(st.text(max_size=12), st.integers(-2**70, 2**70), st.booleans(), st.none(),
                     st.floats(allow_nan=True), st.binary(max_size=30).map(
                         lambda b: Base64Text(base64.b64encode(b).decode())))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                       max_leaves=6)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=7))
def test_an_event_is_written_as_json_dumps_writes_it(event):
    assert event_json(event) == json.dumps(event)


def test_an_audio_delta_is_written_with_its_base64_as_it_stands():
    delta = audio_text(bytes(range(256)) * 19)
    assert type(delta) is Base64Text and base64.b64decode(delta) == bytes(range(256)) * 19
    assert audio_text(bytes(range(256)) * 19) is delta  # encoded once
    event = {"type": "response.output_audio.delta", "event_id": "event_1", "response_id": "resp_1",
             "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": delta}
    assert event_json(event) == json.dumps(event)
    assert json.loads(event_json(event)) == event
    assert event_json({"a": "é\n\"\\\u2028", 1: "x"}) == json.dumps({"a": "é\n\"\\\u2028", 1: "x"})
    assert event_json([1, "x"]) == json.dumps([1, "x"])  # not a dict: json.dumps


@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]))
def test_a_text_frame_is_the_protocols(length):
    payload = b"x" * length
    assert _text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
