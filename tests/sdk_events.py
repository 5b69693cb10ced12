"""Validation of server events against the official ``openai`` SDK's models
(``openai.types.realtime.RealtimeServerEvent``, discriminated on ``type``), shared by the tests
that drive the embedded server with an official client."""

from __future__ import annotations

import typing
from typing import Annotated, Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import Field, TypeAdapter

__all__ = ["validate_server_event"]


def _adapter() -> TypeAdapter:
    args = typing.get_args(RealtimeServerEvent)
    union = args[0] if args and typing.get_origin(args[0]) is typing.Union else RealtimeServerEvent
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


_SERVER_EVENT = _adapter()


def validate_server_event(raw: dict[str, Any]) -> Any:
    """The SDK model of ``raw``; raises pydantic's ValidationError when it does not conform."""
    return _SERVER_EVENT.validate_python(raw)
