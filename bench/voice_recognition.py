"""Recognition quality and cost of the hearing stand-in (issue 18), and how many sessions can
talk to it at once. Not a test: prints figures.

    PYTHONPATH=. nice -n 19 python3 bench/voice_recognition.py            # everything (~5 min)
    PYTHONPATH=. nice -n 19 python3 bench/voice_recognition.py --no-live  # quality and CPU only

**Quality.** A 20-rule file (`rules_text`: a weather rule with 5 cities, 18 keyword rules, a
regex rule with 2 phrases: 25 phrases) is spoken by espeak-ng exactly as a scenario's ``speak:``
produces it (`actors.speech.synthesize`: 24 kHz PCM16 with its 200 ms of leading and 400 ms of
trailing silence), by 2 voices x 2 rates (en-us and en-gb at 150 and 190 words a minute): 100
in-grammar utterances. Each goes to `Hearing.hear` as the server hands it over (float samples at
24 kHz; the 24 -> 16 kHz resampling is inside). *Right*: the words heard select the utterance's
rule through `Rules.answer` (for the weather rule, the right city too). The 50 off-grammar
sentences (`OFF_UNRELATED`: 30 unrelated; `OFF_NEAR`: 20 near misses that share words with the
phrases, e.g. "change my password", "turn on the radio", "track my order"), each checked to match
no rule when typed, are spoken by all 4 voice/rate pairs: 200 utterances. *False*: one of them
heard as words that some rule answers. A held-out row repeats both sets with voices and rates the
recognizer was not tuned on (en-us+f3 165, en-gb-x-rp 135, en-us+m3 210, en-029 175).

**Cost.** CPU seconds (``time.process_time`` around each ``hear``) per second of audio heard,
and per utterance. Process time, not wall time: this 2-core box also runs a soak benchmark, and
process time is what the decoding itself costs whatever the load.

**Sessions that hold real time.** The stand-in decodes an utterance when it is committed, on the
server's event loop (one core per server process, shared by all its sessions). A session that
talks continuously brings one second of audio per second, so one core keeps up with at most
``1 / (CPU s per audio s)`` of them (utilization 1); *capacity* below is that figure at 70 %
utilization, where the queueing delay of a commit stays small (M/D/1: mean wait = rho / (2 (1 -
rho)) service times, 1.2 at 70 %). The live run checks it: ``--sessions`` counts of WebSocket
sessions over loopback against the embedded server (its own process, rules model), each
streaming its utterances in real time (20 ms appends on a fixed schedule) back to back and
committing each one (manual commit), for ``--duration`` seconds. Latency = commit sent ->
``conversation.item.input_audio_transcription.completed`` received (what the user's next answer
waits for). A count *holds* when the p95 latency is under 0.5 s and the median of the last third
of the commits is within 0.1 s of the first third's (latency not growing). The clients share the
box with the server (and the soak), so the live figure is a floor for the server alone.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from actors.proto.audio import resample_rational
from actors.speech import synthesize
from standin.hearing import Hearing
from standin.model.audio import AudioFormat
from standin.model.rules import Rules, parse_rules

CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid"]
SAYINGS = [  # (keywords of a rule, the phrase a user says)
    ("book table", "book a table for two"), ("cancel order", "please cancel my order"),
    ("track package", "track my package"), ("opening hours", "what are your opening hours"),
    ("speak agent", "I want to speak to an agent"), ("reset password", "reset my password"),
    ("check balance", "check my balance"), ("pay bill", "I want to pay my bill"),
    ("change address", "change my address"), ("order pizza", "order a large pizza"),
    ("play music", "play some music"), ("set alarm", "set an alarm for seven"),
    ("call mom", "call my mom"), ("turn lights", "turn off the lights"),
    ("send message", "send a message to John"), ("what time", "what time is it"),
    ("flight status", "what is my flight status"), ("rent car", "I need to rent a car"),
]
REFUND = ["I would like a refund", "I want my money back"]  # one regex rule, two phrases
OFF_UNRELATED = [
    "the quick brown fox jumps over the lazy dog", "I like green apples", "how tall is the tower",
    "my cat sleeps all day", "can you recommend a good book", "it is raining again",
    "where is the nearest station", "tell me a joke", "I am learning to cook", "close the window",
    "the meeting starts at noon", "bring me some water", "how old are you",
    "what a beautiful morning", "the train was late today", "do you sell gift cards",
    "I lost my umbrella", "we should go for a walk", "how do I get to the airport",
    "what is your favorite color", "the coffee is too hot", "my phone battery is dead",
    "open the garage door", "who won the game last night", "spell your name please",
    "is the museum open on sunday", "I forgot my keys at home", "let us meet tomorrow",
    "water the plants", "thank you very much",
]
OFF_NEAR = [  # share words with the phrases; typed, they match no rule
    "what's the weather like", "book a flight to Paris", "cancel my subscription", "track my order",
    "check the weather", "reset the router", "I want to speak to a doctor", "pay my rent",
    "change my password", "play some football", "set the table for dinner", "call my brother",
    "turn on the radio", "send me the bill", "what is my account number",
    "I need a taxi to the station", "order some flowers", "what are your prices", "where is my flight",
    "I would like a coffee",
]
SMALL = [["yes", "no", "help", "stop"], ["book a table", "cancel my order"], ["what's the weather in Paris"]]
VOICES = [("en-us", 150), ("en-us", 190), ("en-gb", 150), ("en-gb", 190)]
HELD_OUT = [("en-us+f3", 165), ("en-gb-x-rp", 135), ("en-us+m3", 210), ("en-029", 175)]
RATE = 24_000
FUNCTIONS = {"get_weather"}


def rules_text() -> str:
    lines = ["rules:", "  - when: /weather in (?P<city>[a-z]+)/", "    call: {name: get_weather, args: {city: $city}}",
             "    hear: [" + ", ".join(f'"what\'s the weather in {c}"' for c in CITIES) + "]"]
    for keywords, phrase in SAYINGS:
        lines += [f"  - keywords: [{', '.join(keywords.split())}]", '    say: "ok"', f'    hear: ["{phrase}"]']
    lines += ["  - when: /refund|money back/", '    say: "ok"',
              "    hear: [" + ", ".join(f'"{p}"' for p in REFUND) + "]"]
    return "\n".join(lines) + "\n"


def load() -> Rules:
    rules = parse_rules(rules_text(), "bench-rules.yaml")
    assert len(rules.rules) == 20 and len(rules.phrases()) == 25
    for sentence in OFF_UNRELATED + OFF_NEAR:
        assert rules.answer(sentence, FUNCTIONS) is None, f"off-grammar {sentence!r} matches a rule typed"
    return rules


def in_grammar() -> list[tuple[str, int]]:
    """(phrase, index of its rule)."""
    return ([(f"what's the weather in {c}", 0) for c in CITIES] + [(p, i + 1) for i, (_, p) in enumerate(SAYINGS)]
            + [(p, len(SAYINGS) + 1) for p in REFUND])


def samples(text: str, voice: str, rate: int, g711: bool = False) -> tuple[np.ndarray, int]:
    """What the server hands to the hearing: the scenario's speak: audio as float samples, and
    their rate. ``g711``: as a SIP call carries it, mu-law at 8 kHz (the server hears the 8 kHz
    samples of a G.711 session)."""
    pcm = synthesize(text, voice=voice, rate=rate)
    if g711:
        mulaw = AudioFormat("audio/pcmu")
        narrow = np.frombuffer(resample_rational(pcm, RATE, 8_000), "<i2").astype(np.float32) / 32768
        return mulaw.decode(mulaw.encode(narrow)), 8_000
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, RATE


class Tally:
    def __init__(self) -> None:
        self.right = self.total = self.false = self.off = 0
        self.cpu = self.audio_s = 0.0
        self.cpu_in: list[float] = []  # per in-grammar utterance
        self.audio_in: list[float] = []
        self.misses: list[str] = []

    def hear(self, hearing: Hearing, x: np.ndarray, rate: int) -> str | None:
        t = time.process_time()
        heard = hearing.hear(x, rate)
        self.cpu += time.process_time() - t
        self.audio_s += len(x) / rate
        return heard


def measure(hearing: Hearing, rules: Rules, variants: list[tuple[str, int]], g711: bool = False
            ) -> dict[str, Tally]:
    """Per voice/rate pair, and ``"all"``."""
    tallies = {f"{v} {r}": Tally() for v, r in variants}
    for voice, rate in variants:
        tally = tallies[f"{voice} {rate}"]
        for phrase, index in in_grammar():
            x, x_rate = samples(phrase, voice, rate, g711)
            before = tally.cpu
            heard = tally.hear(hearing, x, x_rate)
            tally.cpu_in.append(tally.cpu - before)
            tally.audio_in.append(len(x) / x_rate)
            found = rules.answer(heard or "", FUNCTIONS) if heard else None
            ok = (found is not None and found[0].index == index
                  and (index != 0 or heard.casefold() == phrase.casefold()))
            tally.total += 1
            tally.right += ok
            if not ok:
                tally.misses.append(f"{voice}/{rate}: {phrase!r} -> {heard!r}")
        for sentence in OFF_UNRELATED + OFF_NEAR:
            heard = tally.hear(hearing, *samples(sentence, voice, rate, g711))
            tally.off += 1
            if heard is not None and rules.answer(heard, FUNCTIONS) is not None:
                tally.false += 1
                tally.misses.append(f"off-grammar {voice}/{rate}: {sentence!r} -> {heard!r}")
    total = Tally()
    for tally in tallies.values():
        for name in ("right", "total", "false", "off", "cpu", "audio_s"):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
        total.cpu_in += tally.cpu_in
        total.audio_in += tally.audio_in
        total.misses += tally.misses
    tallies["all"] = total
    return tallies


def print_quality(title: str, tallies: dict[str, Tally]) -> None:
    print(f"\n{title}")
    print(f"  {'voice rate':<18} {'right':>12} {'false':>12} {'CPU s/audio s':>14}")
    for name, t in tallies.items():
        print(f"  {name:<18} {t.right:>4}/{t.total:<3} {100 * t.right / t.total:3.0f}% "
              f"{t.false:>4}/{t.off:<3} {100 * t.false / t.off:3.1f}% {t.cpu / t.audio_s:>10.3f}")


# -- live: N sessions over loopback -------------------------------------------------------------

def serve(rules_path: str) -> None:
    """``--serve RULES``: the embedded server with the rules model, in this process; prints
    ``URL KEY``, serves until stdin closes, then prints its process time and exits."""
    import trio

    from standin import EmbeddedServer, generate_api_key
    from standin.voice_model import rules_model_config

    config, note = rules_model_config(rules_path)
    if note is not None:
        sys.exit(note)

    async def main() -> None:
        key = generate_api_key()
        server = EmbeddedServer(api_keys={key}, model_config=config)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(server.serve, "127.0.0.1", 0)
            print(url, key, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            print(time.process_time(), flush=True)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def talk(url: str, key: str, clips: list[tuple[bytes, str]], first: int, start: float,
               duration: float, latencies: list[tuple[float, float, bool]]) -> None:
    """One session: the clips from ``first`` on, back to back in real time, each committed."""
    import trio

    from standin.testing import open_client, split_chunks

    async with open_client(url, key=key) as client:
        await client.send({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}}}})
        await client.recv_until("session.updated")
        pending: deque[tuple[float, str]] = deque()
        done = trio.Event()
        sent_all = False

        async def read() -> None:
            while True:
                event = await client.recv()
                if event["type"] == "conversation.item.input_audio_transcription.completed":
                    at, expected = pending.popleft()
                    now = trio.current_time()
                    latencies.append((at - start, now - at, event["transcript"] == expected))
                    if sent_all and not pending:
                        done.set()
                elif event["type"] == "error":
                    raise RuntimeError(f"server error: {event['error']}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            due = start
            i = first
            while due - start < duration:
                pcm, expected = clips[i % len(clips)]
                i += 1
                for chunk in split_chunks(pcm, 20, RATE):
                    await trio.sleep_until(due)
                    await client.send({"type": "input_audio_buffer.append",
                                       "audio": base64.b64encode(chunk).decode()})
                    due += len(chunk) / (2 * RATE)
                pending.append((trio.current_time(), expected))
                await client.send({"type": "input_audio_buffer.commit"})
            sent_all = True
            with trio.move_on_after(30):
                if pending:
                    await done.wait()
            nursery.cancel_scope.cancel()


def live(rules_path: str, sessions: int, duration: float) -> dict[str, float]:
    import trio

    server = subprocess.Popen([sys.executable, __file__, "--serve", rules_path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        url, key = server.stdout.readline().split()
        clips = [(synthesize(phrase, voice="en-us", rate=150), phrase) for phrase, _ in in_grammar()]
        clip_s = statistics.mean(len(c) / (2 * RATE) for c, _ in clips)
        latencies: list[tuple[float, float, bool]] = []

        async def main() -> None:
            start = trio.current_time() + 1.0
            async with trio.open_nursery() as nursery:
                for n in range(sessions):  # phases spread over one utterance
                    nursery.start_soon(talk, url, key, clips, n, start + clip_s * n / sessions, duration, latencies)

        cpu0, own0, wall0 = _cpu_of(server.pid), time.process_time(), time.monotonic()
        trio.run(main)
        server_cpu, own_cpu = _cpu_of(server.pid) - cpu0, time.process_time() - own0
        wall = time.monotonic() - wall0
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    latencies.sort()
    lat = [x[1] for x in latencies]
    third = max(1, len(lat) // 3)
    first, last = statistics.median(lat[:third]), statistics.median(lat[-third:])
    p95 = float(np.percentile(lat, 95))
    heard_s = len(lat) * clip_s
    return {"commits": len(lat), "right": sum(x[2] for x in latencies), "p50": statistics.median(lat),
            "p95": p95, "first": first, "last": last, "server_cpu_per_s": server_cpu / heard_s,
            "server_core": server_cpu / wall, "client_core": own_cpu / wall,
            "holds": p95 < 0.5 and last - first <= 0.1}


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-live", action="store_true", help="skip the live run of concurrent sessions")
    p.add_argument("--no-held-out", action="store_true", help="skip the held-out voices")
    p.add_argument("--no-small", action="store_true", help="skip the small rule files")
    p.add_argument("--no-g711", action="store_true", help="skip the G.711 (8 kHz mu-law) run")
    p.add_argument("--sessions", default="4,8,12,16,24", help="session counts of the live run")
    p.add_argument("--duration", type=float, default=20.0, help="seconds each live run talks")
    p.add_argument("--misses", action="store_true", help="list every utterance heard wrong")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return
    rules = load()
    t = time.process_time()
    hearing = Hearing(rules.phrases())
    setup = time.process_time() - t
    main_set = measure(hearing, rules, VOICES)
    print(f"hearing: {len(rules.rules)} rules, {len(rules.phrases())} phrases; "
          f"Hearing() set up in {setup:.2f} s CPU")
    print_quality("quality (2 voices x 2 rates; in-grammar 25 phrases each, off-grammar 50 sentences each)",
                  main_set)
    tallies = [main_set["all"]]
    if not args.no_held_out:
        held = measure(hearing, rules, HELD_OUT)
        print_quality("held-out voices and rates (not tuned on)", held)
        tallies.append(held["all"])
    if not args.no_small:
        print("\nsmall rule files (few words to hear other speech as): the same voices, the 50 off-grammar sentences")
        print(f"  {'phrases':<36} {'right':>9} {'false':>12}")
        for phrases in SMALL:
            small = Hearing(phrases)
            right = total = false = off = 0
            for voice, rate in VOICES:
                for phrase in phrases:
                    total += 1
                    right += small.hear(*samples(phrase, voice, rate)) == phrase
                for sentence in OFF_UNRELATED + OFF_NEAR:
                    off += 1
                    false += small.hear(*samples(sentence, voice, rate)) is not None
            print(f"  {' | '.join(phrases):<36} {right:>4}/{total:<4} {false:>5}/{off:<3} {100 * false / off:.1f}%")
    if not args.no_g711:
        narrow = measure(hearing, rules, VOICES, g711=True)
        print_quality("g711: the same voices through mu-law at 8 kHz (a SIP call)", narrow)
        tallies.append(narrow["all"])
    t = main_set["all"]
    per_s = t.cpu / t.audio_s
    per_utt = statistics.mean(t.cpu_in)
    utt_s = statistics.mean(t.audio_in)
    print("\ncost (CPU seconds of process time: robust to the load of the other benchmark)")
    print(f"  CPU per second of audio         {per_s:.3f} s")
    print(f"  CPU per in-grammar utterance    {1000 * per_utt:.0f} ms (mean {utt_s:.1f} s of audio, "
          f"p95 {1000 * float(np.percentile(t.cpu_in, 95)):.0f} ms)")
    print(f"  utterances decoded per core-s   {1 / per_utt:.1f}")
    print(f"  continuously talking sessions   {1 / per_s:.0f} per core at utilization 1; "
          f"capacity {0.7 / per_s:.0f} per server process (one event loop, 70 %)")
    if not args.misses:
        print("\n(--misses lists the utterances heard wrong)")
    else:
        for tally in tallies:
            for line in tally.misses:
                print("  miss:", line)
    if args.no_live:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(rules_text())
        print(f"\nlive: N WebSocket sessions over loopback, each talking back to back for {args.duration:.0f} s; "
              "latency = commit -> transcription completed")
        print(f"  {'N':>3} {'commits':>8} {'heard right':>12} {'p50 ms':>7} {'p95 ms':>7} {'first/last third ms':>20} "
              f"{'server CPU/audio s':>19} {'server/client core':>18}  holds")
        for n in (int(x) for x in args.sessions.split(",")):
            r = live(str(path), n, args.duration)
            print(f"  {n:>3} {r['commits']:>8} {r['right']:>6}/{r['commits']:<5} {1000 * r['p50']:>7.0f} "
                  f"{1000 * r['p95']:>7.0f} {1000 * r['first']:>9.0f}/{1000 * r['last']:<10.0f} "
                  f"{r['server_cpu_per_s']:>19.3f} {r['server_core']:>8.0%}/{r['client_core']:<9.0%}  "
                  f"{'yes' if r['holds'] else 'no'}")
        print(f"  (load average after: {os.getloadavg()[0]:.2f}; the soak and these clients share the 2 cores)")


if __name__ == "__main__":
    main()
