"""A full scenario with a recognisable fake key: the key and the client secrets minted from it
appear nowhere in stdout, stderr, logs, traces, results or the report."""

import os
import re
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-RECOGNISABLE-0123456789abcdef"


async def test_a_full_run_leaks_no_key_anywhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OPENAI_API_KEY=FAKE_KEY, OTEL_TRACES_EXPORTER="console", PYTHONUNBUFFERED="1")
    async with trio.open_nursery() as nursery:
        server = await nursery.start(_serve, env)
        scenario = tmp_path / "remote.yaml"
        scenario.write_text(f"""
name: secret-scan
target: {{url: "{server}", api_key_env: OPENAI_API_KEY}}
session: {{output_modalities: [text], turn_detection: null}}
populations: [{{name: p, script: s, sessions: 3}}]
scripts: {{s: [{{say: hello}}]}}
faults: [{{at: 0.5s, action: drop_connections, percent: 100}}]
thresholds: [errors == 0]
""")
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, "-m", "orchestrator", "run", str(scenario), "--out", str(tmp_path / "out"),
                 "--trace-file", str(tmp_path / "spans.jsonl"), "--json"],
                env=env, capture_stdout=True, capture_stderr=True, check=False)
        nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    blobs = {"stdout": done.stdout.decode(), "stderr": done.stderr.decode()}
    for path in (tmp_path / "out").iterdir():
        blobs[path.name] = path.read_text()
    blobs["spans"] = (tmp_path / "spans.jsonl").read_text()
    assert "rtfleet.session" in blobs["spans"] and "secret-scan" in blobs["results.json"]
    for name, text in blobs.items():
        assert FAKE_KEY not in text, f"the API key leaked into {name}"
        assert FAKE_KEY[3:16] not in text, f"part of the API key leaked into {name}"
        assert not re.search(r"ek_[A-Za-z0-9_\-]{8,}", text), f"a client secret leaked into {name}"


async def _serve(env, task_status=trio.TASK_STATUS_IGNORED):
    code = ("import sys, trio; from standin import run_server\n"
            "async def main():\n"
            "    async with trio.open_nursery() as n:\n"
            "        url = await n.start(run_server, '127.0.0.1', 0, [sys.argv[1]])\n"
            "        print(url, flush=True)\n"
            "trio.run(main)\n")
    async with trio.open_nursery() as nursery:
        process = await nursery.start(lambda task_status: trio.run_process(
            [sys.executable, "-c", code, FAKE_KEY], env=env, stdout=__import__("subprocess").PIPE,
            task_status=task_status, check=False))
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive_some(1)
        task_status.started(line.decode().strip())
