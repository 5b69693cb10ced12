"""What a Realtime response costs in tokens, as the hosted service bills it (guides/realtime-costs):
the whole context is input, a word a text token, user audio a token per 100 ms and assistant
audio one per 50 ms; what an earlier response of the conversation took as input is cached
(the instructions too, after the first); the output is a token a word and one per 50 ms of
its audio (the echo model's tone: ``chunk_ms`` a word; speech: its real length, set once
synthesized, ``response.set_audio_tokens``)."""

from __future__ import annotations

from typing import Any

from standin.model.conversation import item_text

__all__ = ["response_usage"]


def response_usage(instructions: str, context: list[dict[str, Any]], out_words: int, out_audio_ms: int,
                   audio_in_ms: dict[str, float], played_ms: dict[str, int], cached: set[str],
                   in_conversation: bool) -> dict[str, Any]:
    """The usage of a response to ``context``. ``audio_in_ms``: user audio items' lengths;
    ``played_ms``: assistant audio items' played lengths; ``cached``: ids of the items earlier
    responses took as input (``""``: the instructions), updated when ``in_conversation``."""
    text_in = len(instructions.split())
    audio_in = cached_audio = 0
    cached_text = text_in if cached else 0
    for item in context:
        item_id = item.get("id")
        if item_id in audio_in_ms:
            text, audio = 0, int(audio_in_ms[item_id] // 100)
        elif item_id in played_ms:
            text, audio = 0, int(played_ms[item_id] // 50)
        else:
            text, audio = len(item_text(item).split()), 0
        text_in += text
        audio_in += audio
        if item_id in cached:
            cached_text += text
            cached_audio += audio
    if in_conversation:
        cached.update(i["id"] for i in context if "id" in i)
        cached.add("")  # the instructions (no item has an empty id)
    out_audio = out_audio_ms // 50
    return {
        "total_tokens": text_in + audio_in + out_words + out_audio,
        "input_tokens": text_in + audio_in,
        "output_tokens": out_words + out_audio,
        "input_token_details": {
            "text_tokens": text_in, "audio_tokens": audio_in,
            "cached_tokens": cached_text + cached_audio,
            "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached_audio}},
        "output_token_details": {"text_tokens": out_words, "audio_tokens": out_audio},
    }
