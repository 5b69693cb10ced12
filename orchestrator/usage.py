"""Usage and cost: what a turn consumed, at what price (pure functions and values).

Realtime bills tokens per response: ``response.done`` carries ``usage`` with input text and
audio tokens (of which ``cached_tokens`` were cached) and output text and audio tokens
(developers.openai.com/api/docs/guides/realtime-costs: user audio is a token per 100 ms,
assistant audio a token per 50 ms, and the whole conversation is input to every response).
GPT-Live bills active seconds (``session.usage.updated``: cumulative seconds of the session).

:data:`PRICES` are list prices in USD, per million tokens or per minute, with the date they
were read and their source; a scenario's ``prices:`` (or ``--prices FILE``) adds or overrides
models. A model with no price has an *unknown* cost, said so once, never counted as 0.

:func:`usage_counts` turns one ``usage`` object into the run's counter increments
(``usage.input_text_tokens`` …) and :meth:`Price.cost` prices them.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

__all__ = ["PRICES", "PRICES_AS_OF", "Price", "TOKEN_FIELDS", "format_usage", "price_for",
           "usage_counts", "parse_prices", "PriceError"]

#: when and where the shipped prices were read
PRICES_AS_OF = "2026-12-05"
PRICES_SOURCE = "developers.openai.com/api/docs/models/<model> (pricing sections)"

#: the run's usage counters, in the order a report lists them
TOKEN_FIELDS = ("usage.input_text_tokens", "usage.input_audio_tokens",
                "usage.cached_text_tokens", "usage.cached_audio_tokens",
                "usage.output_text_tokens", "usage.output_audio_tokens")
LIVE_FIELDS = ("usage.live_active_seconds",)


class PriceError(ValueError):
    """A price table entry that is not one (names the model and field)."""


@attrs.frozen
class Price:
    """USD per million tokens (Realtime) or per active minute (Live) of one model."""

    text_input: float = 0.0
    text_cached: float = 0.0
    text_output: float = 0.0
    audio_input: float = 0.0
    audio_cached: float = 0.0
    audio_output: float = 0.0
    active_minute: float = 0.0
    source: str = ""

    def cost(self, counts: Mapping[str, float]) -> float:
        """USD of ``counts`` (usage counter name -> amount; cached tokens are part of input)."""
        get = counts.get
        text_cached, audio_cached = get("usage.cached_text_tokens", 0), get("usage.cached_audio_tokens", 0)
        tokens = ((get("usage.input_text_tokens", 0) - text_cached) * self.text_input
                  + text_cached * self.text_cached
                  + (get("usage.input_audio_tokens", 0) - audio_cached) * self.audio_input
                  + audio_cached * self.audio_cached
                  + get("usage.output_text_tokens", 0) * self.text_output
                  + get("usage.output_audio_tokens", 0) * self.audio_output) / 1e6
        return tokens + get("usage.live_active_seconds", 0) / 60 * self.active_minute


_REALTIME = Price(text_input=4.0, text_cached=0.4, text_output=16.0, audio_input=32.0,
                  audio_cached=0.4, audio_output=64.0, source=PRICES_SOURCE)
#: shipped list prices (read on PRICES_AS_OF from PRICES_SOURCE)
PRICES: dict[str, Price] = {
    "gpt-realtime": _REALTIME,
    "gpt-realtime-2025-08-28": _REALTIME,
    "gpt-realtime-1.5": _REALTIME,
    "gpt-realtime-2": attrs.evolve(_REALTIME, text_output=24.0),
    "gpt-realtime-2.1-mini": Price(text_input=0.6, text_cached=0.06, text_output=2.4,
                                   audio_input=10.0, audio_cached=0.3, audio_output=20.0,
                                   source=PRICES_SOURCE),
    "gpt-4o-realtime-preview": Price(text_input=5.0, text_cached=2.5, text_output=20.0,
                                     audio_input=40.0, audio_cached=2.5, audio_output=80.0,
                                     source=PRICES_SOURCE),
    # GPT-Live: $0.05 per active minute, billed per second (PROTOCOL.md §6)
    "gpt-live": Price(active_minute=0.05, source="developers.openai.com/api/docs/models/gpt-live-1.1"),
    "gpt-live-1.1": Price(active_minute=0.05, source="developers.openai.com/api/docs/models/gpt-live-1.1"),
}
_PRICE_FIELDS = tuple(f.name for f in attrs.fields(Price) if f.name != "source")


def price_for(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """The model's price (exact name, else the longest known prefix: a dated snapshot of a
    priced model), or None when it has none."""
    table = PRICES if table is None else table
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name + "-")]
    return table[max(prefixes, key=len)] if prefixes else None


def parse_prices(data: Any, where: str = "prices") -> dict[str, Price]:
    """``{model: {text_input: …, audio_output: …, active_minute: …}}`` (USD per million tokens or
    per active minute) as Prices; raises PriceError naming ``where.model.field``."""
    if not isinstance(data, Mapping):
        raise PriceError(f"{where}: expected a mapping of model names to prices")
    out = {}
    for model, fields in data.items():
        if not isinstance(fields, Mapping):
            raise PriceError(f"{where}.{model}: expected a mapping of price fields")
        values = {}
        for key, value in fields.items():
            if key not in _PRICE_FIELDS:
                raise PriceError(f"{where}.{model}.{key}: unknown price field; known: "
                                 f"{', '.join(_PRICE_FIELDS)} (USD per 1M tokens, or per active minute)")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PriceError(f"{where}.{model}.{key}: expected a number >= 0 (USD), got {value!r}")
            values[key] = float(value)
        out[str(model)] = Price(**values, source=f"{where} (given)")
    return out


def usage_counts(usage: Any) -> dict[str, int]:
    """A Realtime ``response.done`` ``usage`` as the run's counter increments (missing or
    malformed fields count 0: usage is reported, never a reason to fail a turn)."""
    if not isinstance(usage, Mapping):
        return {}
    details_in = usage.get("input_token_details") or {}
    details_out = usage.get("output_token_details") or {}
    cached = details_in.get("cached_tokens_details") or {}

    def n(mapping: Any, key: str) -> int:
        value = mapping.get(key) if isinstance(mapping, Mapping) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    counts = {
        "usage.input_text_tokens": n(details_in, "text_tokens"),
        "usage.input_audio_tokens": n(details_in, "audio_tokens"),
        "usage.cached_text_tokens": n(cached, "text_tokens"),
        "usage.cached_audio_tokens": n(cached, "audio_tokens"),
        "usage.output_text_tokens": n(details_out, "text_tokens"),
        "usage.output_audio_tokens": n(details_out, "audio_tokens"),
    }
    if not cached and n(details_in, "cached_tokens"):  # no split given: count it as text
        counts["usage.cached_text_tokens"] = min(n(details_in, "cached_tokens"),
                                                 counts["usage.input_text_tokens"])
    return {k: v for k, v in counts.items() if v}


def format_usage(usage: dict[str, Any] | None) -> str:
    """One line: tokens in (audio, cached) and out, Live seconds, and the spend, or why unknown."""
    if not usage:
        return ""
    t = usage["tokens"]
    tokens_in = t["input_text_tokens"] + t["input_audio_tokens"]
    cached = t["cached_text_tokens"] + t["cached_audio_tokens"]
    tokens_out = t["output_text_tokens"] + t["output_audio_tokens"]
    parts = [f"usage: {tokens_in:,} tokens in ({t['input_audio_tokens']:,} audio, {cached:,} cached), "
             f"{tokens_out:,} out ({t['output_audio_tokens']:,} audio)"]
    if usage.get("live_active_seconds"):
        parts.append(f"{usage['live_active_seconds']:,.0f} Live active seconds")
    if usage.get("cost_usd") is not None:
        per_turn = usage.get("cost_per_turn_usd")
        parts.append(f"cost ${usage['cost_usd']:.4f}" + (f" (${per_turn:.5f}/turn)" if per_turn else ""))
    else:
        unknown = [p["model"] for p in (usage.get("prices") or {}).values() if not p["known"]]
        parts.append(f"cost unknown (no price for {', '.join(unknown)})")
    budget = usage.get("budget")
    if budget:
        limit = (f"${budget['max_cost_usd']:g}" if budget.get("max_cost_usd") is not None
                 else f"{budget['max_session_minutes']:g} session-minutes")
        parts.append(f"budget {limit}: " + (f"REACHED ({budget['reason']})" if budget["reached"]
                                           else "not reached"))
    return "; ".join(parts)
