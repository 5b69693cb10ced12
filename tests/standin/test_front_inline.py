"""The lean front's inline receiving (``rtfleet.inline_receive``, standin/front/lean.py and
mux.py) over loopback: messages reach the app's handler or its task, never both, in the order
sent; a failure in the handler is the app task's; the embedded server's sessions use it and
still push back on a client that does not read."""

from __future__ import annotations

import json
import os
import socket
from typing import Callable

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from standin import EmbeddedServer, ModelConfig
from standin.front.lean import FLUSH, INLINE_RECEIVE, INLINE_SEND, serve_front
from standin.testing import pcm16_silence, pcm16_tone, split_chunks

pytestmark = pytest.mark.skipif(not hasattr(__import__("select"), "epoll"),
                                reason="inline receiving needs epoll (Linux)")


def _app(log: list[tuple[str, str]], done: trio.Event, failures: list[BaseException]):
    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        assert INLINE_RECEIVE in scope["extensions"]
        await send({"type": "websocket.accept"})

        def handler(text: str) -> bool:
            if text == "boom":
                raise ValueError("handler failed")
            if text.startswith("slow"):
                return False
            log.append(("inline", text))
            return True

        await send({"type": INLINE_RECEIVE, "handler": handler})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                log.append(("task", message.get("text") or message.get("bytes")))
        except ValueError as exc:
            failures.append(exc)
            await send({"type": "websocket.close", "code": 1011})
        finally:
            done.set()
    return app


async def test_messages_reach_the_handler_or_the_task_in_the_order_sent(nursery):
    log: list[tuple[str, str]] = []
    done = trio.Event()
    base = await nursery.start(serve_front, _app(log, done, []), "127.0.0.1", 0)
    sent: list[str | bytes] = []
    async with open_websocket_url(base.replace("http", "ws") + "/x") as ws:
        for k in range(60):
            message: str | bytes = f"m{k}"
            if k % 7 == 3:
                message = f"slow{k}"  # refused by the handler: the task gets it
            elif k % 11 == 5:
                message = f"b{k}".encode()  # binary: always the task's
            sent.append(message)
            await ws.send_message(message)
            if k % 5 == 0:
                await trio.sleep(0.005)  # some arrive alone, some together
            if k == 30:
                await ws.ping(b"p")  # a control frame among them
    with trio.fail_after(10):
        await done.wait()
    assert [text for _, text in log] == sent
    inline = {text for where, text in log if where == "inline"}
    assert inline and all(isinstance(t, str) and not t.startswith("slow") for t in inline)
    assert {text for where, text in log if where == "task"} >= {m for m in sent if isinstance(m, bytes)}


async def _connected(base: str) -> tuple[ClientProtocol, trio.SocketStream]:
    """A sans-I/O WebSocket client past its handshake with the front at ``base`` (trio-websocket
    leaks its socket when the server closes first)."""
    client = ClientProtocol(parse_uri(base.replace("http", "ws") + "/x"))
    client.send_request(client.connect())
    stream = await trio.open_tcp_stream("127.0.0.1", int(base.rsplit(":", 1)[1]))
    await stream.send_all(b"".join(client.data_to_send()))
    with trio.fail_after(10):
        while not client.events_received():  # the handshake's answer
            client.receive_data(await stream.receive_some(65536))
    return client, stream


async def _texts_until(client: ClientProtocol, stream: trio.SocketStream,
                       done: Callable[[list[bytes]], bool]) -> list[bytes]:
    """The text messages the client reads until ``done(texts)``."""
    texts: list[bytes] = []
    while not done(texts):
        client.receive_data(await stream.receive_some(65536))
        texts += [e.data for e in client.events_received()]
    return texts


async def test_an_exception_in_the_handler_is_raised_in_the_apps_task(nursery):
    log: list[tuple[str, str]] = []
    done = trio.Event()
    failures: list[BaseException] = []
    base = await nursery.start(serve_front, _app(log, done, failures), "127.0.0.1", 0)
    client, stream = await _connected(base)
    async with stream:
        with trio.fail_after(10):
            for text in ("before", "boom", "after"):
                client.send_text(text.encode())
            await stream.send_all(b"".join(client.data_to_send()))
            await done.wait()
            while client.close_rcvd is None:
                client.receive_data(await stream.receive_some(65536))
    assert [str(f) for f in failures] == ["handler failed"]
    assert log == [("inline", "before")]
    assert client.close_rcvd.code == 1011


@pytest.mark.parametrize("engine", ["lean", "hypercorn"])
async def test_a_streaming_session_is_read_inline_with_the_same_turn(nursery, engine):
    """The same turn whether the front reads inline (lean) or not (hypercorn)."""
    server = EmbeddedServer(api_keys={"sk-inline"}, engine=engine)
    await nursery.start(server.serve)
    url = server.base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    audio = pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700)
    seen: list[str] = []
    async with open_websocket_url(url, extra_headers=[(b"Authorization", b"Bearer sk-inline")]) as ws:
        for chunk in split_chunks(audio, 20):
            await ws.send_message(json.dumps({"type": "input_audio_buffer.append",
                                              "audio": __import__("base64").b64encode(chunk).decode()}))
        with trio.fail_after(20):
            while "response.done" not in seen:
                seen.append(json.loads(await ws.get_message())["type"])
    assert seen[:4] == ["session.created", "input_audio_buffer.speech_started",
                        "input_audio_buffer.speech_stopped", "input_audio_buffer.committed"]
    record = server.connections[-1]
    assert record.received == [{"type": "input_audio_buffer.append", "count": 80,
                                "audio": f"<{80 * 1280} base64 chars>"}]
    assert server.stats.client_events_received == 80


@pytest.mark.parametrize("engine", ["lean", "hypercorn"])
async def test_a_streaming_sessions_answers_are_written_where_they_are_made(nursery, engine, monkeypatch):
    """Under the lean front an append's and a deadline's events are written at once (the
    front's inline send), none through the sender's queue; counted sent all the same."""
    from standin.sessions import websocket

    queued: list[str] = []
    put = websocket._OutQueue.put
    monkeypatch.setattr(websocket._OutQueue, "put", lambda self, out: (
        queued.append(out.event["type"] if out.event else "marker"), put(self, out))[1])
    server = EmbeddedServer(api_keys={"sk-inline"}, engine=engine)
    await nursery.start(server.serve)
    url = server.base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    seen: list[str] = []
    async with open_websocket_url(url, extra_headers=[(b"Authorization", b"Bearer sk-inline")]) as ws:
        for chunk in split_chunks(pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700), 20):
            await ws.send_message(json.dumps({"type": "input_audio_buffer.append",
                                              "audio": __import__("base64").b64encode(chunk).decode()}))
        with trio.fail_after(20):
            while "rate_limits.updated" not in seen:
                seen.append(json.loads(await ws.get_message())["type"])
    assert seen.count("response.output_audio.delta") >= 3 and seen[-2] == "response.done"
    assert server.connections[-1].events_sent == len(seen) == server.stats.events_sent
    assert queued == ([] if engine == "lean" else seen)


@pytest.mark.parametrize("engine,words,pad", [("lean", 40, 0), ("hypercorn", 40, 0),
                                              ("lean", 4, 30_000)])
async def test_a_client_that_does_not_read_is_pushed_back_and_loses_nothing(nursery, engine, words, pad):
    """Text responses at full speed (pace 0) while the client reads nothing: once everything is
    blocked, the server has stopped reading (fewer requests read than sent) with its queue held
    near OUT_LIMIT; once the client reads, every response arrives whole and in order. (Responses
    of a few words are written inline until the socket is full; large metadata fills it.)"""
    server = EmbeddedServer(api_keys={"sk-inline"}, model_config=ModelConfig(pace=0.0), engine=engine)
    await nursery.start(server.serve)
    url = server.base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    total = 600

    def create(k: int) -> str:  # a large event_id fills the socket buffers in fewer requests
        return json.dumps({"type": "response.create", "event_id": f"e{k}-" + "x" * 60_000, "response": {
            "conversation": "none", "output_modalities": ["text"], "metadata": {"k": str(k), "pad": "p" * pad},
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "word " * words}]}]}})

    sent = [0]
    async with open_websocket_url(url, extra_headers=[(b"Authorization", b"Bearer sk-inline")],
                                  max_message_size=2**24) as ws:
        async def send_all() -> None:
            for k in range(total):
                await ws.send_message(create(k))
                sent[0] += 1

        nursery.start_soon(send_all)
        with trio.fail_after(60):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        session = server.connections[-1].session
        read = len(session.received)
        assert 0 < read < total and sent[0] < total  # pushed back: nobody reads, nobody sends
        queued = server.connections[-1]
        assert queued.events_sent < read * (10 + words)  # the events of the requests read are not all out
        done: list[str] = []
        with trio.fail_after(120):
            while len(done) < total:
                event = json.loads(await ws.get_message())
                assert event["type"] != "error", event
                if event["type"] == "response.done":
                    done.append(event["response"]["metadata"]["k"])
    assert done == [str(k) for k in range(total)]


async def test_sends_marked_more_are_written_with_the_next_plain_send(nursery):
    release = trio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        for k in range(3):
            await send({"type": "websocket.send", "text": f"held{k}", "more": True})
        await release.wait()
        await send({"type": "websocket.send", "text": "flush"})
        await receive()

    base = await nursery.start(serve_front, app, "127.0.0.1", 0)
    client, stream = await _connected(base)
    async with stream:
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            peek = socket.socket(fileno=os.dup(stream.socket.fileno()))
            with peek, pytest.raises(BlockingIOError):  # nothing was written for the held sends
                peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            release.set()
            texts = await _texts_until(client, stream, lambda t: len(t) >= 4)
    assert texts == [b"held0", b"held1", b"held2", b"flush"]


async def test_messages_sent_now_keep_their_place_among_sent_ones(nursery):
    """``send_now`` writes at once after what was written before; while a send marked ``more``
    holds its frame it does nothing (None), and the app sends the usual way."""
    results: list[int | None] = []
    go = trio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        send_now = scope["extensions"][INLINE_SEND]["send_now"]
        await go.wait()  # the client is past its handshake
        await send({"type": "websocket.send", "text": "a"})
        results.append(send_now(["b", "c" * 5_000]))
        await send({"type": "websocket.send", "text": "d", "more": True})
        results.append(send_now(["e"]))
        await send({"type": "websocket.send", "text": "e"})
        results.append(send_now(["f"]))
        await send({"type": "websocket.send", "text": "g"})
        await receive()

    base = await nursery.start(serve_front, app, "127.0.0.1", 0)
    client, stream = await _connected(base)
    go.set()
    async with stream:
        with trio.fail_after(10):
            texts = await _texts_until(client, stream, lambda t: len(t) >= 7)
    assert texts == [b"a", b"b", b"c" * 5_000, b"d", b"e", b"f", b"g"]
    assert results == [0, None, 0]


async def test_what_the_socket_did_not_take_is_held_and_written_by_a_flush(nursery):
    """A client that does not read: ``send_now`` writes until the socket is full, holds the rest
    (its count returned), does nothing more until a flush (None), and the flush writes the rest
    once the client reads: every message arrives whole and in order."""
    results: list[int | None] = []
    flushed = trio.Event()
    message = "m" * 50_000

    go = trio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        send_now = scope["extensions"][INLINE_SEND]["send_now"]
        await go.wait()  # the client is past its handshake
        for k in range(2_000):  # 100 MB at most: loopback's buffers hold a few MB
            held = send_now([f"{k:05d}" + message])
            results.append(held)
            if held:
                break
        results.append(send_now(["late"]))
        await send({"type": FLUSH})
        flushed.set()
        await send({"type": "websocket.send", "text": "last"})
        await receive()

    base = await nursery.start(serve_front, app, "127.0.0.1", 0)
    client, stream = await _connected(base)
    go.set()
    async with stream:
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert not flushed.is_set() and results[-1] is None and results[-2] > 0
        assert set(results[:-2]) == {0}
        with trio.fail_after(30):
            texts = await _texts_until(client, stream, lambda t: bool(t) and t[-1] == b"last")
    sent = len(results) - 1
    assert texts == [f"{k:05d}{message}".encode() for k in range(sent)] + [b"last"]
    assert flushed.is_set()


async def test_paced_audio_stops_while_the_client_does_not_read_and_resumes_whole(nursery, autojump_clock):
    """An answer's chunks are due one every 100 ms (the run's deadline task) while the client
    reads nothing: once the socket and then the queue are full (OUT_LIMIT), the session's
    deadlines are no longer handled (its answer does not advance however long it waits);
    once the client reads, every chunk arrives, in order, and the answer completes."""
    from standin.sessions.websocket import OUT_LIMIT

    server = EmbeddedServer(api_keys={"sk-inline"})
    await nursery.start(server.serve)
    url = server.base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    words = 4000
    async with open_websocket_url(url, extra_headers=[(b"Authorization", b"Bearer sk-inline")],
                                  max_message_size=2**24) as ws:
        await ws.send_message(json.dumps({"type": "response.create", "response": {
            "conversation": "none", "output_modalities": ["audio"],
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "word " * words}]}]}}))
        await trio.sleep(600)  # virtual: far longer than the answer (400 s)
        record = server.connections[-1]
        run = record.session._runs[0]
        stalled_at = run._next
        assert 0 < stalled_at < words  # neither nothing nor everything: stopped
        await trio.sleep(60)
        assert run._next == stalled_at and record.events_sent < stalled_at * 2 - OUT_LIMIT // 2
        chunks = 0
        with trio.fail_after(3600):
            while True:
                event = json.loads(await ws.get_message())
                if event["type"] == "response.output_audio.delta":
                    chunks += 1
                if event["type"] == "response.done":
                    break
    assert chunks == words + 2 and event["response"]["status"] == "completed"
