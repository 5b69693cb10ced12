"""Small helpers for the raw ASGI HTTP side: reading a bounded body, writing responses.

Errors use the OpenAI JSON shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_BODY", "error_body", "read_body", "respond", "respond_json"]

MAX_BODY = 1 << 20


async def read_body(receive: Any, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body; None when it is larger than ``limit``."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def error_body(message: str, code: str, *, param: str | None = None,
               type: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


async def respond(send: Any, status: int, body: bytes, content_type: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Any, status: int, payload: Any,
                       extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await respond(send, status, json.dumps(payload).encode(), "application/json", extra)
