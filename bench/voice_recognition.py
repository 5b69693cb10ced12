"""Recognition quality and cost of the hearing stand-in (issue 18): spoken utterances
(espeak-ng, 2 voices x 2 rates) of a 20-rule file's phrases, decoded against the rules'
grammar (standin/hearing.py); share heard as the right rule, false matches on off-grammar
utterances, CPU seconds per second of audio. Not a test: prints figures.

    PYTHONPATH=. nice -n 19 python3 bench/voice_recognition.py
"""

from __future__ import annotations

import time

import numpy as np

from actors.speech import synthesize
from standin.hearing import Hearing
from standin.model.rules import parse_rules

CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid"]
SAYINGS = [  # (keywords of a rule, a phrase a user says)
    ("book table", "book a table for two"), ("cancel order", "please cancel my order"),
    ("track package", "track my package"), ("opening hours", "what are your opening hours"),
    ("speak agent", "I want to speak to an agent"), ("reset password", "reset my password"),
    ("check balance", "check my balance"), ("pay bill", "I want to pay my bill"),
    ("change address", "change my address"), ("order pizza", "order a large pizza"),
    ("play music", "play some music"), ("set alarm", "set an alarm for seven"),
    ("call mom", "call my mom"), ("turn lights", "turn off the lights"),
    ("send message", "send a message to John"), ("what time", "what time is it"),
    ("flight status", "what is my flight status"), ("rent car", "I need to rent a car"),
    ("refund", "I would like a refund"),
]
OFF = ["the quick brown fox jumps over the lazy dog", "I like green apples", "how tall is the tower",
       "my cat sleeps all day", "can you recommend a good book", "it is raining again",
       "where is the nearest station", "tell me a joke", "I am learning to cook", "close the window",
       "the meeting starts at noon", "bring me some water", "how old are you"]


def rules_text() -> str:
    lines = ["rules:", "  - when: /weather in (?P<city>[a-z]+)/", "    call: {name: get_weather, args: {city: $city}}",
             "    hear: [" + ", ".join(f'"what\'s the weather in {c}"' for c in CITIES) + "]"]
    for keywords, phrase in SAYINGS:
        lines += [f"  - keywords: [{', '.join(keywords.split())}]", f'    say: "ok"', f'    hear: ["{phrase}"]']
    return "\n".join(lines) + "\n"


def main() -> None:
    rules = parse_rules(rules_text(), "bench-rules.yaml")
    assert len(rules.rules) == 20
    hearing = Hearing(rules.phrases())
    variants = [("en-us", 150), ("en-us", 190), ("en-gb", 150), ("en-gb", 190)]
    targets = [(f"what's the weather in {c}", 0) for c in CITIES] + [(p, i + 1) for i, (_, p) in enumerate(SAYINGS[:20])]
    targets = targets[:25]
    right = total = 0
    cpu = audio_s = 0.0
    wrong: list[str] = []
    for voice, rate in variants:
        for phrase, index in targets:
            samples = np.frombuffer(synthesize(phrase, voice=voice, rate=rate), "<i2").astype(np.float32) / 32768
            t = time.process_time()
            heard = hearing.hear(samples, 24_000)
            cpu += time.process_time() - t
            audio_s += len(samples) / 24_000
            total += 1
            found = rules.answer(heard or "", {"get_weather"})
            ok = found is not None and found[0].index == index and (index != 0 or heard.casefold() == phrase.casefold())
            right += ok
            if not ok:
                wrong.append(f"{voice}/{rate}: {phrase!r} -> {heard!r}")
    false = off_total = 0
    for voice, rate in variants:
        for phrase in OFF:
            if off_total == 50:
                break
            samples = np.frombuffer(synthesize(phrase, voice=voice, rate=rate), "<i2").astype(np.float32) / 32768
            t = time.process_time()
            heard = hearing.hear(samples, 24_000)
            cpu += time.process_time() - t
            audio_s += len(samples) / 24_000
            off_total += 1
            if heard is not None and rules.answer(heard, {"get_weather"}) is not None:
                false += 1
                wrong.append(f"off-grammar {voice}/{rate}: {phrase!r} -> {heard!r}")
    print(f"in-grammar: {right}/{total} matched the right rule ({100 * right / total:.0f}%)")
    print(f"off-grammar: {false}/{off_total} false matches ({100 * false / off_total:.0f}%)")
    print(f"CPU: {cpu:.2f} s for {audio_s:.1f} s of audio = {cpu / audio_s:.3f} s per second of audio "
          f"(one core holds ~{audio_s / cpu:.0f} hearing sessions in real time)")
    for line in wrong:
        print("  miss:", line)


if __name__ == "__main__":
    main()
