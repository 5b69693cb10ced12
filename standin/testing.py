"""Helpers for tests against the embedded server: a small WebSocket client and test audio.

:func:`open_client` is a trio-websocket client that owns its TCP stream, so the socket is closed
even when the server closes first (trio-websocket's ``open_websocket_url`` leaves it to the
garbage collector then, which ``filterwarnings = error`` turns into a failure).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

__all__ = ["RealtimeTestClient", "open_client", "pcm16_silence", "pcm16_tone", "split_chunks"]


class RealtimeTestClient:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(event))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def recv(self) -> dict[str, Any]:
        return json.loads(await self.ws.get_message())

    async def recv_until(self, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the first of type ``kind``."""
        events = []
        while True:
            event = await self.recv()
            events.append(event)
            if event["type"] == kind:
                return events

    async def append_audio(self, pcm: bytes, chunk_ms: int = 20, rate: int = 24_000) -> None:
        for chunk in split_chunks(pcm, chunk_ms, rate):
            await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})

    @property
    def close_code(self) -> int | None:
        reason = self.ws.closed
        return None if reason is None else reason.code


@asynccontextmanager
async def open_client(
    base_url: str,
    *,
    key: str | None = None,
    model: str | None = "gpt-realtime",
    call_id: str | None = None,
    auth: str = "header",  # "header" | "subprotocol"
    subprotocols: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
    max_message_size: int = 16 * 1024 * 1024,
) -> AsyncIterator[RealtimeTestClient]:
    """Connect to ``{base_url}/v1/realtime?model=…`` (``base_url`` is http:// or ws://)."""
    parts = urlsplit(base_url)
    params = {k: v for k, v in (("model", model), ("call_id", call_id)) if v is not None}
    resource = "/v1/realtime" + (f"?{urlencode(params)}" if params else "")
    extra = [(k.encode(), v.encode()) for k, v in headers]
    protocols = list(subprotocols)
    if key is not None and auth == "header":
        extra.append((b"authorization", f"Bearer {key}".encode()))
    elif key is not None:
        protocols += ["realtime", f"openai-insecure-api-key.{key}"]
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stream = await trio.open_tcp_stream(host, port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, host, resource, subprotocols=protocols or None,
                extra_headers=extra, message_queue_size=math.inf, max_message_size=max_message_size,
            )
            try:
                yield RealtimeTestClient(ws)
            finally:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def pcm16_tone(ms: int, hz: float = 440.0, amplitude: float = 0.3, rate: int = 24_000) -> bytes:
    n = np.arange(rate * ms // 1000)
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * n / rate)).astype("<i2").tobytes()


def pcm16_silence(ms: int, rate: int = 24_000) -> bytes:
    return bytes(2 * (rate * ms // 1000))


def split_chunks(pcm: bytes, chunk_ms: int = 20, rate: int = 24_000) -> list[bytes]:
    size = 2 * rate * chunk_ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
