from __future__ import annotations

import copy
import json

import pytest

from actors.proto.client import ClientCore
from actors.proto.realtime.beta import BETA_SERVER_TYPES, beta_session_to_ga, beta_to_ga_server, ga_session_to_beta, ga_to_beta_client
from actors.proto.errors import SessionConfigError
from actors.proto.realtime.events import SERVER_SCHEMAS
from actors.proto.session import SessionConfig


@pytest.mark.parametrize(("beta", "ga"), sorted(BETA_SERVER_TYPES.items()))
def test_server_type_renames(beta: str, ga: str) -> None:
    event = {"type": beta, "item_id": "i", "delta": "x"}
    original = copy.deepcopy(event)
    out = beta_to_ga_server(event)
    assert out["type"] == ga and ga in SERVER_SCHEMAS
    assert {k: v for k, v in out.items() if k != "type"} == {"item_id": "i", "delta": "x"}
    assert event == original  # not mutated


def test_unchanged_events_are_returned_as_is() -> None:
    for event in ({"type": "input_audio_buffer.cleared"}, {"type": "response.done", "response": {}},
                  {"type": "conversation.item.create", "item": {"role": "user", "content": []}}):
        assert beta_to_ga_server(event) is event
        assert ga_to_beta_client(event) is event


def test_beta_assistant_parts_and_session_objects() -> None:
    event = {"type": "conversation.item.created", "item": {
        "id": "i", "type": "message", "role": "assistant",
        "content": [{"type": "audio", "transcript": "hi"}, {"type": "text", "text": "yo"}]}}
    original = copy.deepcopy(event)
    out = beta_to_ga_server(event)
    assert out["type"] == "conversation.item.added"
    assert [p["type"] for p in out["item"]["content"]] == ["output_audio", "output_text"]
    assert event == original
    part = beta_to_ga_server({"type": "response.content_part.added", "part": {"type": "audio"}})
    assert part["part"] == {"type": "output_audio"}
    session = beta_to_ga_server({"type": "session.created", "session": {
        "id": "sess_1", "modalities": ["text", "audio"], "voice": "alloy",
        "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
        "turn_detection": None, "temperature": 0.8}})["session"]
    assert session == {"id": "sess_1", "type": "realtime", "temperature": 0.8,
                       "output_modalities": ["audio"],
                       "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                           "turn_detection": None},
                                 "output": {"voice": "alloy", "format": {"type": "audio/pcmu"}}}}


def test_ga_to_beta_client_events() -> None:
    config = SessionConfig(voice="ash", output_format="audio/pcmu",
                           transcription={"model": "whisper-1"})
    update = ga_to_beta_client(config.to_update_event())
    assert update["session"] == {
        "modalities": ["text", "audio"], "voice": "ash", "input_audio_format": "pcm16",
        "output_audio_format": "g711_ulaw", "turn_detection": {"type": "server_vad"},
        "input_audio_transcription": {"model": "whisper-1"},
    }
    response = ga_to_beta_client({"type": "response.create", "response": {
        "output_modalities": ["text"], "max_output_tokens": 10,
        "audio": {"output": {"voice": "ash", "format": {"type": "audio/pcma"}}}}})
    assert response["response"] == {"modalities": ["text"], "max_response_output_tokens": 10,
                                    "voice": "ash", "output_audio_format": "g711_alaw"}
    item = ga_to_beta_client({"type": "conversation.item.create", "item": {
        "role": "assistant", "content": [{"type": "output_text", "text": "t"}]}})
    assert item["item"]["content"] == [{"type": "text", "text": "t"}]


def test_beta_session_conflict_and_no_mutation() -> None:
    session = {"voice": "ash", "audio": {"output": {"voice": "ash", "speed": 1.0}}}
    original = copy.deepcopy(session)
    assert beta_session_to_ga(session)["audio"]["output"] == {"voice": "ash", "speed": 1.0}
    assert session == original
    with pytest.raises(SessionConfigError):
        beta_session_to_ga({"voice": "ash", "audio": {"output": {"voice": "echo"}}})
    speed = {"type": "realtime", "audio": {"output": {"speed": 1.1}}}
    assert ga_session_to_beta(speed) == {"speed": 1.1}


def test_client_core_in_beta_dialect() -> None:
    core = ClientCore(SessionConfig(voice="ash"), dialect="beta")
    core.submit({"type": "conversation.item.create", "item": {
        "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]}})
    core.connection_started()
    core.receive(json.dumps({"type": "session.created", "session": {"id": "s", "voice": "ash"}}))
    out = core.outgoing()
    assert out[0]["session"]["voice"] == "ash" and "audio" not in out[0]["session"]
    assert out[1]["item"]["content"][0]["type"] == "text"
    created = {"type": "conversation.item.created", "item": out[1]["item"]}
    [event] = core.receive(json.dumps(created))
    assert event["type"] == "conversation.item.added"
    assert event["item"]["content"][0]["type"] == "output_text"
    assert core.pending[0]["type"] == "session.update"  # the item was acknowledged
    [delta] = core.receive(json.dumps({"type": "response.audio_transcript.done", "response_id": "r",
                                       "item_id": "i", "content_index": 0, "transcript": "hey"}))
    assert delta["type"] == "response.output_audio_transcript.done"
    assert core.mirror.text("i") == "hey"
    [error] = core.receive(b"\x00")
    assert error.code == "binary_frame"
    with pytest.raises(ValueError):
        ClientCore(dialect="klingon")
