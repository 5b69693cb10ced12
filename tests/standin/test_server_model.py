"""The deterministic model, sans-I/O: events in, events out, time as a plain number."""

from __future__ import annotations

import base64
import json
import random

import pytest

from standin.model.events import IdFactory
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.testing import pcm16_silence, pcm16_tone, split_chunks

TEXT_TURN = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]


def make_session(**config) -> RealtimeSession:
    return RealtimeSession.create(
        model="gpt-realtime", wall_now=1_000_000.0, config=ModelConfig(**config), ids=IdFactory(random.Random(1))
    )


def types(events):
    return [e["type"] for e in events]


def user_text(text: str, **extra) -> dict:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item, **extra}


def append(pcm: bytes) -> dict:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def feed_audio(session: RealtimeSession, pcm: bytes, now: float = 0.0) -> list[dict]:
    out = []
    for chunk in split_chunks(pcm, 20):
        out += session.receive_event(append(chunk), now)
    return out


def drain(session: RealtimeSession) -> list[tuple[float, dict]]:
    """Run the session's timer to completion; returns (time, event) pairs."""
    timed = []
    while (due := session.get_timer()) is not None:
        timed += [(due, e) for e in session.handle_timer(due)]
    return timed


def errors(events):
    return [e["error"] for e in events if e["type"] == "error"]


def test_session_created_first_and_shape():
    session = make_session()
    (created,) = session.start()
    assert created["type"] == "session.created"
    s = created["session"]
    assert s["id"].startswith("sess_") and s["object"] == "realtime.session" and s["type"] == "realtime"
    assert s["model"] == "gpt-realtime" and s["expires_at"] == 1_000_000 + 3600
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert created["event_id"].startswith("event_")


def test_text_turn_order_and_reply():
    session = make_session()
    added = session.receive_event(user_text("hello there", event_id="c1"), 0.0)
    assert types(added) == ["conversation.item.added", "conversation.item.done"]
    assert added[0]["previous_item_id"] is None
    events = session.receive_event({"type": "response.create", "response": {"output_modalities": ["text"]}}, 0.0)
    assert types(events) == TEXT_TURN
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "You said: hello there"
    done = events[-2]["response"]
    assert done["status"] == "completed" and done["usage"]["total_tokens"] > 0
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "You said: hello there"}]
    assert [i["role"] for i in session.items] == ["user", "assistant"]
    assert session.get_timer() is None


def test_client_item_ids_and_previous_item_id():
    session = make_session()
    session.receive_event(user_text("a", ) | {"item": {**user_text("a")["item"], "id": "item_a"}}, 0.0)
    session.receive_event({**user_text("c"), "item": {**user_text("c")["item"], "id": "item_c"}}, 0.0)
    out = session.receive_event(
        {**user_text("b"), "item": {**user_text("b")["item"], "id": "item_b"}, "previous_item_id": "item_a"}, 0.0
    )
    assert out[0]["previous_item_id"] == "item_a"
    out = session.receive_event(
        {**user_text("z"), "item": {**user_text("z")["item"], "id": "item_z"}, "previous_item_id": "root"}, 0.0
    )
    assert out[0]["previous_item_id"] is None
    assert [i["id"] for i in session.items] == ["item_z", "item_a", "item_b", "item_c"]


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": []},
          "previous_item_id": "item_missing"}, "item_not_found", "previous_item_id"),
        ({"type": "conversation.item.create"}, "missing_required_parameter", "item"),
        ({"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}},
         "invalid_value", "item.role"),
        ({"type": "conversation.item.create",
          "item": {"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]}},
         "invalid_value", "item.content[0].type"),
        ({"type": "conversation.item.retrieve", "item_id": "nope"}, "item_not_found", "item_id"),
        ({"type": "conversation.item.delete", "item_id": "nope"}, "item_not_found", "item_id"),
        ({"type": "conversation.item.delete"}, "missing_required_parameter", "item_id"),
        ({"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 0},
         "item_not_found", "item_id"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
        ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "response.cancel"}, "response_cancel_not_active", None),
        ({"type": "response.create", "response": {"conversation": "other"}}, "invalid_value",
         "response.conversation"),
        ({"type": "response.create", "response": {"output_modalities": ["text", "audio"]}}, "invalid_value",
         "response.output_modalities"),
        ({"type": "session.update", "session": {"instructions": "x"}}, "missing_required_parameter", "session.type"),
        ({"type": "session.update", "session": {"type": "realtime", "model": "other"}}, "invalid_value",
         "session.model"),
        ({"type": "session.update", "session": {"type": "realtime", "bogus": 1}}, "unknown_parameter",
         "session.bogus"),
        ({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"format": {"type": "x"}}}}},
         "invalid_value", "session.audio.input.format.type"),
        ({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "threshold": 2}}}}},
         "invalid_value", "session.audio.input.turn_detection.threshold"),
        ({"type": "no.such.event"}, "invalid_value", "type"),
        ({"event_id": "x"}, "missing_required_parameter", "type"),
        ({"type": "output_audio_buffer.clear"}, "invalid_value", "type"),
    ],
)
def test_errors_keep_session_open(event, code, param):
    session = make_session()
    out = session.receive_event({**event, "event_id": "evt_client"}, 0.0)
    assert types(out) == ["error"]
    err = out[0]["error"]
    assert (err["code"], err["param"], err["event_id"]) == (code, param, "evt_client")
    assert err["type"] == "invalid_request_error" and err["message"]
    assert out[0]["event_id"].startswith("event_")
    # The session still works afterwards.
    assert types(session.receive_event(user_text("still here"), 0.0)) == [
        "conversation.item.added", "conversation.item.done"]


def test_malformed_json_and_binary():
    session = make_session()
    (err,) = session.receive_text("{not json", 0.0)
    assert err["error"]["code"] == "invalid_json" and err["error"]["event_id"] is None
    (err,) = session.receive_text("[1, 2]", 0.0)
    assert err["error"]["code"] == "invalid_json"
    (err,) = session.receive_binary(b"\x00\x01", 0.0)
    assert err["error"]["code"] == "unsupported_frame"


def test_second_response_create_rejected_while_active_and_none_conversation_allowed():
    session = make_session()
    session.receive_event(user_text("hi"), 0.0)
    first = session.receive_event({"type": "response.create"}, 0.0)  # audio: paced, stays active
    assert "response.created" in types(first)
    out = session.receive_event({"type": "response.create", "event_id": "c2"}, 0.01)
    assert errors(out)[0]["code"] == "conversation_already_has_active_response"
    parallel = session.receive_event(
        {"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"]}}, 0.01)
    assert "conversation.item.added" not in types(parallel)
    assert parallel[-2]["response"]["conversation_id"] is None
    assert types(parallel)[-2:] == ["response.done", "rate_limits.updated"]


def test_response_cancel():
    session = make_session()
    session.receive_event(user_text("hi"), 0.0)
    created = session.receive_event({"type": "response.create"}, 0.0)
    response_id = created[0]["response"]["id"]
    out = session.receive_event({"type": "response.cancel"}, 0.05)
    assert types(out) == [
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done", "response.done", "rate_limits.updated"]
    done = out[-2]["response"]
    assert done["id"] == response_id and done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert out[3]["item"]["status"] == "incomplete"
    assert session.get_timer() is None
    again = session.receive_event({"type": "response.cancel"}, 0.06)
    assert errors(again)[0]["code"] == "response_cancel_not_active"


def test_audio_response_is_paced_in_real_time():
    session = make_session(chunk_ms=100, pace=1.0)
    session.receive_event(user_text("one two"), 10.0)
    first = session.receive_event({"type": "response.create"}, 10.0)
    # Head plus the first word at once; the rest one chunk every 100 ms.
    assert types(first)[-2:] == ["response.output_audio_transcript.delta", "response.output_audio.delta"]
    timed = drain(session)
    audio_times = [t for t, e in timed if e["type"] == "response.output_audio.delta"]
    assert audio_times == pytest.approx([10.1, 10.2, 10.3])  # "You said: one two" = 4 words
    assert timed[-1][1]["type"] == "rate_limits.updated" and timed[-1][0] == pytest.approx(10.3)
    chunk = base64.b64decode(first[-1]["delta"])
    assert len(chunk) == 4800  # 100 ms of PCM16 at 24 kHz


def audio_turn_input() -> bytes:
    return pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700)


def test_audio_turn_with_server_vad():
    session = make_session(pace=1.0)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}}, 0.0)
    out = feed_audio(session, audio_turn_input())
    out += [e for _, e in drain(session)]
    assert types(out)[:7] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
        "conversation.item.added", "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",  # whisper-1: one delta, all of it
        "conversation.item.input_audio_transcription.completed"]
    started, stopped, committed = out[:3]
    assert started["audio_start_ms"] == 0  # 300 ms speech start minus 300 ms prefix padding
    assert stopped["audio_end_ms"] == 900 + 500  # end of speech plus silence_duration_ms
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert out[5]["delta"] == out[6]["transcript"] == "audio of 1400 ms"
    assert out[6]["usage"] == {"type": "duration", "seconds": 1.4}
    rest = types(out)[7:]
    assert rest[:4] == ["response.created", "response.output_item.added", "conversation.item.added",
                        "response.content_part.added"]
    body = rest[4:-7]
    assert body == ["response.output_audio_transcript.delta", "response.output_audio.delta"] * (len(body) // 2)
    assert rest[-7:] == ["response.output_audio.done", "response.output_audio_transcript.done",
                         "response.content_part.done", "response.output_item.done", "conversation.item.done",
                         "response.done", "rate_limits.updated"]
    transcript = [e for e in out if e["type"] == "response.output_audio_transcript.done"][0]["transcript"]
    assert transcript == "You said: audio of 1400 ms"
    assert [i["role"] for i in session.items] == ["user", "assistant"]
    assert session.items[0]["content"][0]["transcript"] == "audio of 1400 ms"


def test_vad_parameters_are_honoured():
    session = make_session()
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "prefix_padding_ms": 100, "silence_duration_ms": 200,
                           "create_response": False}}}}}, 0.0)
    out = feed_audio(session, audio_turn_input())
    assert types(out) == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                          "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert out[0]["audio_start_ms"] == 200 and out[1]["audio_end_ms"] == 1100
    # A threshold above the tone's level hears nothing.
    quiet = make_session()
    quiet.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": 0.99}}}}}, 0.0)
    assert feed_audio(quiet, audio_turn_input()) == []


def test_text_only_output_answers_audio_input():
    session = make_session()
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}, 0)
    out = feed_audio(session, audio_turn_input())
    assert "response.output_audio.delta" not in types(out)
    text = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta")
    assert text == "You said: audio of 1400 ms"


def test_barge_in_cancels_the_response():
    session = make_session(pace=1.0)
    out = feed_audio(session, audio_turn_input(), now=0.0)
    assert "response.created" in types(out)
    response_id = next(e for e in out if e["type"] == "response.created")["response"]["id"]
    assert session.handle_timer(0.1)  # one more chunk played
    interrupt = feed_audio(session, pcm16_tone(100), now=0.15)
    assert types(interrupt)[0] == "input_audio_buffer.speech_started"
    done = next(e for e in interrupt if e["type"] == "response.done")["response"]
    assert done["id"] == response_id and done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "turn_detected"
    assert session.get_timer() is None
    # The client truncates what it played: 200 ms (two chunks).
    assistant = session.items[-1]
    out = session.receive_event({"type": "conversation.item.truncate", "item_id": assistant["id"],
                                 "content_index": 0, "audio_end_ms": 200}, 0.2)
    assert types(out) == ["conversation.item.truncated"]
    assert assistant["content"][0]["transcript"] == "You said:"
    too_far = session.receive_event({"type": "conversation.item.truncate", "item_id": assistant["id"],
                                     "content_index": 0, "audio_end_ms": 5000}, 0.2)
    assert errors(too_far)[0]["param"] == "audio_end_ms"


def test_interrupt_response_false_keeps_the_response():
    session = make_session(pace=1.0)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "interrupt_response": False}}}}}, 0.0)
    feed_audio(session, audio_turn_input(), now=0.0)
    interrupt = feed_audio(session, pcm16_tone(100), now=0.15)
    assert types(interrupt)[0] == "input_audio_buffer.speech_started"
    assert "response.done" not in types(interrupt)  # only due audio chunks went out
    assert session.get_timer() is not None


def test_manual_commit_and_clear_without_vad():
    session = make_session()
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": None}}}}, 0.0)
    assert feed_audio(session, pcm16_tone(80)) == []
    short = session.receive_event({"type": "input_audio_buffer.commit"}, 0.0)
    assert errors(short)[0]["code"] == "input_audio_buffer_commit_empty"
    feed_audio(session, pcm16_tone(40))
    out = session.receive_event({"type": "input_audio_buffer.commit"}, 0.0)
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert session.receive_event({"type": "input_audio_buffer.commit"}, 0.0)[0]["type"] == "error"
    feed_audio(session, pcm16_tone(200))
    assert types(session.receive_event({"type": "input_audio_buffer.clear"}, 0.0)) == ["input_audio_buffer.cleared"]
    assert session.receive_event({"type": "input_audio_buffer.commit"}, 0.0)[0]["type"] == "error"
    reply = session.receive_event({"type": "response.create", "response": {"output_modalities": ["text"]}}, 0.0)
    text = "".join(e["delta"] for e in reply if e["type"] == "response.output_text.delta")
    assert text == "You said: audio of 120 ms"


def test_g711_input_and_output():
    session = make_session(pace=0.0)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcma"}}}}}, 0.0)
    from standin.model.audio import AudioFormat
    import numpy as np
    ulaw = AudioFormat("audio/pcmu")
    tone = np.frombuffer(pcm16_tone(600, rate=8000), dtype="<i2") / 32768
    speech = ulaw.encode(np.zeros(2400)) + ulaw.encode(tone) + ulaw.encode(np.zeros(5600))
    out = []
    for i in range(0, len(speech), 160):
        out += session.receive_event(append(speech[i : i + 160]), 0.0)
    assert types(out)[:2] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]
    assert out[1]["audio_end_ms"] == 1400
    chunk = base64.b64decode(next(e for e in out if e["type"] == "response.output_audio.delta")["delta"])
    assert len(chunk) == 800  # 100 ms of 8 kHz G.711


def test_retrieve_delete_and_history_restore():
    session = make_session()
    history = []
    previous = "root"
    for i, (role, text) in enumerate([("user", "hi"), ("assistant", "hello"), ("user", "how are you")]):
        kind = "input_text" if role == "user" else "output_text"
        history.append({"type": "conversation.item.create", "previous_item_id": previous,
                        "item": {"id": f"item_h{i}", "type": "message", "role": role,
                                 "content": [{"type": kind, "text": text}]}})
        previous = f"item_h{i}"
    for event in history:
        assert errors(session.receive_event(event, 0.0)) == []
    assert [i["id"] for i in session.items] == ["item_h0", "item_h1", "item_h2"]
    (retrieved,) = session.receive_event({"type": "conversation.item.retrieve", "item_id": "item_h1"}, 0.0)
    assert retrieved["type"] == "conversation.item.retrieved" and retrieved["item"]["content"][0]["text"] == "hello"
    (deleted,) = session.receive_event({"type": "conversation.item.delete", "item_id": "item_h1"}, 0.0)
    assert deleted == {"type": "conversation.item.deleted", "event_id": deleted["event_id"], "item_id": "item_h1"}
    assert [i["id"] for i in session.items] == ["item_h0", "item_h2"]
    assert session.received[0]["item"]["id"] == "item_h0"


def test_received_events_elide_audio():
    session = make_session()
    session.receive_event(append(pcm16_silence(20)), 0.0)
    assert session.received == [{"type": "input_audio_buffer.append", "audio": "<1280 base64 chars>"}]


def test_delayed_transcription_arrives_by_timer():
    session = make_session(transcription_delay_s=0.5, pace=0.0)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "create_response": False}}}}}, 0.0)
    out = feed_audio(session, audio_turn_input(), now=1.0)
    assert "conversation.item.input_audio_transcription.completed" not in types(out)
    assert session.get_timer() == pytest.approx(1.5)
    delta, late = session.handle_timer(1.5)
    assert delta["type"] == "conversation.item.input_audio_transcription.delta"
    assert late["type"] == "conversation.item.input_audio_transcription.completed"


def test_session_update_merges_and_locks_voice_after_audio():
    session = make_session(pace=0.0)
    (updated,) = session.receive_event({"type": "session.update", "session": {
        "type": "realtime", "instructions": "be brief", "audio": {"output": {"voice": "marin"}}}}, 0.0)
    s = updated["session"]
    assert s["instructions"] == "be brief" and s["audio"]["output"]["voice"] == "marin"
    assert s["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # untouched
    session.receive_event(user_text("hi"), 0.0)
    session.receive_event({"type": "response.create"}, 0.0)
    out = session.receive_event({"type": "session.update", "session": {
        "type": "realtime", "audio": {"output": {"voice": "cedar"}}}}, 0.0)
    assert errors(out)[0]["param"] == "session.audio.output.voice"
    assert json.dumps(session.session)  # stays JSON-serialisable
