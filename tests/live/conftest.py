"""Fixtures for the GPT-Live tests (the audio turn is the integration tests' own)."""

from tests.integration.conftest import audio_turn  # noqa: F401  (a fixture)
