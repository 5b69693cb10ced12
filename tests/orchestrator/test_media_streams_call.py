"""MediaStreamsCall, the sans-I/O core of the Media Streams bridge: messages in, actions out."""

import base64
import json

import pytest

from orchestrator.media_streams.call import (
    FRAME_BYTES, CallPhase, EndCall, MediaStreamsCall, Notice, OpenSession, ToProvider, ToRealtime,
)

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
         "start": {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                   "customParameters": {"who": "test"},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def started(**kwargs) -> MediaStreamsCall:
    call = MediaStreamsCall(**kwargs)
    assert call.receive_provider(json.dumps({"event": "connected", "protocol": "Call"})) == []
    actions = call.receive_provider(json.dumps(START))
    assert actions == [OpenSession("MZ1", "CA1", {"who": "test"})]
    assert call.phase is CallPhase.STREAMING
    return call


def media(payload: bytes, ts: int = 0, track: str = "inbound") -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1",
                       "media": {"track": track, "chunk": "1", "timestamp": str(ts), "payload": b64(payload)}})


def delta(item: str, nbytes: int) -> dict:
    return {"type": "response.output_audio.delta", "item_id": item, "response_id": "r",
            "content_index": 0, "output_index": 0, "delta": b64(b"\x55" * nbytes)}


def provider(actions, event):
    return [a.message for a in actions if isinstance(a, ToProvider) and a.message["event"] == event]


def ack(call, name):
    return call.receive_provider(json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": name}}))


def test_media_is_passed_through_as_append_with_the_same_payload():
    call = started()
    frame = bytes(range(160))
    assert call.receive_provider(media(frame, ts=20)) == [
        ToRealtime({"type": "input_audio_buffer.append", "audio": b64(frame)})]
    assert call.media_timestamp == 20 and call.media_in == 1
    assert call.receive_provider(media(frame, track="outbound")) == []


def test_deltas_are_rechunked_into_20ms_frames_with_a_mark_after_each_delta():
    call = started()
    out = call.receive_realtime(delta("item_a", 400))  # 2.5 frames
    frames = provider(out, "media")
    assert [len(base64.b64decode(f["media"]["payload"])) for f in frames] == [FRAME_BYTES] * 2
    assert all(f["streamSid"] == "MZ1" for f in frames)
    assert provider(out, "mark") == [{"event": "mark", "streamSid": "MZ1", "mark": {"name": "rtfleet-1"}}]
    out = call.receive_realtime(delta("item_a", 40))  # 80 + 40 = 120 bytes: no whole frame
    assert out == []
    out = call.receive_realtime({"type": "response.output_audio.done", "item_id": "item_a"})
    (last,) = provider(out, "media")
    padded = base64.b64decode(last["media"]["payload"])
    assert padded == b"\x55" * 120 + b"\xff" * 40  # padded with µ-law silence
    assert provider(out, "mark")[0]["mark"]["name"] == "rtfleet-2"
    assert call.frames_out == 3 and call.marks_sent == 2
    assert call.receive_realtime({"type": "response.done"}) == []


def test_barge_in_clears_and_truncates_at_the_acknowledged_milliseconds():
    call = started()
    call.receive_realtime(delta("item_a", 800))  # 100 ms, mark rtfleet-1
    call.receive_realtime(delta("item_a", 800))  # 200 ms, mark rtfleet-2
    assert ack(call, "rtfleet-1") == []
    out = call.receive_realtime({"type": "input_audio_buffer.speech_started", "item_id": "item_u"})
    assert out == [ToProvider({"event": "clear", "streamSid": "MZ1"}),
                   ToRealtime({"type": "conversation.item.truncate", "item_id": "item_a",
                               "content_index": 0, "audio_end_ms": 100})]
    # The provider returns the cleared mark; it is not counted as played nor as malformed.
    assert ack(call, "rtfleet-2") == [] and call.malformed == 0
    # Late deltas of the interrupted item are dropped.
    assert call.receive_realtime(delta("item_a", 800)) == [] and call.dropped_deltas == 1
    # A new item plays normally.
    assert provider(call.receive_realtime(delta("item_b", 160)), "media")


def test_no_clear_once_everything_sent_was_heard():
    call = started()
    call.receive_realtime(delta("item_a", 160))
    call.receive_realtime({"type": "response.output_audio.done", "item_id": "item_a"})
    ack(call, "rtfleet-1")
    assert call.receive_realtime({"type": "input_audio_buffer.speech_started"}) == []
    assert call.clears == 0


def test_barge_in_before_any_ack_truncates_at_zero():
    call = started()
    call.receive_realtime(delta("item_a", 320))
    out = call.receive_realtime({"type": "input_audio_buffer.speech_started"})
    assert out[1] == ToRealtime({"type": "conversation.item.truncate", "item_id": "item_a",
                                 "content_index": 0, "audio_end_ms": 0})


@pytest.mark.parametrize("mode", ["info", "text"])
def test_dtmf(mode):
    call = started(dtmf=mode)
    out = call.receive_provider(json.dumps({"event": "dtmf", "streamSid": "MZ1",
                                            "dtmf": {"track": "inbound_track", "digit": "7"}}))
    assert out[0] == Notice("media_streams.dtmf", {"digit": "7"})
    assert call.digits == ["7"]
    if mode == "text":
        assert out[1].event["item"]["content"][0]["text"] == "DTMF 7"
    else:
        assert len(out) == 1


@pytest.mark.parametrize("frame", [
    "not json", "[1, 2]", json.dumps({"event": "bogus"}), json.dumps({"no": "event"}),
    json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "!!!not base64"}}),
    json.dumps({"event": "media", "streamSid": "MZ1"}),
    json.dumps({"event": "media", "streamSid": "OTHER", "media": {"payload": ""}}),
    json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": "never-sent"}}),
    json.dumps({"event": "dtmf", "streamSid": "MZ1", "dtmf": {}}),
    json.dumps({"event": "start", "streamSid": "MZ1", "start": START["start"]}),  # a second start
    b"\x00binary",
])
def test_malformed_frames_are_counted_and_reported_and_the_call_lives_on(frame):
    call = started()
    out = call.receive_provider(frame)
    assert len(out) == 1 and isinstance(out[0], Notice) and out[0].event == "media_streams.malformed"
    assert call.malformed == 1 and call.phase is CallPhase.STREAMING
    assert call.receive_provider(media(b"\xff" * 160))  # still streaming


def test_media_before_start_is_malformed():
    call = MediaStreamsCall()
    (notice,) = call.receive_provider(media(b"\xff" * 160))
    assert notice.event == "media_streams.malformed" and call.malformed == 1


def test_unsupported_media_format_ends_the_call():
    call = MediaStreamsCall()
    start = json.loads(json.dumps(START))
    start["start"]["mediaFormat"]["sampleRate"] = 16000
    out = call.receive_provider(json.dumps(start))
    assert out[-1] == EndCall("unsupported media format", 1003)
    assert call.phase is CallPhase.ENDED


def test_stop_ends_the_call_and_later_frames_are_malformed():
    call = started()
    assert call.receive_provider(json.dumps({"event": "stop", "streamSid": "MZ1",
                                             "stop": {"callSid": "CA1"}})) == [EndCall("stop")]
    assert call.phase is CallPhase.ENDED
    assert call.receive_realtime(delta("item_a", 160)) == []
    assert call.receive_provider(media(b"\xff" * 160))[0].event == "media_streams.malformed"
