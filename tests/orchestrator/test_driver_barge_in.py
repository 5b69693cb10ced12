"""barge_in interrupts a live response, `after` seconds into its output; one that meets no
live response counts as ``turns.barge_in_missed``, not as a barge-in (virtual time)."""

import attrs
import pytest
import trio
import trio.testing

from actors.events import ConnectionEvent, EventKind, Transport
from orchestrator.scenario.driver import SessionDriver
from orchestrator.scenario.runmetrics import RunMetrics
from orchestrator.scenario.steps import BargeIn


@attrs.define
class FakeFleet:
    sent: list = attrs.field(factory=list)
    sent_at: list = attrs.field(factory=list)
    on_send: object = None

    async def send(self, sid, event):
        self.sent.append(event["type"])
        self.sent_at.append(trio.current_time())
        if self.on_send is not None:
            self.on_send(event)


def _driver(fleet):
    metrics = RunMetrics(trio.current_time, trio.current_time())
    return SessionDriver("s1", fleet, metrics, vad=True), metrics


def _feed(driver, *events):
    for payload in events:
        driver.on_event(ConnectionEvent("s1", Transport.WEBSOCKET, EventKind.SERVER, payload, 0,
                                        trio.current_time(), 0.0))


CREATED = {"type": "response.created", "response": {"id": "r1"}}
DELTA = {"type": "response.output_audio.delta", "item_id": "i1", "delta": "AAAA" * 1600}


def _done(status):
    return {"type": "response.done", "response": {"id": "r1", "status": status}}


def _count(metrics, name):
    return metrics.counter(name)


async def test_barge_in_cancels_a_live_response_after_its_first_output(autojump_clock):
    fleet = FakeFleet()
    driver, metrics = _driver(fleet)
    fleet.on_send = lambda e: e["type"] == "response.cancel" and _feed(driver, _done("cancelled"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(driver.run, [BargeIn(after=0.3)])
        await trio.sleep(1.0)
        assert fleet.sent == []  # nothing live yet: it waits
        _feed(driver, CREATED, DELTA)
        first_output = trio.current_time()
    assert fleet.sent == ["response.cancel", "conversation.item.truncate"]
    assert fleet.sent_at[0] - first_output == pytest.approx(0.3)
    assert (_count(metrics, "turns.barged_in"), _count(metrics, "turns.barge_in_missed")) == (1, 0)


async def test_a_response_that_ends_before_the_barge_in_is_a_miss_and_gets_no_cancel(autojump_clock):
    fleet = FakeFleet()
    driver, metrics = _driver(fleet)
    async with trio.open_nursery() as nursery:
        _feed(driver, CREATED, DELTA)
        nursery.start_soon(driver.run, [BargeIn(after=0.3)])
        await trio.sleep(0.1)
        _feed(driver, _done("completed"))
    assert fleet.sent == []
    assert (_count(metrics, "turns.barged_in"), _count(metrics, "turns.barge_in_missed")) == (0, 1)


async def test_a_finished_response_is_not_live_and_no_response_within_timeout_is_a_miss(autojump_clock):
    fleet = FakeFleet()
    driver, metrics = _driver(fleet)
    _feed(driver, CREATED, DELTA, _done("completed"))  # the previous answer, already done
    start = trio.current_time()
    await driver.run([BargeIn(after=0.3, timeout=5)])
    assert trio.current_time() - start == 5
    assert fleet.sent == []
    assert (_count(metrics, "turns.barged_in"), _count(metrics, "turns.barge_in_missed")) == (0, 1)


async def test_a_cancel_that_arrives_after_the_response_completed_is_a_miss(autojump_clock):
    fleet = FakeFleet()
    driver, metrics = _driver(fleet)
    # the server finished the response before it read the cancel, then refused the cancel
    fleet.on_send = lambda e: e["type"] == "response.cancel" and _feed(
        driver, _done("completed"),
        {"type": "error", "error": {"code": "response_cancel_not_active"}})
    _feed(driver, CREATED, DELTA)
    await driver.run([BargeIn(after=0.3)])
    assert fleet.sent[0] == "response.cancel"
    assert (_count(metrics, "turns.barged_in"), _count(metrics, "turns.barge_in_missed")) == (0, 1)
    assert _count(metrics, "errors") == 0
