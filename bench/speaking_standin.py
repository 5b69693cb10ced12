"""Cost of the speaking stand-in (issue 18 item 5, ``--voice speech``): what synthesizing an
answer takes (espeak-ng, wall and CPU per second of speech, PCM16 24 kHz and G.711), what a
cached answer costs, and how many distinct new answers a second the 2-worker pool keeps up with,
against the tone. Not a test: prints figures.

    PYTHONPATH=. nice -n 19 python3 bench/speaking_standin.py
"""

from __future__ import annotations

import resource
import statistics
import time

from standin.model.audio import PCM_24K, AudioFormat, Tone
from standin.model.response import split_words
from standin.model.utterance import speech_utterance, tone_utterance
from standin.speech import SpeechVoice

ANSWERS = [f"Your order number {n} is on its way and should arrive on {day}." for n, day in
           zip(range(101, 141), ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"] * 8)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_at_a_time(voice: SpeechVoice, fmt: AudioFormat, texts: list[str]) -> tuple[list[float], float, float]:
    """Wall ms per answer, CPU seconds (espeak-ng + this process) and seconds of speech."""
    walls, speech_s = [], 0.0
    cpu0 = children_cpu() + own_cpu()
    for text in texts:
        t0 = time.perf_counter()
        audio = voice.prepare(text, fmt, 150)()
        walls.append((time.perf_counter() - t0) * 1000)
        speech_s += fmt.duration_ms(len(audio)) / 1000
    return walls, children_cpu() + own_cpu() - cpu0, speech_s


def main() -> None:
    voice = SpeechVoice()
    print(f"{len(ANSWERS)} distinct answers of 12 words, espeak-ng en-us at 150 words a minute")
    for fmt, texts in ((PCM_24K, ANSWERS[:20]), (AudioFormat("audio/pcmu"), ANSWERS[20:])):
        walls, cpu, speech_s = one_at_a_time(voice, fmt, texts)
        print(f"  {fmt.type:11s} new answer: wall p50 {statistics.median(walls):.0f} ms, "
              f"max {max(walls):.0f} ms; CPU {cpu / speech_s * 1000:.0f} ms per second of speech "
              f"({speech_s / len(texts):.2f} s an answer)")
    t0 = time.perf_counter()
    for _ in range(1000):
        voice.prepare(ANSWERS[0], PCM_24K, 150)()
    print(f"  cached answer: {(time.perf_counter() - t0) * 1000:.1f} us a lookup (1000 lookups)")
    fresh = SpeechVoice()
    texts = [a.replace("order", "parcel") for a in ANSWERS]
    t0 = time.perf_counter()
    pending = [fresh.prepare(text, PCM_24K, 150) for text in texts]
    audio = [get() for get in pending]
    wall = time.perf_counter() - t0
    print(f"  pool of 2 workers: {len(texts)} new answers in {wall:.2f} s = {len(texts) / wall:.1f} "
          f"new answers a second ({sum(len(a) for a in audio) / 48_000 / wall:.0f} s of speech a second)")
    words = split_words(ANSWERS[0])
    speech = voice.prepare(ANSWERS[0], PCM_24K, 150)()
    t0 = time.perf_counter()
    for _ in range(200):
        speech_utterance(speech, PCM_24K, words, 100)
    cut = (time.perf_counter() - t0) / 200 * 1e6
    tone = Tone()
    t0 = time.perf_counter()
    for _ in range(200):
        tone_utterance(tone, PCM_24K, words, 100, 400)
    toned = (time.perf_counter() - t0) / 200 * 1e6
    print(f"  per response in the model: cutting cached speech into chunks {cut:.0f} us; "
          f"the tone for the same words {toned:.0f} us")
    voice.close()
    fresh.close()


if __name__ == "__main__":
    main()
