from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.realtime.beta import ga_session_to_beta
from actors.proto.errors import SessionConfigError
from actors.proto.session import (
    GA_VOICES,
    SessionConfig,
    audio_bytes_per_ms,
    normalize_format,
)

PCM = {"type": "audio/pcm", "rate": 24000}


def test_defaults_and_session_object() -> None:
    config = SessionConfig()
    assert config.model == "gpt-realtime"
    assert config.to_session_object() == {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {"format": PCM, "turn_detection": {"type": "server_vad"},
                      "transcription": None},
            "output": {"format": PCM},
        },
    }
    assert config.to_update_event() == {"type": "session.update",
                                         "session": config.to_session_object()}


def test_full_session_object() -> None:
    config = SessionConfig(
        model="gpt-realtime-mini",
        instructions="Be brief.",
        voice="cedar",
        output_modalities=["text"],
        input_format={"type": "audio/pcmu"},
        output_format="g711_alaw",
        turn_detection={"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200,
                        "silence_duration_ms": 400, "create_response": False,
                        "interrupt_response": True},
        transcription={"model": "gpt-4o-transcribe", "language": "de"},
    )
    session = config.to_session_object()
    assert "model" not in session
    assert session["instructions"] == "Be brief."
    assert session["output_modalities"] == ["text"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"] == {"format": {"type": "audio/pcma"}, "voice": "cedar"}
    assert session["audio"]["input"]["turn_detection"]["threshold"] == 0.6
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe",
                                                          "language": "de"}


def test_explicit_manual_turn_detection_is_sent_as_null() -> None:
    session = SessionConfig(turn_detection=None).to_session_object()
    assert session["audio"]["input"]["turn_detection"] is None


def test_values_are_read_only_and_outputs_are_fresh() -> None:
    config = SessionConfig(turn_detection={"type": "semantic_vad", "eagerness": "low"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.voice = "ash"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.turn_detection["eagerness"] = "high"  # type: ignore[index]
    session = config.to_session_object()
    session["audio"]["input"]["turn_detection"]["eagerness"] = "high"
    assert config.to_session_object()["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert config.input_format == PCM  # mappings compare equal to dicts
    assert hash(config) == hash(SessionConfig(turn_detection={"type": "semantic_vad",
                                                              "eagerness": "low"}))


def test_input_dicts_are_copied() -> None:
    detection = {"type": "server_vad", "threshold": 0.3}
    config = SessionConfig(turn_detection=detection)
    detection["threshold"] = 0.9
    assert config.turn_detection["threshold"] == 0.3


def test_from_dict_ga() -> None:
    config = SessionConfig.from_dict({
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "hi",
        "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcma"}, "turn_detection": None},
                  "output": {"voice": "marin", "format": {"type": "audio/pcma"}}},
    })
    assert config == SessionConfig(instructions="hi", voice="marin", input_format="audio/pcma",
                                   output_format="audio/pcma", turn_detection=None)


def test_from_dict_beta_names() -> None:
    config = SessionConfig.from_dict({
        "modalities": ["text", "audio"],
        "voice": "verse",
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "pcm16",
        "turn_detection": {"type": "semantic_vad"},
        "input_audio_transcription": {"model": "whisper-1"},
        "instructions": "x",
    })
    assert config == SessionConfig(
        voice="verse", input_format={"type": "audio/pcmu"}, output_format=PCM,
        turn_detection={"type": "semantic_vad"}, transcription={"model": "whisper-1"},
        instructions="x", output_modalities=["audio"],
    )
    assert SessionConfig.from_dict({"modalities": ["text"]}).output_modalities == ("text",)


def test_beta_and_ga_given_twice() -> None:
    with pytest.raises(SessionConfigError) as info:
        SessionConfig.from_dict({"voice": "ash", "audio": {"output": {"voice": "sage"}}})
    assert info.value.field == "audio.output.voice"
    same = SessionConfig.from_dict({"voice": "ash", "audio": {"output": {"voice": "ash"}}})
    assert same.voice == "ash"


def test_extra_fields_pass_through() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    data = {"tools": tools, "tool_choice": "auto", "max_output_tokens": "inf",
            "audio": {"input": {"noise_reduction": {"type": "near_field"}},
                      "output": {"speed": 1.2, "voice": "ash"}}}
    config = SessionConfig.from_dict(data)
    session = config.to_session_object()
    assert session["tools"] == tools and session["tools"] is not tools
    assert session["tool_choice"] == "auto"
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["audio"]["output"] == {"format": PCM, "voice": "ash", "speed": 1.2}
    tools[0]["name"] = "changed"
    assert config.to_session_object()["tools"][0]["name"] == "f"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"voice": "robot"}, "audio.output.voice"),
        ({"output_modalities": ["audio", "text"]}, "output_modalities"),
        ({"output_modalities": "audio"}, "output_modalities"),
        ({"audio": {"input": {"format": {"type": "audio/opus"}}}}, "audio.input.format"),
        ({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}},
         "audio.output.format.rate"),
        ({"audio": {"input": {"format": {"type": "audio/pcmu", "bits": 8}}}},
         "audio.input.format.bits"),
        ({"audio": {"input": {"format": 5}}}, "audio.input.format"),
        ({"audio": {"input": {"turn_detection": {"type": "magic"}}}},
         "audio.input.turn_detection.type"),
        ({"audio": {"input": {"turn_detection": "server_vad"}}}, "audio.input.turn_detection"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
         "audio.input.turn_detection.threshold"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad",
                                                 "silence_duration_ms": True}}}},
         "audio.input.turn_detection.silence_duration_ms"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad", "eagerness": "low"}}}},
         "audio.input.turn_detection.eagerness"),
        ({"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "max"}}}},
         "audio.input.turn_detection.eagerness"),
        ({"audio": {"input": {"transcription": {"modle": "whisper-1"}}}},
         "audio.input.transcription.modle"),
        ({"audio": {"input": {"transcription": {"model": 1}}}}, "audio.input.transcription.model"),
        ({"audio": {"input": {"formt": {}}}}, "audio.input.formt"),
        ({"audio": {"sideways": {}}}, "audio.sideways"),
        ({"audio": []}, "audio"),
        ({"voise": "ash"}, "voise"),
        ({"type": "translation"}, "type"),
        ({"type": "transcription", "instructions": "x"}, "instructions"),
        ({"type": "transcription", "audio": {"output": {}}}, "audio.output"),
        ({"model": ""}, "model"),
        ({"instructions": 5}, "instructions"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SessionConfigError) as info:
        SessionConfig.from_dict(data)
    assert info.value.field == field
    assert field in str(info.value)
    with pytest.raises(ValueError):  # also catchable as a ValueError
        SessionConfig.from_dict(data)


def test_not_a_mapping() -> None:
    with pytest.raises(SessionConfigError):
        SessionConfig.from_dict(["voice", "ash"])  # type: ignore[arg-type]


def test_direct_construction_is_validated() -> None:
    with pytest.raises(SessionConfigError) as info:
        SessionConfig(voice="nobody")
    assert "alloy" in info.value.message  # lists the valid voices
    with pytest.raises(SessionConfigError):
        SessionConfig(extra={"temperature": 0.7})


def test_updated_merges_audio_and_replaces_values() -> None:
    config = SessionConfig(voice="ash", turn_detection={"type": "server_vad", "threshold": 0.2},
                           transcription={"model": "whisper-1"})
    changed = config.updated({"type": "realtime", "audio": {"output": {"voice": "sage"}}})
    assert changed.voice == "sage"
    assert changed.turn_detection == config.turn_detection
    assert changed.transcription == config.transcription
    changed = config.updated({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}})
    assert changed.turn_detection == {"type": "semantic_vad"}  # replaced whole
    assert changed.updated({"instructions": "new"}).instructions == "new"
    assert config.updated({"model": "gpt-realtime"}) == config
    with pytest.raises(SessionConfigError) as info:
        config.updated({"model": "other-model"})
    assert info.value.field == "model"


def test_formats() -> None:
    assert normalize_format("pcm16") == PCM
    assert normalize_format({"type": "audio/pcm"}) == PCM
    assert normalize_format({"type": "audio/pcmu", "rate": 8000}) == {"type": "audio/pcmu"}
    assert audio_bytes_per_ms(PCM) == 48
    assert audio_bytes_per_ms({"type": "audio/pcma"}) == 8


detections = st.one_of(
    st.none(),
    st.fixed_dictionaries({"type": st.just("server_vad")}, optional={
        "threshold": st.floats(0, 1),
        "prefix_padding_ms": st.integers(0, 2000),
        "silence_duration_ms": st.integers(0, 2000),
        "idle_timeout_ms": st.none() | st.integers(1, 10_000),
        "create_response": st.booleans(),
        "interrupt_response": st.booleans(),
    }),
    st.fixed_dictionaries({"type": st.just("semantic_vad")}, optional={
        "eagerness": st.sampled_from(["low", "medium", "high", "auto"]),
        "create_response": st.booleans(),
    }),
)
formats = st.sampled_from(["pcm16", "g711_ulaw", "g711_alaw", "audio/pcmu", {"type": "audio/pcm"}])
configs = st.builds(
    SessionConfig,
    model=st.sampled_from(["gpt-realtime", "gpt-realtime-mini"]),
    instructions=st.none() | st.text(max_size=40),
    voice=st.none() | st.sampled_from(sorted(GA_VOICES)),
    output_modalities=st.sampled_from([["audio"], ["text"]]),
    input_format=formats,
    output_format=formats,
    turn_detection=detections,
    transcription=st.none() | st.fixed_dictionaries({}, optional={
        "model": st.sampled_from(["whisper-1", "gpt-4o-transcribe"]), "language": st.just("en")}),
    extra=st.fixed_dictionaries({}, optional={"tool_choice": st.just("auto"),
                                              "max_output_tokens": st.integers(1, 4096)}),
)


@settings(deadline=None)
@given(configs)
def test_round_trip_through_the_session_object(config: SessionConfig) -> None:
    session = config.to_session_object()
    before = copy.deepcopy(session)
    assert SessionConfig.from_dict({**session, "model": config.model}) == config
    assert session == before


@settings(deadline=None)
@given(configs)
def test_round_trip_through_beta_names(config: SessionConfig) -> None:
    beta = ga_session_to_beta(config.to_session_object())
    assert "audio" not in beta and "type" not in beta
    assert SessionConfig.from_dict({**beta, "model": config.model}) == config


@settings(deadline=None)
@given(configs, configs)
def test_updated_with_a_whole_session_object_gives_that_config(
    a: SessionConfig, b: SessionConfig
) -> None:
    # What b does not send (no instructions, no voice, no extra key) is left as it was.
    target = attrs.evolve(
        b,
        model=a.model,
        instructions=a.instructions if b.instructions is None else b.instructions,
        voice=a.voice if b.voice is None else b.voice,
        extra={**a.extra, **b.extra},
    )
    assert a.updated(b.to_session_object()) == target


def test_a_transcription_session_config_has_its_input_side_only() -> None:
    config = SessionConfig.from_dict({"type": "transcription", "include": [
        "item.input_audio_transcription.logprobs"], "audio": {"input": {
            "turn_detection": None, "noise_reduction": {"type": "near_field"}}}})
    assert config.transcribes and not SessionConfig().transcribes
    assert config.to_session_object() == {"type": "transcription", "include": [
        "item.input_audio_transcription.logprobs"], "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
            "transcription": {"model": "gpt-4o-transcribe"},  # the default when none is named
            "noise_reduction": {"type": "near_field"}}}}
    changed = config.updated({"type": "transcription", "audio": {"input": {
        "transcription": {"model": "whisper-1", "language": "de"}}}})
    assert changed.to_session_object()["audio"]["input"]["transcription"] == {
        "model": "whisper-1", "language": "de"}
    assert changed.to_session_object()["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    with pytest.raises(SessionConfigError) as info:
        changed.updated({"type": "realtime"})
    assert info.value.field == "type"
    with pytest.raises(SessionConfigError) as info:
        SessionConfig().updated({"type": "transcription"})
    assert info.value.field == "type"
