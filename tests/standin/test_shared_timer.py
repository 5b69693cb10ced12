"""standin/model/timer.py: the run's one deadline task (``Deadlines``) calls each
``SharedTimer``'s handler at its session's deadline, on the trio MockClock."""

from __future__ import annotations

import math

import trio
import trio.testing

from standin.model.timer import Deadlines, SharedTimer


class _Session:
    """A model whose next deadline the test sets (``get_timer``)."""

    def __init__(self) -> None:
        self.due: float | None = None

    def get_timer(self) -> float | None:
        return self.due


def _timer(name: str, fired: list[tuple[str, float]], session: _Session,
           then: list[float] | None = None) -> SharedTimer:
    """A timer whose handler notes (name, time) and arms the next of ``then``."""
    timer: SharedTimer

    def fire(now: float) -> None:
        fired.append((name, now))
        session.due = then.pop(0) if then else None
        timer.poke()

    timer = SharedTimer(session, fire)
    return timer


async def test_deadlines_fire_in_order_at_their_times_and_rearm(autojump_clock):
    fired: list[tuple[str, float]] = []
    start = trio.current_time()
    a, b, c = _Session(), _Session(), _Session()
    ta = _timer("a", fired, a, [start + 3.0, start + 3.5])
    tb = _timer("b", fired, b)
    tc = _timer("c", fired, c)
    a.due, b.due, c.due = start + 1.0, start + 2.0, start + 0.5
    for timer in (ta, tb, tc):
        timer.poke()
    assert ta.deadlines is tb.deadlines is Deadlines.of_run()  # one task for the run
    await trio.sleep(5)
    assert [(name, round(t - start, 6)) for name, t in fired] == [
        ("c", 0.5), ("a", 1.0), ("b", 2.0), ("a", 3.0), ("a", 3.5)]


async def test_a_moved_deadline_fires_once_at_its_new_time_and_a_closed_timer_never(autojump_clock):
    fired: list[tuple[str, float]] = []
    start = trio.current_time()
    a, b, c = _Session(), _Session(), _Session()
    ta, tb, tc = _timer("a", fired, a), _timer("b", fired, b), _timer("c", fired, c)
    a.due, b.due, c.due = start + 2.0, start + 1.0, start + 1.5
    for timer in (ta, tb, tc):
        timer.poke()
    await trio.sleep(0.1)
    a.due = start + 0.5  # earlier: the sleeping task wakes for it
    ta.poke()
    b.due = start + 3.0  # later: the first entry is skipped
    tb.poke()
    tb.poke()  # not moved: nothing more armed
    tc.close()
    c.due = start + 0.2
    tc.poke()  # closed: no deadline
    await trio.sleep(5)
    assert [(name, round(t - start, 6)) for name, t in fired] == [("a", 0.5), ("b", 3.0)]
    assert tc.session is None and tc.armed_for is None


async def test_a_failing_handler_does_not_stop_the_others(autojump_clock, caplog):
    fired: list[tuple[str, float]] = []
    start = trio.current_time()
    bad = _Session()

    def boom(now: float) -> None:
        raise RuntimeError("handler bug")

    tbad = SharedTimer(bad, boom)
    good = _Session()
    tgood = _timer("good", fired, good)
    bad.due, good.due = start + 1.0, start + 2.0
    tbad.poke()
    tgood.poke()
    await trio.sleep(3)
    assert fired == [("good", start + 2.0)]
    assert "deadline handler failed" in caplog.text
    assert Deadlines.of_run().broken is None and len(Deadlines.of_run()) == 0
    assert math.isinf(Deadlines.of_run()._sleeping_until)
