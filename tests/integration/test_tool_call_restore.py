"""A function call survives a reconnect: the fleet's restore replays the ``function_call`` item
(same ``call_id``) and the output the client had not yet delivered is sent once, so the model's
answer on the new connection uses it."""

import json

import trio

from actors.events import ConnectionState
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, FaultPlan

WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


async def test_call_whose_output_was_not_yet_sent_survives_a_drop():
    server = EmbeddedServer(api_keys={"sk-local-test"})
    async with open_fleet(server=server, api_key="sk-local-test", seed=4,
                          config={"output_modalities": ["text"], "tools": [WEATHER]}) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        calls = fleet.subscribe(sessions=[sid], types=["response.output_item.done"], buffer=100)
        # the response's last event: past it, the call's response is complete on the client
        ended = fleet.subscribe(sessions=[sid], types=["rate_limits.updated"], buffer=100)
        answers = fleet.subscribe(sessions=[sid], types=["response.output_text.done"], buffer=100)
        states = fleet.subscribe(sessions=[sid], kinds=["state"], buffer=100)
        await fleet.send(sid, user_text("call get_weather city=Paris", item_id="item_ask"))
        await fleet.send(sid, {"type": "response.create"})
        with trio.fail_after(10):
            call = (await calls.receive()).payload["item"]
            await ended.receive()
        assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"city": "Paris"}
        first_record = next(r for r in server.connections if r.session is not None)

        # The connection dies before the tool's output reaches the server: the server drops it
        # right after its next event (the answer to a retrieve), and the output and the
        # response.create are sent while the session is down.
        server.faults = FaultPlan(drop_after_events=1, drop_mode="abort")
        await fleet.send(sid, {"type": "conversation.item.retrieve", "item_id": "item_ask"})
        with trio.fail_after(10):
            while (await states.receive()).payload["to"] != "reconnecting":
                pass
        await fleet.send(sid, {"type": "conversation.item.create", "item": {
            "id": "item_out", "type": "function_call_output", "call_id": call["call_id"], "output": '{"temp": 18}'}})
        await fleet.send(sid, {"type": "response.create"})
        server.faults = FaultPlan()

        with trio.fail_after(20):
            answer = (await answers.receive()).payload
        assert answer["text"] == 'get_weather returned {"temp": 18}'
        assert fleet.status(sid).state is ConnectionState.CONNECTED and fleet.status(sid).reconnects >= 1
        assert "item_out" not in [i["id"] for i in first_record.items]  # it never reached the first connection
        record = next(r for r in server.connections
                      if r.session is not None and r.session.session["id"] == fleet.links[sid].core.session_id)
        kinds = [(i["type"], i.get("role")) for i in record.items]
        assert kinds == [("message", "user"), ("function_call", None), ("function_call_output", None),
                         ("message", "assistant")]
        replayed = record.items[1]
        assert (replayed["id"], replayed["call_id"], replayed["name"], replayed["arguments"]) == (
            call["id"], call["call_id"], "get_weather", call["arguments"])
        assert record.items[2]["id"] == "item_out"


async def test_call_cut_off_mid_response_is_made_again_on_the_new_connection():
    server = EmbeddedServer(api_keys={"sk-local-test"})
    async with open_fleet(server=server, api_key="sk-local-test", seed=5,
                          config={"output_modalities": ["text"], "tools": [WEATHER]}) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        calls = fleet.subscribe(sessions=[sid], types=["response.output_item.done"], buffer=100)
        states = fleet.subscribe(sessions=[sid], kinds=["state"], buffer=100)
        # the connection drops three events into the call's response (after its output item was added)
        server.faults = FaultPlan(drop_after_events=server.connections[0].events_sent + 4, drop_mode="abort")
        await fleet.send(sid, user_text("get_weather city=Lima", item_id="item_ask"))
        await fleet.send(sid, {"type": "response.create"})
        with trio.fail_after(10):
            while (await states.receive()).payload["to"] != "reconnecting":
                pass
        server.faults = FaultPlan()
        with trio.fail_after(20):
            call = (await calls.receive()).payload["item"]
        assert call["status"] == "completed" and json.loads(call["arguments"]) == {"city": "Lima"}
        record = next(r for r in server.connections
                      if r.session is not None and r.session.session["id"] == fleet.links[sid].core.session_id)
        assert record.index >= 2
        assert [i["type"] for i in record.items] == ["message", "function_call"]
        assert record.items[1]["call_id"] == call["call_id"]
