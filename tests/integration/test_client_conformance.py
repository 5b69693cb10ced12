"""Every client event rtfleet writes validates against the official SDK's client event models."""

import typing
from typing import Annotated

import trio
from pydantic import Field, TypeAdapter

import openai.types.realtime as rt
from actors.events import ConnectionState, EventKind
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, FaultPlan

CLIENT_EVENT = TypeAdapter(Annotated[typing.get_args(rt.RealtimeClientEvent)[0], Field(discriminator="type")])


async def test_every_sent_client_event_validates_against_the_sdk_models(audio_turn):
    server = EmbeddedServer(api_keys={"sk-local-test"})
    config = {"instructions": "Answer briefly.", "voice": "marin", "output_modalities": ["audio"],
              "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
              "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}}
    async with open_fleet(server=server, api_key="sk-local-test", config=config,
                          connect_params={"echo_audio": True}) as fleet:
        sent = fleet.subscribe(kinds=[EventKind.SENT], buffer=100_000)
        retrieved = fleet.subscribe(kinds=[EventKind.SENT], types=["conversation.item.retrieve"], buffer=10)
        done = fleet.subscribe(types=["response.done"], buffer=1000)
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        await fleet.send(sid, user_text("Hello"))
        await fleet.send(sid, {"type": "response.create", "response": {"output_modalities": ["text"]}})
        with trio.fail_after(10):
            await done.receive()
        for event in audio_turn():
            await fleet.send(sid, event)
        with trio.fail_after(10):
            final = await done.receive()
        item_id = final.payload["response"]["output"][0]["id"]
        await fleet.send(sid, {"type": "conversation.item.truncate", "item_id": item_id,
                               "content_index": 0, "audio_end_ms": 100})
        await fleet.send(sid, {"type": "input_audio_buffer.clear"})
        await fleet.send(sid, {"type": "conversation.item.retrieve", "item_id": item_id})
        # They are written before the fault is armed (a drop may lose control events in flight).
        with trio.fail_after(10):
            await retrieved.receive()
        # A drop makes the session restore itself: session.update + replayed items.
        server.faults = FaultPlan(drop_after_events=1)
        await fleet.send(sid, user_text("after the drop"))
        await fleet.send(sid, {"type": "response.create"})
        await fleet.wait_state(sid, ConnectionState.RECONNECTING)
        server.faults = FaultPlan()
        with trio.fail_after(10):
            while True:
                event = await done.receive()
                if event.payload["response"]["status"] == "completed":
                    break
        await fleet.send(sid, {"type": "response.cancel"})
        await fleet.send(sid, {"type": "conversation.item.delete", "item_id": item_id})
        await fleet.remove_session(sid)
    events = []
    while True:
        try:
            events.append(sent.receive_nowait().payload)
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    kinds = {e["type"] for e in events}
    assert {"session.update", "conversation.item.create", "response.create", "input_audio_buffer.append",
            "conversation.item.truncate", "input_audio_buffer.clear", "conversation.item.retrieve",
            "response.cancel", "conversation.item.delete"} <= kinds, kinds
    assert fleet.links[sid].core.counters.replayed_items >= 2
    for event in events:
        CLIENT_EVENT.validate_python(event)
