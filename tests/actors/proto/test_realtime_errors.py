from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.errors import (
    EXCERPT_LIMIT,
    ProtocolError,
    QueueFull,
    SessionConfigError,
    excerpt,
)


def test_protocol_error_fields_and_payload() -> None:
    error = ProtocolError("invalid_field", "bad", detail={"field": "x"})
    assert (error.code, error.message, error.detail, error.local) == (
        "invalid_field", "bad", {"field": "x"}, False,
    )
    assert error.to_payload() == {
        "code": "invalid_field", "message": "bad", "detail": {"field": "x"},
    }
    assert str(error) == "invalid_field: bad"
    assert "remote" in repr(error)
    assert "local" in repr(ProtocolError("c", "m", local=True))


def test_queue_full_is_a_local_protocol_error() -> None:
    error = QueueFull("control", 8)
    assert isinstance(error, ProtocolError)
    assert error.local and error.code == "queue_full"
    assert error.detail == {"category": "control", "limit": 8}
    assert "8" in error.message


def test_session_config_error_is_also_a_value_error() -> None:
    error = SessionConfigError("audio.output.voice", "not a voice")
    assert isinstance(error, ValueError) and isinstance(error, ProtocolError)
    assert error.field == "audio.output.voice"
    assert error.local and error.code == "invalid_session_config"
    assert "audio.output.voice" in error.message


@pytest.mark.parametrize(
    "error",
    [
        ProtocolError("malformed_json", "m", detail={"position": 3}),
        ProtocolError("invalid_client_event", "m", local=True),
        QueueFull("control", 2),
        SessionConfigError("voice", "bad"),
    ],
)
def test_errors_pickle(error: ProtocolError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.to_payload() == error.to_payload()
    assert copy.local == error.local
    assert str(copy) == str(error)


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer abc.def-ghi",
        "sk-proj-ABCDEFGHIJKLMNOP",
        "ek_68af1234567890abcdef",
        "whsec_c2VjcmV0c2VjcmV0",
        "openai-insecure-api-key.sk-123456789",
    ],
)
def test_excerpt_redacts_credentials(secret: str) -> None:
    text = f'{{"headers": {{"Authorization": "{secret}"}}}}'
    out = excerpt(text)
    assert "[redacted]" in out
    body = secret.split()[-1].split(".", 1)[-1]
    assert body not in out


def test_excerpt_truncates_and_handles_bytes() -> None:
    assert excerpt("x" * 1000).endswith("…")
    assert len(excerpt("x" * 1000)) == EXCERPT_LIMIT
    assert excerpt("short") == "short"
    assert excerpt(b"\xff\xfeabc") == "\ufffd\ufffdabc"
    assert len(excerpt(bytearray(b"y" * 5000), 50)) == 50


@settings(deadline=None)
@given(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6))
def test_excerpt_is_short_and_never_leaks_a_key(prefix: str, key: str) -> None:
    out = excerpt(f"{prefix} sk-{key}")
    assert len(out) <= EXCERPT_LIMIT
    assert f"sk-{key}" not in out
