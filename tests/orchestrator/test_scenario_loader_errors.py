"""Broken scenario files: each error names the right line, column and field path.

Each case is a small YAML document; the line the error must point at ends with ``#<``
(a YAML comment), and ``col`` (when given) is the expected 1-based column.
"""

import textwrap

import pytest

from orchestrator.scenario import ScenarioError, load_scenario, load_scenario_text

GOOD = """\
name: t
populations:
  - name: p
    script: s
    sessions: 1
scripts:
  s:
    - say: hi
"""


def _load_error(text: str, tmp_path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "scenarios/x.yaml", base_dir=tmp_path)
    return info.value


def _marked_line(text: str) -> int:
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith("#<")]
    return line


CASES = {
    "value type in a nested list": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - duration: 10s
                arrival_rate: 2
              - duration: 5s
                arrival_rate: fast   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[1].arrival_rate",
        "expected a number, got 'fast'",
        23,
    ),
    "unknown top-level key": (
        """
        name: t
        popluations: []   #<
        """,
        "popluations",
        "unknown key 'popluations'; did you mean 'populations'?",
        1,
    ),
    "unknown phase key": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - durration: 10s   #<
                arrival_rate: 1
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[0].durration",
        "did you mean 'duration'?",
        9,
    ),
    "missing required key": (
        """
        name: t
        populations:
          - name: p   #<
            sessions: 1
        scripts: {s: [say: hi]}
        """,
        "populations[0]",
        "missing required key 'script'",
        5,
    ),
    "unknown script": (
        """
        name: t
        populations:
          - name: p
            script: gret   #<
            sessions: 1
        scripts:
          greet: [say: hi]
        """,
        "populations[0].script",
        "unknown script 'gret'; did you mean 'greet'? (scripts: greet)",
        13,
    ),
    "enum value": (
        """
        name: t
        populations:
          - name: p
            transport: ws   #<
            script: s
            sessions: 1
        scripts: {s: [say: hi]}
        """,
        "populations[0].transport",
        "expected one of websocket, webrtc, sip; got 'ws'",
        16,
    ),
    "two load modes in a phase": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - duration: 10s
                arrival_rate: 1
                concurrency: 3   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[0].concurrency",
        "not both arrival_rate and concurrency",
        9,
    ),
    "rate phase without duration": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - arrival_rate: 1   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[0].duration",
        "a arrival_rate phase needs a duration > 0",
        9,
    ),
    "phase without a load mode": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - {duration: 10s}   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[0]",
        "a phase needs one of arrival_rate, concurrency or sessions",
        9,
    ),
    "fractional concurrency ramp": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases:
              - {duration: 10s, concurrency: 1, ramp_to: 2.5}   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases[0].ramp_to",
        "whole number",
        50,
    ),
    "sessions and phases together": (
        """
        name: t
        populations:
          - name: p
            script: s
            sessions: 3   #<
            phases: [{sessions: 1}]
        scripts: {s: [say: hi]}
        """,
        "populations[0].sessions",
        "either sessions or phases",
        5,
    ),
    "sessions is zero": (
        """
        name: t
        populations:
          - name: p
            script: s
            sessions: 0   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].sessions",
        "must be >= 1, got 0",
        15,
    ),
    "phases not a list": (
        """
        name: t
        populations:
          - name: p
            script: s
            phases: fast   #<
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases",
        "expected a list, got 'fast'",
        13,
    ),
    "duplicate population": (
        """
        name: t
        populations:
          - {name: p, script: s, sessions: 1}
          - {name: p, script: s, sessions: 1}   #<
        scripts: {s: [say: hi]}
        """,
        "populations[1].name",
        "population 'p' is defined twice",
        12,
    ),
    "phases longer than the limit": (
        """
        name: t
        duration_limit: 1m
        populations:
          - name: p
            script: s
            phases:   #<
              - {duration: 50s, concurrency: 1}
              - {duration: 50s, concurrency: 1}
        scripts: {s: [say: hi]}
        """,
        "populations[0].phases",
        "phases last 100s, longer than duration_limit 60s",
        5,
    ),
    "unknown step kind": (
        """
        name: t
        scripts:
          s:
            - say: hi
            - sya: hello   #<
        """,
        "scripts.s[1].sya",
        "unknown step 'sya'; did you mean 'say'?",
        7,
    ),
    "unknown bare step": (
        """
        name: t
        scripts:
          s:
            - cancle   #<
        """,
        "scripts.s[0]",
        "unknown step 'cancle'; did you mean 'cancel'?",
        7,
    ),
    "step option typo": (
        """
        name: t
        scripts:
          s:
            - say: hi
              wiat: false   #<
        """,
        "scripts.s[0].wiat",
        "unknown key 'wiat'; did you mean 'wait'?",
        7,
    ),
    "step option type": (
        """
        name: t
        scripts:
          s:
            - say: hi
              wait: "no"   #<
        """,
        "scripts.s[0].wait",
        "expected true or false, got 'no'",
        13,
    ),
    "say is not text": (
        """
        name: t
        scripts:
          s:
            - say: [1, 2]   #<
        """,
        "scripts.s[0].say",
        "expected a string, got a list",
        7,
    ),
    "two kinds in a step": (
        """
        name: t
        scripts:
          s:
            - say: hi
              pause: 1s   #<
        """,
        "scripts.s[0].pause",
        "a step has one kind, found both 'say' and 'pause'",
        7,
    ),
    "nested repeat step": (
        """
        name: t
        scripts:
          s:
            - repeat: 2
              steps:
                - say: hi
                - pause: soon   #<
        """,
        "scripts.s[0].steps[1].pause",
        "invalid duration 'soon'",
        18,
    ),
    "repeat mapping form": (
        """
        name: t
        scripts:
          s:
            - repeat: {times: 0, steps: [cancel]}   #<
        """,
        "scripts.s[0].repeat.times",
        "must be >= 1, got 0",
        23,
    ),
    "repeat without steps": (
        """
        name: t
        scripts:
          s:
            - repeat: 3   #<
        """,
        "scripts.s[0]",
        "missing required key 'steps'",
        7,
    ),
    "audio file missing": (
        """
        name: t
        scripts:
          s:
            - play: audio/nope.wav   #<
        """,
        "scripts.s[0].play",
        "audio file not found:",
        13,
    ),
    "audio file suffix": (
        """
        name: t
        scripts:
          s:
            - play: notes.txt   #<
        """,
        "scripts.s[0].play",
        "expected a .wav or .pcm file, got 'notes.txt'",
        13,
    ),
    "send without type": (
        """
        name: t
        scripts:
          s:
            - send: {item: 1}   #<
        """,
        "scripts.s[0].send",
        "an event needs a string 'type'",
        7,
    ),
    "send not a mapping": (
        """
        name: t
        scripts:
          s:
            - send: hello   #<
        """,
        "scripts.s[0].send",
        "expected a mapping, got 'hello'",
        13,
    ),
    "cancel takes no value": (
        """
        name: t
        scripts:
          s:
            - cancel: now   #<
        """,
        "scripts.s[0].cancel",
        "cancel takes no value",
        15,
    ),
    "scripts not a mapping": (
        """
        name: t
        scripts: [say: hi]   #<
        """,
        "scripts",
        "expected a mapping, got a list",
        1,
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_error_names_line_and_field(case, tmp_path):
    yaml_text, field, message, column = CASES[case]
    text = textwrap.dedent(yaml_text).lstrip("\n")
    err = _load_error(text, tmp_path)
    assert err.file == "scenarios/x.yaml"
    assert err.line == _marked_line(text), str(err)
    if field:
        assert err.field == field, str(err)
    assert message in err.message, str(err)
    if column is not None:
        assert err.column == column, str(err)
    assert str(err) == f"scenarios/x.yaml:{err.line}:{err.column}: " + (f"{field}: " if field else "") + err.message
    assert "\n" not in str(err)


def test_str_is_file_line_column_field_message(tmp_path):
    text = textwrap.dedent(CASES["value type in a nested list"][0]).lstrip("\n")
    err = _load_error(text, tmp_path)
    assert str(err) == (
        "scenarios/x.yaml:9:23: populations[0].phases[1].arrival_rate: expected a number, got 'fast'"
    )
    assert (err.file, err.line, err.column) == ("scenarios/x.yaml", 9, 23)


def test_all_problems_are_collected_in_file_order(tmp_path):
    text = textwrap.dedent(
        """\
        name: t
        seed: x
        populations:
          - {name: p, script: s, transport: tcp, sessions: 1}
        scripts:
          s:
            - sya: hi
        thresholds: ["errors = 0"]
        """
    )
    err = _load_error(text, tmp_path)
    assert [(e.line, e.field) for e in err.errors] == [
        (2, "seed"),
        (4, "populations[0].transport"),
        (7, "scripts.s[0].sya"),
        (8, "thresholds[0]"),
    ]
    assert err.errors[0] is err
    assert all(isinstance(e, ScenarioError) for e in err.errors)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: t\npopulations: [\n  {name: p}\n", 4, "YAML syntax error"),
        ("name: t\n  seed: 1\n", 2, "YAML syntax error: mapping values are not allowed"),
        ("name: t\nscripts:\n  s: [say: hi]\n  s: [cancel]\n", 4, "found duplicate key 's'"),
        ("name: t\nseed: 1\nname: u\n", 3, "found duplicate key 'name'"),
        ("name: t\n---\nname: u\n", 2, "expected a single document"),
        ("name: t\nseed: *nope\n", 2, "found undefined alias"),
        ("name: t\nx: !!python/object:os.system {}\n", 2, "could not determine a constructor"),
        ("name: 'unterminated\n", 2, "YAML syntax error"),
        ("name: t\nseed: 1\x00\n", 2, "character U+0000 is not allowed"),
        # PyYAML 6.0.3 reports Python's recursion limit (line 1); 6.0.4 its own depth limit at
        # the offending line (2): either names a line of the file
        ("name: t\nx: " + "[" * 3000 + "]" * 3000 + "\n", (1, 2), "nest"),
    ],
)
def test_yaml_syntax_errors_have_a_line(text, line, message, tmp_path):
    err = _load_error(text, tmp_path)
    assert err.line in (line if isinstance(line, tuple) else (line,)), str(err)
    assert message in str(err)
    assert err.field == ""
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- name: t\n", "a scenario is a mapping (name:, populations:, ...), got a list"),
        ("just a string\n", "a scenario is a mapping"),
        ("seed: 1\n", "missing required key 'name'"),
    ],
)
def test_whole_file_errors(text, message, tmp_path):
    err = _load_error(text, tmp_path)
    assert (err.line, err.column) == (1, 1)
    assert message in err.message


def test_errors_survive_pickling(tmp_path):
    import pickle

    err = _load_error("name: t\nseed: x\n", tmp_path)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.line, copy.column, copy.field, copy.message) == (
        err.file, err.line, err.column, err.field, err.message
    )
    assert str(copy) == str(err)


def test_unreadable_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.yaml")
    err = info.value
    assert err.file == str(tmp_path / "missing.yaml")
    assert err.line is None
    assert "cannot read the scenario file" in str(err)
    assert str(err).startswith(f"{tmp_path / 'missing.yaml'}: cannot read")


def test_a_file_error_names_the_file_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("sessions: 1", "sessions: many"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}:5:15: populations[0].sessions: expected an integer, got 'many'"
