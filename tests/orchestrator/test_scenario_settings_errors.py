"""Broken settings in scenario files (faults, target, session, thresholds, top-level
values): each error names the right line, column and field path.

As in test_scenario_loader_errors.py, the line the error must point at ends with ``#<`` and
``col`` is the expected 1-based column.
"""

import textwrap

import pytest

from orchestrator.scenario import ScenarioError, load_scenario_text


def _marked_line(text: str) -> int:
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith("#<")]
    return line


SETTINGS_CASES = {
    "unknown fault action": (
        """
        name: t
        faults:
          - {at: 10s, action: drop_connection}   #<
        """,
        "faults[0].action",
        "unknown action 'drop_connection'; did you mean 'drop_connections'?",
        23,
    ),
    "fault field out of range": (
        """
        name: t
        faults:
          - at: 10s
            drop_connections: {percent: 150}   #<
        """,
        "faults[0].drop_connections.percent",
        "must be <= 100, got 150.0",
        33,
    ),
    "fault without at": (
        """
        name: t
        faults:
          - {action: expire_keys}   #<
        """,
        "faults[0]",
        "missing required key 'at'",
        5,
    ),
    "fault for duration": (
        """
        name: t
        faults:
          - {at: 10s, action: reject_keys, for: ever}   #<
        """,
        "faults[0].for",
        "invalid duration 'ever'",
        41,
    ),
    "fault unknown key": (
        """
        name: t
        faults:
          - at: 10s
            expire_key: {}   #<
        """,
        "faults[0].expire_key",
        "did you mean 'expire_keys'?",
        5,
    ),
    "fault after the limit": (
        """
        name: t
        duration_limit: 30s
        faults:
          - {at: 45s, action: expire_keys}   #<
        """,
        "faults[0].at",
        "at 45s is not before duration_limit 30s",
        10,
    ),
    "server fault against a remote target": (
        """
        name: t
        target: {url: "wss://api.openai.com/v1/realtime"}
        faults:
          - {at: 5s, action: drop_connections}
          - {at: 10s, action: expire_keys}   #<
        """,
        "faults[1].action",
        "expire_keys needs the embedded server",
        23,
    ),
    "remote target with server faults": (
        """
        name: t
        target:
          url: wss://api.openai.com/v1/realtime
          faults: {drop_rate: 0.1}   #<
        """,
        "target.faults",
        "faults apply to the embedded target only",
        3,
    ),
    "target key typo": (
        """
        name: t
        target:
          ulr: wss://api.openai.com   #<
        """,
        "target.ulr",
        "unknown key 'ulr'; did you mean 'url'?",
        3,
    ),
    "target word": (
        """
        name: t
        target: embeded   #<
        """,
        "target",
        "did you mean 'embedded'?",
        9,
    ),
    "target url scheme": (
        """
        name: t
        target: {url: "ftp://x"}   #<
        """,
        "target.url",
        "expected a ws://, wss://, http:// or https:// URL",
        15,
    ),
    "embedded fault value": (
        """
        name: t
        target:
          faults:
            drop_rate: 2   #<
        """,
        "target.faults.drop_rate",
        "must be <= 1, got 2.0",
        16,
    ),
    "dialect": (
        """
        name: t
        target:
          dialect: v1   #<
        """,
        "target.dialect",
        "expected one of ga, beta; got 'v1'",
        12,
    ),
    "turn detection type": (
        """
        name: t
        session:
          turn_detection:
            type: server_vda   #<
        """,
        "session.turn_detection.type",
        "did you mean 'server_vad'?",
        11,
    ),
    "turn detection field": (
        """
        name: t
        session:
          turn_detection:
            type: server_vad
            silence_ms: 300   #<
        """,
        "session.turn_detection.silence_ms",
        "unknown key 'silence_ms'",
        5,
    ),
    "audio format": (
        """
        name: t
        session:
          input_format: pcm8   #<
        """,
        "session.input_format",
        "unknown audio format 'pcm8'",
        17,
    ),
    "audio rate": (
        """
        name: t
        session:
          output_format: {type: audio/pcm, rate: 16000}   #<
        """,
        "session.output_format.rate",
        "audio/pcm is 24000 Hz, got rate 16000",
        42,
    ),
    "modality": (
        """
        name: t
        session:
          output_modalities: [audio, video]   #<
        """,
        "session.output_modalities[1]",
        "expected one of audio, text; got 'video'",
        30,
    ),
    "threshold syntax": (
        """
        name: t
        thresholds:
          - errors == 0
          - "errors = 0"   #<
        """,
        "thresholds[1]",
        "expected a comparison operator; use == for equality",
        13,
    ),
    "threshold stat": (
        """
        name: t
        thresholds:
          - turn.time_to_first_audio p59x < 800ms   #<
        """,
        "thresholds[0]",
        "unknown statistic 'p59x'",
        30,
    ),
    "negative duration limit": (
        """
        name: t
        duration_limit: -5s   #<
        """,
        "duration_limit",
        "invalid duration '-5s'",
        17,
    ),
    "zero duration limit": (
        """
        name: t
        duration_limit: 0   #<
        """,
        "duration_limit",
        "must be > 0, got 0.0",
        17,
    ),
    "integer field": (
        """
        name: t
        seed: abc   #<
        """,
        "seed",
        "expected an integer, got 'abc'",
        7,
    ),
    "bool is not an integer": (
        """
        name: t
        seed: true   #<
        """,
        "seed",
        "expected an integer, got True",
        7,
    ),
    "string field": (
        """
        name: 123   #<
        """,
        "name",
        "expected a string, got 123 (quote it to make it a string)",
        7,
    ),
    "empty name": (
        """
        name: ""   #<
        """,
        "name",
        "must not be empty",
        7,
    ),
}


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=list(SETTINGS_CASES))
def test_error_names_line_and_field(case, tmp_path):
    yaml_text, field, message, column = SETTINGS_CASES[case]
    text = textwrap.dedent(yaml_text).lstrip("\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "scenarios/x.yaml", base_dir=tmp_path)
    err = info.value
    assert err.line == _marked_line(text), str(err)
    assert (err.field, err.column) == (field, column), str(err)
    assert message in err.message, str(err)
    assert str(err) == f"scenarios/x.yaml:{err.line}:{err.column}: {field}: {err.message}"
