import random

import pytest
import trio
import trio.testing

from actors.exits import ActorExit, ExitReason
from orchestrator.policy import Backoff, RestartIntensity, RestartPolicy, should_restart


def test_full_jitter_stays_within_the_capped_exponential_envelope():
    backoff = Backoff(base=0.5, cap=8.0)
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(8.0, 0.5 * 2**attempt)
        samples = [backoff.delay(attempt, rng) for _ in range(400)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter spreads over the whole interval, not around its end
        assert min(samples) < 0.1 * ceiling and max(samples) > 0.9 * ceiling


def test_backoff_survives_huge_attempt_numbers():
    assert 0 <= Backoff(cap=5).delay(10_000, random.Random(0)) <= 5


async def test_backoff_sleeps_on_the_trio_clock(autojump_clock):
    backoff = Backoff(base=1.0, cap=4.0)
    rng = random.Random(7)
    expected = [Backoff(base=1.0, cap=4.0).delay(a, random.Random(7)) for a in range(1)]
    start = trio.current_time()
    await trio.sleep(backoff.delay(0, rng))
    assert trio.current_time() - start == pytest.approx(expected[0])


def test_restart_intensity_window():
    intensity = RestartIntensity(max_restarts=3, window=10.0)
    assert [intensity.allow(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert not intensity.allow(3.0)
    assert not intensity.allow(9.99)
    assert intensity.allow(10.0)  # the restart at t=0 left the window


@pytest.mark.parametrize(
    "policy,reason,expected",
    [
        (RestartPolicy.PERMANENT, ExitReason.NORMAL, True),
        (RestartPolicy.PERMANENT, ExitReason.DROPPED, True),
        (RestartPolicy.PERMANENT, ExitReason.FATAL, False),
        (RestartPolicy.TRANSIENT, ExitReason.NORMAL, False),
        (RestartPolicy.TRANSIENT, ExitReason.DROPPED, True),
        (RestartPolicy.TRANSIENT, ExitReason.CRASH, True),
        (RestartPolicy.TEMPORARY, ExitReason.DROPPED, False),
    ],
)
def test_should_restart(policy, reason, expected):
    assert should_restart(policy, ActorExit(reason)) is expected


@pytest.mark.parametrize(
    "code,reason",
    [(1000, ExitReason.NORMAL), (1001, ExitReason.DROPPED), (1006, ExitReason.DROPPED),
     (1011, ExitReason.DROPPED), (1012, ExitReason.DROPPED), (1013, ExitReason.DROPPED),
     (None, ExitReason.DROPPED), (4001, ExitReason.AUTH), (1008, ExitReason.AUTH),
     (4000, ExitReason.FATAL), (1002, ExitReason.FATAL)],
)
def test_close_codes_are_classified(code, reason):
    assert ActorExit.from_close(code).reason is reason
