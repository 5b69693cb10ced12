import trio

from actors.events import ConnectionEvent, EventKind, EventStamper, Transport
from orchestrator.router import EventFilter, Router


def _events(sid="a", transport=Transport.WEBSOCKET):
    stamper = EventStamper(sid, transport, lambda: 0.0)
    return stamper


async def test_filters_route_by_session_transport_kind_and_type():
    router = Router()
    everything = router.subscribe()
    only_b = router.subscribe(EventFilter.of(sessions="b"))
    only_done = router.subscribe(EventFilter.of(kinds=["server"], types=["response.done"]))
    only_sip = router.subscribe(EventFilter.of(transports=["sip"]))
    a, b = _events("a"), _events("b")
    router.publish(a.make(EventKind.SERVER, {"type": "response.created"}))
    router.publish(b.make(EventKind.SERVER, {"type": "response.done"}))
    router.publish(a.make(EventKind.STATE, {"from": "connecting", "to": "connected"}))
    assert [e.seq for e in _drain(everything)] == [1, 1, 2]
    assert [(e.session_id, e.type) for e in _drain(only_b)] == [("b", "response.done")]
    assert [(e.session_id, e.type) for e in _drain(only_done)] == [("b", "response.done")]
    assert _drain(only_sip) == []


async def test_slow_subscriber_drops_are_counted_and_reported_in_band():
    router = Router()
    slow = router.subscribe(buffer=2)
    fast = router.subscribe(buffer=100)
    stamper = _events()
    for i in range(5):
        router.publish(stamper.make(EventKind.SERVER, {"type": "response.output_text.delta", "i": i}))
    assert slow.dropped == 3 and router.dropped == 3
    assert [e.payload["i"] for e in _drain(slow)] == [0, 1]
    assert len(_drain(fast)) == 5 and fast.dropped == 0
    # once there is room the subscriber first learns how much it missed
    router.publish(stamper.make(EventKind.SERVER, {"type": "response.done"}))
    got = _drain(slow)
    assert got[0].kind is EventKind.DROPPED and got[0].payload["count"] == 3
    assert got[1].type == "response.done"
    assert slow.delivered == 3


async def test_closed_subscription_is_removed_and_iteration_ends():
    router = Router()
    sub = router.subscribe()
    router.publish(_events().make(EventKind.INFO, {}))
    sub.close()
    assert router.subscriptions == []
    seen = [e async for e in sub]
    assert len(seen) == 1
    router.publish(_events().make(EventKind.INFO, {}))  # no error after close


async def test_subscriber_iterates_across_tasks():
    router = Router()
    stamper = _events()
    got: list[ConnectionEvent] = []
    async with trio.open_nursery() as nursery:
        sub = router.subscribe()

        async def consume():
            async for event in sub:
                got.append(event)
                if len(got) == 3:
                    return

        nursery.start_soon(consume)
        for _ in range(3):
            router.publish(stamper.make(EventKind.INFO, {}))
            await trio.sleep(0)
    assert [e.seq for e in got] == [1, 2, 3]


def _drain(sub):
    out = []
    while True:
        try:
            out.append(sub.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_buffered_events_come_without_a_scheduling_point_each_but_one_in_64_yields():
    router = Router()
    sub = router.subscribe(buffer=1000)
    stamper = _events()
    for i in range(200):
        router.publish(stamper.make(EventKind.SERVER, {"type": "x", "i": i}))
    got = []
    with trio.CancelScope() as scope:
        scope.cancel()  # only a scheduling point can deliver it
        async for event in sub:
            got.append(event.payload["i"])
    assert got == list(range(64))  # in order, and the 65th is a checkpoint
    assert [(await sub.receive()).payload["i"] for _ in range(136)] == list(range(64, 200))


from hypothesis import given, strategies as st  # noqa: E402

_SIDS = st.sampled_from(["a", "b"])
_KINDS = st.sampled_from(list(EventKind))
_TYPES = st.sampled_from(["response.done", "error"])


@given(st.one_of(st.none(), st.frozensets(_SIDS)), st.one_of(st.none(), st.frozensets(st.sampled_from(list(Transport)))),
       st.one_of(st.none(), st.frozensets(_KINDS)), st.one_of(st.none(), st.frozensets(_TYPES)),
       _SIDS, st.sampled_from(list(Transport)), _KINDS, st.one_of(_TYPES, st.none()))
def test_the_routers_predicate_is_the_filters_matches(sessions, transports, kinds, types, sid, transport, kind, type_):
    """What the router calls per event (one function built per filter) answers as
    ``EventFilter.matches`` does, for every filter and event."""
    event = ConnectionEvent(sid, transport, kind, {"type": type_} if type_ else "x", 1, 0.0, 0.0)
    flt = EventFilter(sessions, transports, kinds, types)
    match = flt.predicate()
    assert (match is None or match(event)) == flt.matches(event)
