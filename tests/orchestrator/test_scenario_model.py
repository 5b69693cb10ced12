"""The scenario model built from Python: kwargs, defaults, checks, and the pure helpers the
runner uses (phase schedules, the GA session object, the server fault plan)."""

import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import orchestrator.scenario as sc
from orchestrator.scenario import InvalidField, load_scenario_text


def test_build_from_python_equals_yaml():
    built = sc.Scenario(
        name="smoke",
        duration_limit="1m",
        populations=[sc.Population(name="users", script="hello", phases=[sc.Phase(sessions=5)])],
        scripts={"hello": [sc.Say("Hi!"), sc.Pause("500ms"), sc.Repeat(2, [sc.Cancel()])]},
        faults=[sc.FaultEvent(at="10s", action=sc.DropConnections(50))],
        thresholds=["errors == 0", "turn.time_to_first_audio p95 < 800ms"],
    )
    loaded = load_scenario_text(
        """
name: smoke
duration_limit: 60
populations: [{name: users, script: hello, sessions: 5}]
scripts:
  hello: [say: Hi!, pause: 0.5, {repeat: 2, steps: [cancel]}]
faults: [{at: 10, drop_connections: 50}]
thresholds: ["errors == 0", "turn.time_to_first_audio p95 < 800ms"]
""",
    )
    assert built == loaded
    assert built.scripts["hello"][2].steps == (sc.Cancel(),)
    assert isinstance(built.populations, tuple)
    assert built.thresholds[1].value == 0.8


def test_values_are_frozen():
    s = sc.Scenario(name="x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.name = "y"  # type: ignore[misc]
    assert attrs.evolve(s, seed=3).seed == 3
    assert hash(sc.Phase(sessions=1)) == hash(sc.Phase(sessions=1))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: sc.Phase(duration=10), "a phase needs one of arrival_rate, concurrency or sessions"),
        (lambda: sc.Phase(duration=10, arrival_rate=1, sessions=2), "sessions: a phase takes one of"),
        (lambda: sc.Phase(arrival_rate=1), "duration: a arrival_rate phase needs a duration > 0"),
        (lambda: sc.Phase(sessions=2, ramp_to=3), "ramp_to: ramp_to applies to arrival_rate or concurrency"),
        (lambda: sc.Phase(duration=1, arrival_rate=-1), "arrival_rate: must be >= 0, got -1"),
        (lambda: sc.Population(name="p", script="s", phases=[]), "phases: must not be empty"),
        (lambda: sc.Say(""), "text: must not be empty"),
        (lambda: sc.Play("a.mp3"), "path: expected a .wav or .pcm file"),
        (lambda: sc.Send({"no": "type"}), "event: an event needs a string 'type'"),
        (lambda: sc.Repeat(0, [sc.Cancel()]), "times: must be >= 1, got 0"),
        (lambda: sc.AddLatency(ms=-1), "ms: must be >= 0"),
        (lambda: sc.RejectKeys(duration=-1), "cannot be negative"),
        (lambda: sc.ServerFaults(close_code=999), "close_code: must be >= 1000"),
        (lambda: sc.RemoteTarget(url="api.openai.com"), "url: expected a ws://"),
        (lambda: sc.AudioFormat("audio/pcmu", 16000), "rate: audio/pcmu is 8000 Hz"),
        (lambda: sc.SessionConfig(output_modalities=[]), "output_modalities: must name at least one"),
        (
            lambda: sc.Scenario(name="x", populations=[sc.Population.all_at_once("p", "hello", 1)], scripts={"helo": []}),
            "populations[0].script: unknown script 'hello'; did you mean 'helo'?",
        ),
        (
            lambda: sc.Scenario(name="x", target=sc.RemoteTarget("wss://x"), faults=[sc.FaultEvent(1, sc.KillServer())]),
            "faults[0].action: kill_server needs the embedded server",
        ),
    ],
)
def test_python_construction_is_checked(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_invalid_field_carries_paths():
    with pytest.raises(InvalidField) as info:
        sc.Scenario(
            name="x",
            duration_limit=10,
            populations=[sc.Population.all_at_once("p", "s", 1), sc.Population.all_at_once("p", "t", 1)],
            scripts={"s": []},
            faults=[sc.FaultEvent(20, sc.ExpireKeys())],
        )
    paths = [p.path for p in info.value.problems]
    assert paths == [("populations", 1, "name"), ("populations", 1, "script"), ("faults", 0, "at")]


def test_remote_target_takes_drop_connections():
    s = sc.Scenario(name="x", target=sc.RemoteTarget("wss://api.openai.com/v1/realtime"),
                    faults=[sc.FaultEvent(1, sc.DropConnections(10))])
    assert s.target.api_key_env == "OPENAI_API_KEY"
    assert s.target.dialect is sc.Dialect.GA


def test_sorted_faults():
    s = sc.Scenario(name="x", faults=[sc.FaultEvent(5, sc.ExpireKeys()), sc.FaultEvent(1, sc.Malformed()), sc.FaultEvent(5, sc.KillServer())])
    assert [f.at for f in s.sorted_faults] == [1, 5, 5]
    assert isinstance(s.sorted_faults[2].action, sc.KillServer)


def test_population_duration():
    assert sc.Population("p", "s", [sc.Phase(duration=10, arrival_rate=1), sc.Phase(duration="1m", concurrency=3)]).duration == 70
    assert sc.Population.all_at_once("p", "s", 3).duration is None
    assert sc.Population.all_at_once("p", "s", 3, transport="sip").transport is sc.Transport.SIP


# -- phase schedules --------------------------------------------------------------------------


def test_level_at_ramps_linearly():
    p = sc.Phase(duration=10, arrival_rate=1, ramp_to=3)
    assert [p.level_at(t) for t in (-1, 0, 5, 10, 20)] == [1, 1, 2, 3, 3]
    assert sc.Phase(duration=10, concurrency=4).level_at(7) == 4
    assert sc.Phase(sessions=6).level_at(0) == 6
    assert sc.Phase(duration=10, concurrency=10, ramp_to=0).level_at(2.5) == 7.5


def test_constant_rate_arrivals_are_evenly_spaced():
    assert list(sc.Phase(duration=2, arrival_rate=2).arrival_offsets()) == [0, 0.5, 1.0, 1.5]
    assert list(sc.Phase(duration=10, arrival_rate=0).arrival_offsets()) == []
    assert list(sc.Phase(duration=10, concurrency=3).arrival_offsets()) == []


@given(
    st.floats(0, 20), st.floats(0, 20), st.floats(0.5, 100),
)
def test_ramped_arrivals_follow_the_rate(r0, r1, duration):
    phase = sc.Phase(duration=duration, arrival_rate=r0, ramp_to=r1)
    offsets = list(phase.arrival_offsets())
    expected = (r0 + r1) / 2 * duration  # area under the ramp
    assert abs(len(offsets) - expected) <= 1.0 + 1e-6
    assert offsets == sorted(offsets)
    assert all(0 <= t < duration for t in offsets)
    # the k-th arrival is where the expected count reaches k
    for k, t in enumerate(offsets):
        assert r0 * t + (r1 - r0) * t * t / (2 * duration) == pytest.approx(k, abs=1e-6)


def test_poisson_arrivals_are_seeded_and_about_right():
    phase = sc.Phase(duration=100, arrival_rate=5, ramp_to=15)
    a = list(phase.arrival_offsets(random.Random(1)))
    assert a == list(phase.arrival_offsets(random.Random(1)))
    assert a != list(phase.arrival_offsets(random.Random(2)))
    assert 900 < len(a) < 1100  # expected 1000, sd ~32
    first_half = sum(1 for t in a if t < 50)
    assert first_half < len(a) / 2  # the rate rises


# -- what the runner sends and configures -----------------------------------------------------


def test_session_object_is_ga_shaped():
    session = sc.SessionConfig(
        instructions="Be brief.",
        voice="marin",
        output_modalities="text",
        input_format=sc.AudioFormat("audio/pcmu"),
        turn_detection=sc.SemanticVad(eagerness="low"),
        transcription=sc.Transcription("whisper-1", language="en"),
        extra={"tools": []},
    ).to_session()
    assert session == {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "output_modalities": ["text"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low", "create_response": True, "interrupt_response": True},
                "transcription": {"model": "whisper-1", "language": "en"},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
        "tools": [],
    }
    off = sc.SessionConfig(turn_detection=None).to_session()
    assert off["audio"]["input"]["turn_detection"] is None
    assert "instructions" not in off


def test_server_faults_fill_the_embedded_server_plan():
    faults_module = pytest.importorskip("standin.faults.plan")
    faults = sc.ServerFaults(drop_after_events=5, drop_rate=0.1, drop_at="3s", close_code=1012,
                             latency="20ms", expire_after="1m", malformed_every=7, reject_keys=True)
    plan = faults_module.FaultPlan(**faults.plan_fields(seed=9))
    assert (plan.seed, plan.drop_after_s, plan.drop_mode, plan.drop_close_code) == (9, 3.0, "close", 1012)
    assert plan.latency_ms == pytest.approx(20.0)
    assert (plan.expire_after_s, plan.malformed_every, plan.reject_keys) == (60.0, 7, True)
    default = faults_module.FaultPlan(**sc.ServerFaults().plan_fields())
    assert not default.active and not sc.ServerFaults().active
    assert default.drop_mode == "abort"
