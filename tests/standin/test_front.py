"""standin/front/lean.py, the lean HTTP/1.1 + WebSocket front, over real loopback sockets."""

import json
import logging

import pytest
import trio
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from actors.wsconn import WsRejected, ws_handshake
from standin import EmbeddedServer
from standin.front.lean import serve_front


async def _raw(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, return everything the server answers until it closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(path: str, body: bytes, *, key: str = "sk-front") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer(api_keys={"sk-front"})
    await nursery.start(server.serve)
    return server


def _port(server: EmbeddedServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


async def test_pipelined_requests_on_one_connection_get_answers_in_order(server):
    body = json.dumps({"session": {"type": "realtime", "model": "gpt-realtime"}}).encode()
    with trio.fail_after(10):
        answer = await _raw(_port(server), _post("/v1/realtime/client_secrets", body)
                            + _post("/nowhere", b"{}"))
    first, _, rest = answer.partition(b"HTTP/1.1 404")
    assert first.startswith(b"HTTP/1.1 200") and b'"value": "ek_' in first
    assert b"not_found" in rest
    assert server.stats.http_requests == 2


async def test_a_body_over_the_limit_is_413_and_a_bad_request_400_and_the_server_lives_on(server):
    with trio.fail_after(10):
        big = await _raw(_port(server), _post("/v1/realtime/client_secrets", b"x" * (17 * 2**20)))
        bad = await _raw(_port(server), b"NOT HTTP AT ALL\r\n\r\n")
        ok = await _raw(_port(server), _post("/nowhere", b"{}"))
    assert big.startswith(b"HTTP/1.1 413")
    assert bad.startswith(b"HTTP/1.1 400")
    assert ok.startswith(b"HTTP/1.1 404")


async def test_an_upgrade_to_another_protocol_is_declined_with_a_normal_answer(server):
    with trio.fail_after(10):
        answer = await _raw(_port(server), b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\n"
                                           b"upgrade: h2c\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")


async def test_a_websocket_to_an_unknown_path_is_refused_with_the_apps_404(server):
    # the app answers with a JSON 404 through ASGI's websocket.http.response extension
    stream = await trio.open_tcp_stream("127.0.0.1", _port(server))
    async with stream:
        with pytest.raises(WsRejected) as refused:
            await ws_handshake(stream, "x", "/elsewhere", headers=[], max_message_size=2**20)
    assert refused.value.status == 404


async def test_a_fragmented_client_message_reaches_the_app_whole(server):
    protocol = ClientProtocol(parse_uri("ws://x/v1/realtime?model=gpt-realtime"))
    request = protocol.connect()
    request.headers["Authorization"] = "Bearer sk-front"
    protocol.send_request(request)
    stream = await trio.open_tcp_stream("127.0.0.1", _port(server))
    async with stream:
        await stream.send_all(b"".join(protocol.data_to_send()))
        with trio.fail_after(10):
            texts: list[str] = []
            while not any('"input_audio_buffer.cleared"' in t for t in texts):
                protocol.receive_data(await stream.receive_some(65536))
                for event in protocol.events_received():
                    if isinstance(event, Response):
                        protocol.send_text(b'{"type": "input_audio', fin=False)
                        protocol.send_continuation(b'_buffer.clear"}', fin=True)
                        await stream.send_all(b"".join(protocol.data_to_send()))
                    else:
                        texts.append(event.data.decode())
    assert [e["type"] for e in server.connections[-1].received] == ["input_audio_buffer.clear"]


async def test_a_failing_app_costs_only_its_own_connection(nursery, caplog):
    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    base = await nursery.start(serve_front, app, "127.0.0.1", 0)
    port = int(base.rsplit(":", 1)[1])
    with trio.fail_after(10):
        boom = await _raw(port, b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n")
        ok = await _raw(port, b"GET /fine HTTP/1.1\r\nhost: x\r\n\r\n")
    assert boom == b""
    assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"ok")
    assert any(r.levelno == logging.ERROR and "connection handler failed" in r.message for r in caplog.records)
