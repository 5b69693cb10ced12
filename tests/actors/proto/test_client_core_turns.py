"""Audio turns in flight at a drop are re-sent on the next connection (actors/proto/turns.py)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from actors.proto.client import ClientCore
from actors.proto.session import SessionConfig
from actors.proto.turns import TurnLost

_ids = itertools.count(1)


def server(core: ClientCore, kind: str, **fields: Any) -> list:
    return core.receive(json.dumps({"type": kind, "event_id": f"event_{next(_ids)}", **fields}))


def connect(core: ClientCore, number: int) -> list[dict[str, Any]]:
    core.connection_started()
    server(core, "session.created", session={"id": f"sess_{number}", "expires_at": 3600})
    return core.outgoing()


def append(core: ClientCore, n: int, chars: int = 1000) -> None:
    for i in range(n):
        core.submit({"type": "input_audio_buffer.append", "audio": chr(ord("A") + i % 26) * chars})


def user_item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}


def response(response_id: str, status: str) -> dict[str, Any]:
    return {"id": response_id, "object": "realtime.response", "status": status, "output": []}


def audio_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["audio"] for e in events if e["type"] == "input_audio_buffer.append"]


def test_speech_appended_but_not_committed_is_re_sent_after_the_restore():
    core = ClientCore()
    connect(core, 1)
    append(core, 5)
    server(core, "input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=0)
    sent = core.outgoing()
    core.connection_lost()
    again = connect(core, 2)
    assert audio_of(again) == audio_of(sent)
    assert core.counters.replayed_turns == 1
    assert core.last_restore is not None and core.last_restore.replayed_turns == 1


def test_audio_before_speech_started_keeps_only_its_tail_and_re_sends_it_not_as_a_turn():
    core = ClientCore()
    core.turns.pre_speech_bytes = 3000
    connect(core, 1)
    append(core, 10)
    sent = core.outgoing()
    assert core.turns.open.size <= 3000
    core.connection_lost()
    # the server may have heard speech start in it without the client hearing so (the event
    # comes after enough speech, or the drop took it): the tail goes again, as the turn's start
    assert audio_of(connect(core, 2)) == audio_of(sent)[-3:]
    assert core.counters.replayed_turns == 0 and core.turns.resent_pre_speech == 3
    # still not a turn: the tail keeps being trimmed until the server says speech started
    append(core, 10)
    core.outgoing()
    assert core.turns.open.size <= 3000


def test_an_utterance_whose_speech_started_was_lost_in_the_drop_reaches_the_server_whole():
    """The one failure of the 2-hour soak: the play step's first 0.6 s went out, the
    connection dropped before the client heard ``speech_started``, and the new connection got
    only the utterance's tail, in which the VAD heard no turn: nothing ever answered."""
    core = ClientCore()
    connect(core, 1)
    append(core, 30)  # 0.6 s of the utterance's start, about 30 kB of base64: under 2 s
    start = audio_of(core.outgoing())
    core.connection_lost()
    append(core, 20)  # the rest, queued during the outage
    again = audio_of(connect(core, 2))
    assert again == start + [chr(ord("A") + i % 26) * 1000 for i in range(20)]


def test_a_committed_unanswered_turn_runs_again_from_its_audio_and_is_answered_once():
    core = ClientCore()
    connect(core, 1)
    append(core, 4)
    sent = core.outgoing()
    server(core, "input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=0)
    server(core, "input_audio_buffer.committed", item_id="item_u1", previous_item_id=None)
    server(core, "conversation.item.added", previous_item_id=None, item=user_item("item_u1"))
    server(core, "response.created", response=response("resp_1", "in_progress"))
    core.connection_lost()
    again = connect(core, 2)
    kinds = [e["type"] for e in again]
    # the user item is not replayed (its audio is), and the server's VAD answers it: no re-issue
    assert "conversation.item.create" not in kinds
    assert "response.create" not in kinds
    assert audio_of(again) == audio_of(sent)
    assert core.counters.replayed_turns == 1 and core.counters.reissued_responses == 0


def test_an_answered_turn_is_history_and_is_not_re_sent():
    core = ClientCore()
    connect(core, 1)
    append(core, 4)
    core.outgoing()
    server(core, "input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=0)
    server(core, "input_audio_buffer.committed", item_id="item_u1", previous_item_id=None)
    server(core, "response.created", response=response("resp_1", "in_progress"))
    server(core, "response.done", response=response("resp_1", "completed"))
    core.connection_lost()
    assert audio_of(connect(core, 2)) == []
    assert core.counters.replayed_turns == 0


def test_a_manual_turn_is_re_sent_with_its_commit_and_its_response_create_once():
    core = ClientCore(SessionConfig.from_dict({"type": "realtime",
                                               "audio": {"input": {"turn_detection": None}}}))
    connect(core, 1)
    server(core, "session.updated", session={"type": "realtime"})
    append(core, 3)
    core.submit({"type": "input_audio_buffer.commit"})
    core.submit({"type": "response.create"})
    sent = core.outgoing()
    request = [e for e in sent if e["type"] == "response.create"][0]
    core.connection_lost()  # the response.create was never acknowledged
    again = connect(core, 2)
    kinds = [e["type"] for e in again]
    assert audio_of(again) == audio_of(sent)
    assert kinds.count("input_audio_buffer.commit") == 1
    assert [e for e in again if e["type"] == "response.create"] == [request]
    # the commit and the request come after the audio they close
    assert kinds.index("input_audio_buffer.commit") > max(
        i for i, k in enumerate(kinds) if k == "input_audio_buffer.append")
    assert kinds.index("response.create") > kinds.index("input_audio_buffer.commit")
    # the request is acknowledged by the next response.created
    server(core, "response.created", response=response("resp_2", "in_progress"))
    assert [e for e in core.pending if e["type"] == "response.create"] == []


def test_a_turn_too_long_to_keep_is_reported_lost_at_once():
    core = ClientCore()
    core.turns.max_bytes = 5000
    connect(core, 1)
    server(core, "input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=0)
    append(core, 10)
    core.outgoing()
    core.connection_lost()
    again = connect(core, 2)
    assert audio_of(again) == []
    notices = server(core, "session.updated", session={"type": "realtime"})
    lost = [n for n in notices if isinstance(n, TurnLost)]
    assert len(lost) == 1 and lost[0].code == "turn_lost"
    assert core.counters.lost_turns == 1


def test_a_second_drop_replays_the_turn_again():
    core = ClientCore()
    connect(core, 1)
    server(core, "input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=0)
    append(core, 3)
    sent = core.outgoing()
    core.connection_lost()
    connect(core, 2)
    core.connection_lost()
    third = connect(core, 3)
    assert audio_of(third) == audio_of(sent)
    assert core.counters.replayed_turns == 2


def test_a_transcription_session_turn_is_answered_by_its_own_transcript() -> None:
    """Transcripts answer turns by item id, in any order; a response.done answers nothing (a
    transcription session has none); the restore re-sends only the untranscribed audio, and no
    conversation."""
    core = ClientCore(SessionConfig(type="transcription"))
    connect(core, 1)
    for item_id in ("item_a", "item_b", "item_c"):
        server(core, "input_audio_buffer.speech_started", audio_start_ms=0, item_id=item_id)
        append(core, 3)
        core.outgoing()
        server(core, "input_audio_buffer.committed", previous_item_id=None, item_id=item_id)
        server(core, "conversation.item.added", previous_item_id=None, item=user_item(item_id))
    server(core, "conversation.item.input_audio_transcription.completed", item_id="item_b",
           content_index=0, transcript="b", usage={"type": "duration", "seconds": 1})
    server(core, "conversation.item.input_audio_transcription.failed", item_id="item_a",
           content_index=0, error={"code": "x", "message": "no"})
    server(core, "response.done", response=response("resp_x", "completed"))  # answers nothing here
    assert [t.item_id for t in core.turns.committed] == ["item_c"]
    core.connection_lost()
    restore = connect(core, 2)
    assert [e["type"] for e in restore] == ["session.update"] + ["input_audio_buffer.append"] * 3
    assert restore[0]["session"]["type"] == "transcription"
    assert core.counters.replayed_turns == 1 and core.counters.lost_turns == 0
