"""The dialect seam: ClientCore reaches what a protocol says only through its Dialect."""

from __future__ import annotations

import json

import attrs
import pytest

from actors.proto.client import ClientCore
from actors.proto.dialect import ACK_KINDS
from actors.proto.realtime.dialect import REALTIME


def test_the_realtime_dialect_acks_only_kinds_the_core_knows():
    assert set(REALTIME.acks.values()) <= ACK_KINDS
    assert ClientCore().protocol is REALTIME


def test_a_dialect_with_an_unknown_ack_kind_is_refused():
    odd = attrs.evolve(REALTIME, name="odd", acks={"session.started": "session_begun"})
    with pytest.raises(ValueError, match="session_begun"):
        ClientCore(protocol=odd)


def test_the_core_follows_the_dialects_ack_table():
    # a dialect whose session starts with another event name: the core becomes ready on it
    renamed = dict(REALTIME.acks)
    renamed["session.updated"] = renamed.pop("session.created")  # as if it started on this

    class Renamed:
        name, max_append_audio, acks = "renamed", REALTIME.max_append_audio, renamed

        def __getattr__(self, member):
            return getattr(REALTIME, member)

    core = ClientCore(protocol=Renamed())
    core.connection_started()
    core.receive(json.dumps({"type": "session.created", "event_id": "e1",
                             "session": {"id": "s1", "expires_at": 9}}))
    assert not core.ready
    core.receive(json.dumps({"type": "session.updated", "event_id": "e2",
                             "session": {"id": "s1", "expires_at": 9}}))
    assert core.ready and core.session_id == "s1"
