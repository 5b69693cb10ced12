"""Valid scenario files: the examples, short forms, play paths, round trips, and a fuzz test
that no malformed document ever escapes as anything but ScenarioError."""

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orchestrator.scenario as sc
from orchestrator.scenario import ScenarioError, dump_scenario_text, load_scenario, load_scenario_text
from orchestrator.scenario.unstructure import unstructure_scenario

EXAMPLES = Path(sc.__file__).parent / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _load(text: str, base_dir=EXAMPLES) -> sc.Scenario:
    return load_scenario_text(textwrap.dedent(text), "t.yaml", base_dir=base_dir)


def test_there_are_three_examples():
    assert [p.name for p in EXAMPLE_FILES] == ["chaos-reconnect.yaml", "ramp-websocket.yaml", "smoke.yaml"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_load_and_round_trip(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.thresholds
    text = dump_scenario_text(scenario)
    assert load_scenario_text(text, "dumped.yaml") == scenario
    json.dumps(unstructure_scenario(scenario))  # plain data


def test_smoke_example():
    s = load_scenario(EXAMPLES / "smoke.yaml")
    [pop] = s.populations
    assert (pop.name, pop.transport, pop.script) == ("texters", sc.Transport.WEBSOCKET, "one_turn")
    assert pop.phases == (sc.Phase(sessions=5),)
    assert s.scripts["one_turn"] == (sc.Say("Hello! Please reply with one short sentence.", timeout=20.0),)
    assert s.target == sc.EmbeddedTarget()
    assert s.session.turn_detection is None
    assert [t.source_text for t in s.thresholds][0] == "errors == 0"


def test_ramp_example():
    s = load_scenario(EXAMPLES / "ramp-websocket.yaml")
    texters, talkers = s.populations
    assert [p.name for p in texters.phases] == ["warm-up", "steady", "cool-down"]
    assert texters.phases[0] == sc.Phase(name="warm-up", duration=30, arrival_rate=0.5, ramp_to=2)
    assert talkers.phases[0].mode == "concurrency"
    play = s.scripts["talk"][0]
    assert isinstance(play, sc.Play)
    assert play.path == (EXAMPLES / "audio" / "hello.wav").resolve()
    assert play.path.is_absolute() and play.path.is_file()
    assert s.session.input_format == sc.AudioFormat("audio/pcm", 24000)
    assert s.session.transcription == sc.Transcription("gpt-4o-transcribe")
    assert s.session.turn_detection == sc.ServerVad(silence_duration_ms=400)


def test_chaos_example():
    s = load_scenario(EXAMPLES / "chaos-reconnect.yaml")
    assert s.target.faults == sc.ServerFaults(expire_after=45.0, latency=0.02)
    actions = [type(f.action) for f in s.faults]
    assert actions == [sc.DropConnections, sc.ExpireKeys, sc.DropConnections, sc.RejectKeys, sc.AddLatency, sc.KillServer]
    assert s.faults[2] == sc.FaultEvent(at=60, action=sc.DropConnections(percent=100))
    assert s.faults[3].action == sc.RejectKeys(duration=3.0)
    assert "reconnect.success_rate == 1" in [t.source_text for t in s.thresholds]


def test_defaults():
    s = _load("name: minimal\n")
    assert s == sc.Scenario(name="minimal")
    assert (s.seed, s.duration_limit, s.description) == (0, 600.0, "")
    assert s.target == sc.EmbeddedTarget(dialect=sc.Dialect.GA)
    assert s.session == sc.SessionConfig()
    assert s.session.turn_detection == sc.ServerVad()
    assert s.session.output_modalities == (sc.Modality.AUDIO,)


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("target: embedded", "target: {}"),
        ("target: wss://api.openai.com/v1/realtime", "target: {url: wss://api.openai.com/v1/realtime, api_key_env: OPENAI_API_KEY}"),
        ("session: {turn_detection: server_vad}", "session: {turn_detection: {type: server_vad, threshold: 0.5}}"),
        ("session: {turn_detection: semantic_vad}", "session: {turn_detection: {type: semantic_vad, eagerness: auto}}"),
        ("session: {input_format: pcm16}", "session: {input_format: {type: audio/pcm, rate: 24000}}"),
        ("session: {input_format: g711_ulaw}", "session: {input_format: {type: audio/pcmu}}"),
        ("session: {output_format: pcma}", "session: {output_format: {type: g711_alaw, rate: 8000}}"),
        ("session: {transcription: whisper-1}", "session: {transcription: {model: whisper-1}}"),
        ("session: {output_modalities: text}", "session: {output_modalities: [text]}"),
        ("duration_limit: 1.5m", "duration_limit: 90"),
        ("duration_limit: 90s", "duration_limit: '90'"),
    ],
)
def test_short_forms(short, long):
    assert _load(f"name: t\n{short}\n") == _load(f"name: t\n{long}\n")


STEP_FORMS = [
    ("say: hi", sc.Say("hi")),
    ("{say: hi, wait: false, timeout: 5s}", sc.Say("hi", wait=False, timeout=5)),
    ("{say: {text: hi, wait: false}}", sc.Say("hi", wait=False)),
    ("play: audio/hello.wav", sc.Play((EXAMPLES / "audio/hello.wav").resolve())),
    ("{play: audio/hello.wav, realtime: false, commit: true}", sc.Play((EXAMPLES / "audio/hello.wav").resolve(), realtime=False, commit=True)),
    ("{play: {path: audio/hello.wav, commit: false}}", sc.Play((EXAMPLES / "audio/hello.wav").resolve(), commit=False)),
    ("wait_response", sc.WaitResponse()),
    ("wait_response: 10s", sc.WaitResponse(timeout=10)),
    ("wait_response: {timeout: 500ms}", sc.WaitResponse(timeout=0.5)),
    ("{wait_response: null, timeout: 2s}", sc.WaitResponse(timeout=2)),
    ("barge_in: {after: 300ms}", sc.BargeIn(after=0.3)),
    ("barge_in: 1s", sc.BargeIn(after=1.0)),
    ("barge_in", sc.BargeIn()),
    ("cancel", sc.Cancel()),
    ("cancel: null", sc.Cancel()),
    ("cancel: {}", sc.Cancel()),
    ("pause: 1.5s", sc.Pause(1.5)),
    ("pause: 2", sc.Pause(2.0)),
    ("{repeat: 2, steps: [cancel]}", sc.Repeat(2, (sc.Cancel(),))),
    ("repeat: {times: 3, steps: [say: a, {repeat: 2, steps: [pause: 1s]}]}",
     sc.Repeat(3, (sc.Say("a"), sc.Repeat(2, (sc.Pause(1.0),))))),
    ("send: {type: input_audio_buffer.clear}", sc.Send({"type": "input_audio_buffer.clear"})),
    ("send: {type: x, nested: {a: [1, 2]}}", sc.Send({"type": "x", "nested": {"a": [1, 2]}})),
]


@pytest.mark.parametrize(("text", "step"), STEP_FORMS, ids=[t for t, _ in STEP_FORMS])
def test_step_forms(text, step):
    s = _load(f"name: t\nscripts:\n  s:\n    - {text}\n")
    assert s.scripts["s"] == (step,)


def test_send_event_is_plain_data():
    s = _load("name: t\nscripts:\n  s:\n    - send: {type: x, items: [{a: 1}]}\n")
    event = s.scripts["s"][0].event
    assert type(event) is dict and type(event["items"]) is list and type(event["items"][0]) is dict


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("{at: 10s, action: drop_connections, percent: 30}", sc.FaultEvent(10, sc.DropConnections(30))),
        ("{at: 10s, drop_connections: 30}", sc.FaultEvent(10, sc.DropConnections(30))),
        ("{at: 10s, drop_connections: {percent: 30}}", sc.FaultEvent(10, sc.DropConnections(30))),
        ("{at: 10s, action: drop_connections}", sc.FaultEvent(10, sc.DropConnections(100))),
        ("{at: 1m, expire_keys: null}", sc.FaultEvent(60, sc.ExpireKeys())),
        ("{at: 1m, action: expire_keys}", sc.FaultEvent(60, sc.ExpireKeys())),
        ("{at: 5, action: add_latency, ms: 250, for: 3s}", sc.FaultEvent(5, sc.AddLatency(250, 3.0))),
        ("{at: 5, add_latency: {ms: 250, for: 3s}}", sc.FaultEvent(5, sc.AddLatency(250, 3.0))),
        ("{at: 5, kill_server: {restart_after: 2s}}", sc.FaultEvent(5, sc.KillServer(2.0))),
        ("{at: 5, action: kill_server}", sc.FaultEvent(5, sc.KillServer(None))),
        ("{at: 5, reject_keys: 3s}", sc.FaultEvent(5, sc.RejectKeys(3.0))),
        ("{at: 5, action: malformed, count: 3}", sc.FaultEvent(5, sc.Malformed(3))),
    ],
)
def test_fault_forms(text, fault):
    assert _load(f"name: t\nfaults:\n  - {text}\n").faults == (fault,)


def test_population_short_form_equals_one_phase():
    a = _load("name: t\npopulations: [{name: p, script: s, sessions: 4}]\nscripts: {s: [cancel]}\n")
    b = _load("name: t\npopulations: [{name: p, script: s, phases: [{sessions: 4}]}]\nscripts: {s: [cancel]}\n")
    assert a == b
    assert a.populations[0] == sc.Population.all_at_once("p", "s", 4)


def test_anchors_and_merge_keys():
    s = _load(
        """
        name: t
        scripts:
          s: &steps
            - say: hi
          t: *steps
        populations:
          - &pop
            name: a
            script: s
            phases:
              - &steady {duration: 30s, arrival_rate: 2}
          - <<: *pop
            name: b
            phases:
              - <<: *steady
                arrival_rate: 5
        """
    )
    assert s.scripts["t"] == s.scripts["s"]
    assert s.populations[1].name == "b"
    assert s.populations[1].phases == (sc.Phase(duration=30, arrival_rate=5),)


def test_play_paths_resolve_against_the_scenario_file(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.pcm").write_bytes(b"\0\0" * 480)
    (tmp_path / "b.WAV").write_bytes(b"")
    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text("name: t\nscripts:\n  s:\n    - play: audio/a.pcm\n    - play: b.WAV\n")
    s = load_scenario(scenario_file)
    assert [step.path for step in s.scripts["s"]] == [(tmp_path / "audio" / "a.pcm").resolve(), (tmp_path / "b.WAV").resolve()]
    # the text loader resolves against the directory of the file name it is given
    again = load_scenario_text(scenario_file.read_text(), str(scenario_file))
    assert again == s
    with pytest.raises(ScenarioError, match="audio file not found"):
        load_scenario_text(scenario_file.read_text(), "elsewhere/s.yaml")


def test_absolute_play_path(tmp_path):
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    s = _load(f"name: t\nscripts:\n  s:\n    - play: {wav}\n", base_dir="/nonexistent")
    assert s.scripts["s"][0].path == wav.resolve()


def test_dump_is_readable_yaml():
    s = load_scenario(EXAMPLES / "chaos-reconnect.yaml")
    data = yaml.safe_load(dump_scenario_text(s))
    assert data["faults"][3] == {"at": 80.0, "action": "reject_keys", "for": 3.0}
    assert data["target"]["faults"] == {"latency": 0.02, "expire_after": 45.0}
    assert data["scripts"]["long_chat"][0]["repeat"] == 10
    assert data["thresholds"][0] == "reconnect.success_rate == 1"


def test_full_round_trip_of_every_form(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    text = """
    name: everything
    description: all the forms
    seed: 3
    duration_limit: 2m
    target: {dialect: beta, faults: {drop_after_events: 5, drop_rate: 0.1, drop_at: 3s, close_code: 1012,
             latency: 5ms, expire_after: 1m, malformed_every: 7, reject_keys: true}}
    session:
      model: gpt-realtime-mini
      instructions: hi
      voice: marin
      output_modalities: [audio, text]
      input_format: g711_ulaw
      output_format: g711_alaw
      turn_detection: {type: semantic_vad, eagerness: high, create_response: false}
      transcription: {model: whisper-1, language: en, prompt: names}
      extra: {tools: [], max_output_tokens: 300}
    populations:
      - {name: a, transport: webrtc, script: s, phases: [{duration: 10s, concurrency: 2, ramp_to: 4}]}
      - {name: b, transport: sip, script: s, sessions: 2}
    scripts:
      s:
        - {say: hi, wait: false}
        - {play: a.wav, realtime: false, commit: true}
        - wait_response
        - barge_in: 1s
        - cancel
        - pause: 1s
        - {repeat: 2, steps: [send: {type: x}]}
    faults:
      - {at: 1s, action: malformed, count: 2}
      - {at: 2s, action: add_latency, ms: 10}
    thresholds: ["errors == 0", "turn.duration p99.9 < 1s", "reconnect.success_rate >= 50%"]
    """
    s = _load(text, base_dir=tmp_path)
    dumped = dump_scenario_text(s)
    assert load_scenario_text(dumped, "x.yaml") == s
    assert json.loads(json.dumps(unstructure_scenario(s))) == unstructure_scenario(s)
    assert s.session.turn_detection == sc.SemanticVad(eagerness="high", create_response=False)
    assert s.target.faults.close_code == 1012


# -- no error escapes as anything but ScenarioError -----------------------------------------


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replace(node, path, value):
    if not path:
        return value
    parent = node
    for token in path[:-1]:
        parent = parent[token]
    parent[path[-1]] = value
    return node


_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(["embedded", "say", "cancel", "server_vad", "10s", "-1s", "audio/x.wav", "p95", "ga"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["say", "at", "action", "type", "name", "steps", "url", "x", "times", "sessions"]) | st.text(max_size=5),
        children,
        max_size=3,
    ),
    max_leaves=6,
)
_BASE_DOCS = [yaml.safe_load(p.read_text()) for p in EXAMPLE_FILES]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutations_only_ever_raise_scenario_error(data):
    doc = json.loads(json.dumps(data.draw(st.sampled_from(_BASE_DOCS))))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths))
        doc = _replace(doc, path, data.draw(_junk))
    text = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
    try:
        load_scenario_text(text, "fuzz.yaml", base_dir=EXAMPLES)
    except ScenarioError as err:
        assert err.line is not None and err.line >= 1 and err.column >= 1
        assert "\n" not in str(err)
        assert str(err).startswith(f"fuzz.yaml:{err.line}:{err.column}: ")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_scenario_error(text):
    try:
        load_scenario_text(text, "fuzz.yaml", base_dir=EXAMPLES)
    except ScenarioError as err:
        assert "\n" not in str(err)
