"""Supervisor decisions on the trio MockClock, with scripted actors.

The actors here are scripted stand-ins: they produce exits (crashes, drops, auth refusals)
on demand, which a real peer cannot be made to do deterministically.  The real WebSocket
actor against the embedded server is covered in tests/integration.
"""

import random

import pytest
import trio

from actors.credentials import Secret
from actors.events import ConnectionState, EventKind, Transport
from actors.exits import ActorExit, ExitReason
from actors.link import SessionLink
from actors.proto.client import ClientCore
from actors.websocket import ConnectParams
from orchestrator.keys import KeyManager
from orchestrator.policy import Backoff, RestartPolicy
from orchestrator.router import Router
from orchestrator.supervisor import SessionSpec, Supervisor

S = ConnectionState


def _params():
    return ConnectParams(url="ws://127.0.0.1:9", credential=Secret("", kind="pending"))


class Scripted:
    """An actor whose successive connections end as scripted; records connect times."""

    def __init__(self, exits, *, connect=True, hold=0.0):
        self.exits = list(exits)
        self.connect = connect
        self.hold = hold
        self.calls: list[float] = []
        self.credentials: list[str] = []

    async def __call__(self, link, params, *, task_status=trio.TASK_STATUS_IGNORED):
        self.calls.append(trio.current_time())
        self.credentials.append(params.credential.reveal())
        exit = self.exits.pop(0) if self.exits else None
        if exit is None:
            task_status.started()
            await trio.sleep_forever()
        if isinstance(exit, Exception):
            if self.connect:
                task_status.started()
            raise exit
        if self.connect:
            task_status.started()
            await trio.sleep(self.hold)
        return exit


def _harness(nursery, keys=None, seed=1):
    router = Router()
    sub = router.subscribe(buffer=10_000)
    keys = keys or KeyManager("http://127.0.0.1:9", Secret("sk-test", kind="api_key"), mode="direct")
    return Supervisor(nursery, keys, random.Random(seed)), router, sub


def _link(router, sid="s1"):
    return SessionLink(sid, Transport.WEBSOCKET, ClientCore(None), router.publish)


def _states(sub, sid=None):
    out = []
    while True:
        try:
            e = sub.receive_nowait()
        except trio.WouldBlock:
            return out
        if e.kind is EventKind.STATE and (sid is None or e.session_id == sid):
            out.append((e.payload["from"], e.payload["to"]))


async def test_crashing_actor_is_restarted_until_intensity_then_error_and_fleet_lives(autojump_clock):
    async with trio.open_nursery() as nursery:
        sup, router, sub = _harness(nursery)
        crashing = Scripted([RuntimeError("boom")] * 100)
        healthy = Scripted([])
        spec = SessionSpec(crashing, _params(), backoff=Backoff(base=0.1, cap=1.0), max_restarts=3,
                           restart_window=60.0)
        sup.start(_link(router, "bad"), spec)
        sup.start(_link(router, "good"), SessionSpec(healthy, _params()))
        await sup.children["bad"].done.wait()
        bad = sup.status("bad")
        assert bad.state is S.ERROR
        assert "restart intensity exceeded" in bad.last_error and "RuntimeError: boom" in bad.last_error
        assert bad.restarts == 3 and len(crashing.calls) == 4
        good = sup.status("good")
        assert good.state is S.CONNECTED and not good.finished and len(healthy.calls) == 1
        await sup.stop("good")
        assert sup.status("good").state is S.CLOSED
    transitions = _states(sub, "bad")
    assert transitions[0] == (None, "connecting")
    assert ("error", "reconnecting") in transitions and transitions[-1][1] == "error"


async def test_backoff_delays_follow_full_jitter_on_the_mock_clock(autojump_clock):
    drops = [ActorExit(ExitReason.DROPPED, 1006)] * 6
    actor = Scripted(drops, connect=False)
    backoff = Backoff(base=1.0, cap=8.0)
    async with trio.open_nursery() as nursery:
        sup, router, sub = _harness(nursery, seed=42)
        t0 = trio.current_time()
        sup.start(_link(router), SessionSpec(actor, _params(), backoff=backoff, max_restarts=100))
        while len(actor.calls) < 7:
            await trio.sleep(1)
        await sup.stop("s1")
    rng = random.Random(42)
    expected = [backoff.delay(a, rng) for a in range(6)]
    gaps = [b - a for a, b in zip(actor.calls, actor.calls[1:])]
    assert actor.calls[0] == pytest.approx(t0)
    assert gaps == pytest.approx(expected)
    assert all(g <= min(8.0, 2**i) for i, g in enumerate(gaps))


async def test_stable_connection_resets_the_backoff_attempts(autojump_clock):
    backoff = Backoff(base=1.0, cap=1000.0, stable_after=5.0)
    actor = Scripted([ActorExit(ExitReason.DROPPED, 1006)] * 4, hold=10.0)
    async with trio.open_nursery() as nursery:
        sup, router, _ = _harness(nursery, seed=3)
        sup.start(_link(router), SessionSpec(actor, _params(), backoff=backoff))
        while len(actor.calls) < 5:
            await trio.sleep(1)
        await sup.stop("s1")
    gaps = [b - a - 10.0 for a, b in zip(actor.calls, actor.calls[1:])]
    assert all(0 <= g <= 1.0 for g in gaps), "each drop after a stable connection is attempt 0"


async def test_recycle_reconnects_at_once_without_counting_a_restart(autojump_clock):
    actor = Scripted([ActorExit(ExitReason.RECYCLE, 1000)] * 3, hold=100.0)
    async with trio.open_nursery() as nursery:
        sup, router, sub = _harness(nursery)
        sup.start(_link(router), SessionSpec(actor, _params(), max_restarts=1))
        while len(actor.calls) < 4:
            await trio.sleep(1)
        status = sup.status("s1")
        assert status.recycles == 3 and status.restarts == 0 and status.reconnects == 3
        assert [round(b - a, 6) for a, b in zip(actor.calls, actor.calls[1:])] == [100.0] * 3
        await sup.stop("s1")


async def test_auth_refusal_with_a_direct_key_ends_in_error_without_retry(autojump_clock):
    actor = Scripted([ActorExit(ExitReason.AUTH, None, "handshake rejected: HTTP 401")], connect=False)
    async with trio.open_nursery() as nursery:
        sup, router, sub = _harness(nursery)
        sup.start(_link(router), SessionSpec(actor, _params()))
        await sup.children["s1"].done.wait()
    status = sup.status("s1")
    assert status.state is S.ERROR and "401" in status.last_error and len(actor.calls) == 1
    assert "sk-test" not in status.last_error


@pytest.mark.parametrize("policy,exit,final,calls", [
    (RestartPolicy.TRANSIENT, ActorExit(ExitReason.NORMAL, 1000), S.CLOSED, 1),
    (RestartPolicy.TEMPORARY, ActorExit(ExitReason.DROPPED, 1006), S.ERROR, 1),
    (RestartPolicy.PERMANENT, ActorExit(ExitReason.FATAL, 4000), S.ERROR, 1),
])
async def test_restart_policies(autojump_clock, policy, exit, final, calls):
    actor = Scripted([exit])
    async with trio.open_nursery() as nursery:
        sup, router, _ = _harness(nursery)
        sup.start(_link(router), SessionSpec(actor, _params(), policy=policy))
        await sup.children["s1"].done.wait()
    assert sup.status("s1").state is final and len(actor.calls) == calls


async def test_every_state_event_follows_the_transition_table(autojump_clock):
    from actors.events import TRANSITIONS

    exits = [ActorExit(ExitReason.DROPPED, 1006), RuntimeError("x"), ActorExit(ExitReason.RECYCLE)]
    actor = Scripted(exits, hold=1.0)
    async with trio.open_nursery() as nursery:
        sup, router, sub = _harness(nursery)
        sup.start(_link(router), SessionSpec(actor, _params()))
        while len(actor.calls) < 4:
            await trio.sleep(1)
        await sup.stop("s1")
    transitions = _states(sub)
    assert transitions[-1] == ("connected", "closed")
    for src, dst in transitions[1:]:
        assert S(dst) in TRANSITIONS[S(src)]


async def test_a_clock_jump_ages_restarts_out_of_the_intensity_window(autojump_clock):
    class JumpingActor(Scripted):
        async def __call__(self, link, params, *, task_status=trio.TASK_STATUS_IGNORED):
            if len(self.calls) == 3:
                autojump_clock.jump(3600)  # the machine slept for an hour
            return await super().__call__(link, params, task_status=task_status)

    actor = JumpingActor([RuntimeError("boom")] * 4)
    spec = SessionSpec(actor, _params(), backoff=Backoff(base=0.01, cap=0.1), max_restarts=3,
                       restart_window=60.0)
    async with trio.open_nursery() as nursery:
        sup, router, _ = _harness(nursery)
        sup.start(_link(router), spec)
        while len(actor.calls) < 5:
            await trio.sleep(0.01)
        status = sup.status("s1")
        assert status.state is S.CONNECTED and status.restarts == 4
        await sup.stop("s1")


async def test_a_mass_drop_reconnects_at_no_more_than_the_herd_rate(autojump_clock):
    actors = [Scripted([ActorExit(ExitReason.DROPPED, 1006)]) for _ in range(30)]
    async with trio.open_nursery() as nursery:
        sup, router, _ = _harness(nursery)
        sup.herd_rate = 10.0
        for i, actor in enumerate(actors):
            sup.start(_link(router, f"s{i}"), SessionSpec(actor, _params(), backoff=Backoff(base=0.01, cap=0.01)))
        while any(len(a.calls) < 2 for a in actors):
            await trio.sleep(0.05)
        second = sorted(a.calls[1] for a in actors)
        gaps = [b - a for a, b in zip(second, second[1:])]
        assert min(gaps) >= 0.1 - 1e-9, "admissions are paced at herd_rate"
        assert second[-1] - second[0] == pytest.approx(2.9, abs=0.2)
        assert sup.reconnecting == 0
        await sup.stop_many([f"s{i}" for i in range(30)])
