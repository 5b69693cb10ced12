"""``EmbeddedServer.drop_connections``: the fault hook behind ``drop_connections`` on
``rtfleet serve`` (its timeline and ``POST /_rtfleet/faults``), over real sockets."""

from __future__ import annotations

import json
import random
from contextlib import AsyncExitStack

import pytest
import trio
from trio_websocket import ConnectionClosed

from standin import EmbeddedServer, FaultPlan, ModelConfig
from standin.testing import open_client


async def test_half_of_the_live_connections_drop_now_and_the_rest_live_on(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    with trio.fail_after(20):
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(open_client(server.base_url, key=server.api_key))
                       for _ in range(4)]
            for client in clients:
                assert json.loads(await client.ws.get_message())["type"] == "session.created"
            assert await server.drop_connections(50, random.Random(1)) == 2
            dropped, alive = [], []
            for client in clients:
                try:
                    await client.send({"type": "input_audio_buffer.clear"})
                    event = json.loads(await client.ws.get_message())
                except ConnectionClosed as exc:
                    dropped.append(exc.reason.code)
                else:
                    assert event["type"] == "input_audio_buffer.cleared"
                    alive.append(client)
            assert dropped == [1006, 1006] and len(alive) == 2  # aborted: no close frame
    assert server.stats.faults.drops["now"] == 2 and server.stats.faults.aborted == 2
    assert await server.drop_connections(100) == 0  # closed records are not dropped again


async def test_a_drop_now_uses_the_plans_close_code(nursery):
    code = 1012
    server = EmbeddedServer.with_generated_key(faults=FaultPlan(drop_mode="close", drop_close_code=code))
    await nursery.start(server.serve)
    with trio.fail_after(20):
        async with open_client(server.base_url, key=server.api_key) as client:
            await client.ws.get_message()
            assert await server.drop_connections() == 1
            with pytest.raises(ConnectionClosed) as closed:
                await client.ws.get_message()
    assert closed.value.reason.code == code
