"""SessionLink's direct writes (actors/link.py): what goes out from the caller's task and what
waits for the writer's one write per wake-up. The direct writer here records what it is given
(the WebSocket actor's writes to the socket; tests/actors/test_wsconn.py covers those)."""

import json

import trio

from actors.events import Transport
from actors.link import QUIET_S, SessionLink
from actors.proto.client import ClientCore


def _ready_link():
    link = SessionLink("s", Transport.WEBSOCKET, ClientCore(), lambda event: None)
    core = link.core
    core.connection_started()
    core.receive(json.dumps({"type": "session.created", "event_id": "e", "session": {"id": "x"}}))
    link.take_outgoing()  # the (empty) restore
    writes: list[list[str]] = []

    def writer(event=None):
        events = link.take_outgoing() if event is None else [event]
        writes.append([e.get("audio") or e["type"] for e in events])

    link.attach_writer(writer)
    return link, writes


def _append(n):
    return {"type": "input_audio_buffer.append", "audio": f"AAA{n}"}


async def test_a_paced_append_goes_out_at_once_and_a_burst_waits_for_one_write(autojump_clock):
    link, writes = _ready_link()
    link.send_nowait(_append(0))  # quiet connection: written from this task
    assert writes == [["AAA0"]]
    for n in range(1, 4):  # the same instant: queued for the writer
        link.send_nowait(_append(n))
    assert writes == [["AAA0"]] and link.core.queued_audio == 3
    link.write_now()  # what the writer task does when it wakes: one write for all three
    assert writes[-1] == ["AAA1", "AAA2", "AAA3"]
    await trio.sleep(QUIET_S)
    link.send_nowait(_append(4))
    assert writes[-1] == ["AAA4"]


async def test_control_events_and_appends_behind_them_keep_their_order(autojump_clock):
    link, writes = _ready_link()
    link.send_nowait({"type": "input_audio_buffer.clear"})  # control: always for the writer
    await trio.sleep(QUIET_S)
    link.send_nowait(_append(0))  # something is queued before it: not written alone
    assert writes == []
    link.write_now()
    assert writes == [["input_audio_buffer.clear", "AAA0"]]


async def test_without_a_direct_writer_everything_waits_for_the_writer(autojump_clock):
    link, writes = _ready_link()
    link.attach_writer(None)
    link.send_nowait(_append(0))
    link.send_now(_append(1))
    assert writes == [] and link.core.queued_audio == 2


def test_audio_rtfleet_encoded_itself_takes_the_direct_path_too():
    """``stream_audio`` of raw audio (scenarios' play and speak) hands the clock Base64Text
    frames, a str subclass: they go out as one direct write of the stamped append, as plain
    str frames do, not through the queue and the core's full validation."""
    from actors.proto.realtime.events import Base64Text

    link, _ = _ready_link()
    given: list = []
    link.attach_writer(given.append)
    audio = Base64Text.of(b"\x01\x02" * 480)
    link.send_audio_now(audio)
    link.send_audio_now("AAAA")
    assert [type(e) for e in given] == [dict, dict]  # the event itself, never None (queued)
    assert [e["audio"] for e in given] == [audio, "AAAA"]
    assert given[0]["audio"] is audio and given[0]["event_id"] != given[1]["event_id"]
    assert link.core.queued_audio == 0 and link.core.counters.written == 2
