"""``rtfleet run --workers N``: children stream msgpack frames to the parent, which merges them;
one shared embedded server with the fault timeline in the parent; dead workers and truncated
streams are reported (exit 3)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from orchestrator.cli import main
from orchestrator.metrics import Histogram
from orchestrator.scenario.stream import (
    MAX_FRAME,
    BadFrame,
    FrameDecoder,
    TruncatedFrame,
    encode_frame,
)
from orchestrator.scenario.workers import WorkerFailed, run_workers

ROOT = Path(__file__).resolve().parents[2]


# -- the frame format --------------------------------------------------------------------------


def test_frames_decode_incrementally_byte_by_byte():
    frames = [encode_frame("hello", v=1, shard="1/2", pid=7),
              encode_frame("progress", p={"t": 1.0, "sessions": {"connected": 3}}),
              encode_frame("result", r={"metrics": {"histograms": {"x": {"b": [1, 2]}}}}),
              encode_frame("end", code=0)]
    data = b"".join(frames)
    decoder = FrameDecoder()
    got = []
    for i in range(len(data)):
        got += decoder.feed(data[i:i + 1])
    decoder.close()
    assert [f["k"] for f in got] == ["hello", "progress", "result", "end"]
    assert got[1]["p"]["sessions"] == {"connected": 3} and decoder.frames == 4


@pytest.mark.parametrize("cut", [2, 4, 9])
def test_a_truncated_frame_is_detected(cut):
    data = encode_frame("hello", v=1) + encode_frame("progress", p={"t": 2.0, "phase": "x" * 20})
    decoder = FrameDecoder()
    head = len(encode_frame("hello", v=1))
    assert [f["k"] for f in decoder.feed(data[:head + cut])] == ["hello"]
    with pytest.raises(TruncatedFrame, match="after 1"):
        decoder.close()


def test_garbage_is_a_bad_frame_not_a_huge_allocation():
    with pytest.raises(BadFrame, match="limit"):
        FrameDecoder().feed((MAX_FRAME + 1).to_bytes(4, "big") + b"x")
    with pytest.raises(BadFrame, match="not a map"):
        FrameDecoder().feed(len(b"\x01").to_bytes(4, "big") + b"\x01")


# -- a real child ---------------------------------------------------------------------------------

SCENARIO = """
name: workers
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 6}]
scripts: {s: [{say: hello}, {say: again}]}
thresholds: ["sessions.completed == 6", "turns.completed == 12", "errors == 0",
             "turn.time_to_first_text count == 12"]
"""


def test_a_worker_child_writes_msgpack_frames_on_its_pipe(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(scenario), "--shard", "2/3",
         "--emit-fd", str(write_fd)], pass_fds=(write_fd,), cwd=str(ROOT),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(write_fd)
    decoder, frames = FrameDecoder(), []
    with os.fdopen(read_fd, "rb") as stream:
        while chunk := stream.read1(65536):
            frames += decoder.feed(chunk)
    decoder.close()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 1, err  # 2 of 6 sessions: "== 6" fails; the merge decides
    assert out == b""  # stdout stays free: the stream has its own pipe
    kinds = [f["k"] for f in frames]
    assert kinds[0] == "hello" and kinds[-2:] == ["result", "end"] and "progress" in kinds
    assert frames[0]["shard"] == "2/3" and frames[-1]["code"] == 1
    result = frames[-2]["r"]
    assert result["sessions"]["completed"] == 2
    assert Histogram.from_dict(result["metrics"]["histograms"]["turn.time_to_first_text"]).count == 4


def test_two_workers_through_the_cli_merge_into_one_result_and_report(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "o"
    assert main(["run", str(scenario), "--workers", "2", "--json", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "progress" in lines[0] and lines[-1]["summary"]["verdict"] == "pass"  # --json as before
    merged = json.loads((out / "results.json").read_text())
    assert merged["scenario"]["workers"] == 2 and merged["scenario"]["shards"] == 2
    assert merged["sessions"]["completed"] == 6
    assert merged["summary"]["histograms"]["turn.time_to_first_text"]["count"] == 12
    # one embedded server, in the parent, that both workers used
    assert merged["target"] == "embedded"
    assert merged["embedded_server"]["shared"] is True
    assert merged["embedded_server"]["connections_opened"] == 6
    assert (out / "report.html").exists()


CHAOS = """
name: workers-chaos
seed: 3
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, phases: [{duration: 4s, concurrency: 4}]}]
scripts: {s: [{repeat: 100, steps: [{say: hi}, {pause: 100ms}]}]}
faults:
  - {at: 1.5s, action: drop_connections, percent: 100}
  - {at: 2.2s, action: kill_server, restart_after: 0.3s}
  - {at: 3.0s, action: reject_keys, for: 0.2s}
thresholds: ["faults.injected == 3", "sessions.failed == 0"]
"""


def test_workers_share_one_embedded_server_and_the_parent_runs_its_faults(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(CHAOS)
    out = tmp_path / "o"
    code = main(["run", str(scenario), "--workers", "2", "--quiet", "--out", str(out)])
    merged = json.loads((out / "results.json").read_text())
    assert code == 0, merged["thresholds"]
    server = merged["embedded_server"]
    assert server["restarts"] == 1  # one kill_server, one server: restarted once
    counters = merged["summary"]["counters"]
    assert counters["faults.injected"] == 3  # counted once, not once per worker
    assert counters["faults.dropped_connections"] == 4  # each worker dropped its 2
    assert counters["reconnect.attempts"] >= 8  # the drop and the kill reached every session
    labels = [m["label"] for m in merged["marks"] if m["kind"] == "fault"]
    assert any(label.startswith("kill_server") for label in labels)
    assert any(label.startswith("drop_connections") for label in labels)


# -- workers that die ----------------------------------------------------------------------------

LONG = """
name: long
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 4}]
scripts: {s: [{say: hello}, {pause: 60s}]}
"""


def _children(pid):
    # trio spawns from a worker thread: a child is listed under the thread that forked it
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return sorted(found)


def test_a_worker_killed_mid_run_is_reported_and_the_run_exits_3(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(LONG)
    parent = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(scenario), "--workers", "2", "--json"],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in parent.stdout:  # combined progress: wait until both workers run sessions
            if json.loads(line)["progress"]["started"] == 4:
                break
        victims = _children(parent.pid)
        assert len(victims) == 2
        os.kill(victims[1], signal.SIGKILL)
        out, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert parent.returncode == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: worker ") and "killed by SIGKILL" in line, err
    assert "frame(s) received" in line and "last progress" in line
    assert "Traceback" not in err


async def test_a_worker_stream_cut_inside_a_frame_fails_the_run(tmp_path):
    # a real child process that writes a hello and half a progress frame, then exits 0
    fake = tmp_path / "fake-python"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from orchestrator.scenario.stream import encode_frame
        fd = int(sys.argv[sys.argv.index("--emit-fd") + 1])
        frame = encode_frame("progress", p={{"t": 0.0, "phase": "x", "sessions": {{}}}})
        os.write(fd, encode_frame("hello", v=1, shard="1/1", pid=os.getpid()) + frame[:len(frame) // 2])
        """))
    fake.chmod(0o755)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    with pytest.raises(WorkerFailed) as caught:
        await run_workers(str(scenario), 2, python=str(fake))
    assert caught.value.code == 3
    message = str(caught.value)
    assert "exited with code 0" in message and "stream ended inside frame 2" in message, message
