"""Every error path of the CLI exits with its documented code, one line, no traceback.

Each test runs ``rtfleet`` as a subprocess (signals included), as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAMP = ROOT / "scenarios" / "ramp-websocket.yaml"
SMOKE = ROOT / "scenarios" / "smoke.yaml"


def rtfleet(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_sessions(proc: subprocess.Popen, count: int) -> None:
    """Read --json progress lines until ``count`` sessions have started (the run is under way)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        progress = json.loads(line).get("progress")
        if progress and progress["started"] >= count:
            return
    raise AssertionError(f"the run ended before {count} sessions started: {proc.stderr.read()}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_run_with_partial_results_marked_interrupted(tmp_path, signum, code):
    out = tmp_path / "out"
    proc = rtfleet("run", str(RAMP), "--json", "--out", str(out))
    try:
        wait_for_sessions(proc, 2)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "interrupted" and results["interrupted"] is True
    assert results["sessions"]["started"] >= 2
    # sessions cut short by the interruption are stopped, not failed
    assert results["sessions"]["failed"] == 0, results["sessions"]
    assert results["sessions"]["stopped"] >= 1
    assert "INTERRUPTED" in (out / "report.html").read_text()


def test_a_bad_target_is_a_usage_error_in_one_line():
    proc = rtfleet("run", str(SMOKE), "--target", "localhost:9")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert "--target" in stderr and "localhost:9" in stderr


def test_an_unreachable_target_fails_at_once_with_the_reason_even_quiet():
    # port 9 (discard) on loopback: nothing listens there on these machines
    proc = rtfleet("run", str(SMOKE), "--target", "http://127.0.0.1:9/v1", "-q",
                   env={"OPENAI_API_KEY": "sk-test-not-a-key"})
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert "unreachable" in stderr and "127.0.0.1:9" in stderr
    assert "refused" in stderr.lower()
    assert "sk-test-not-a-key" not in stdout + stderr


def serve_banner_of(proc: subprocess.Popen) -> tuple[str, str]:
    """``rtfleet serve``'s banner up to its last line, and the base URL in it."""
    assert proc.stdout is not None
    banner = []
    for line in proc.stdout:
        banner.append(line)
        if line.startswith("  OPENAI_API_KEY="):
            break
    text = "".join(banner)
    return text, text.split("server on ", 1)[1].split()[0]


def test_serve_prints_a_paste_ready_snippet_and_removes_its_key_file_on_sigterm():
    proc = rtfleet("serve", "--port", "0")
    try:
        text, base = serve_banner_of(proc)
        assert f'base_url="{base}/v1"' in text
        key_file = Path(text.split("API key     in ", 1)[1].split()[0])
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
        assert key_file.read_text().strip() not in text  # the key itself is never printed
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in stderr
    assert not key_file.exists()


def test_run_takes_the_target_with_or_without_v1():
    server = rtfleet("serve", "--port", "0")
    try:
        text, base = serve_banner_of(server)
        key = Path(text.split("API key     in ", 1)[1].split()[0]).read_text().strip()
        for target in (base, base + "/v1", base + "/v1/"):
            run = rtfleet("run", str(SMOKE), "--target", target, "-q", env={"OPENAI_API_KEY": key})
            stdout, stderr = run.communicate(timeout=120)
            assert run.returncode == 0, (target, stdout, stderr)
            assert "PASS" in stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_the_serve_banner_with_any_model_and_with_a_list():
    from orchestrator.commands import serve_banner

    anything = serve_banner("http://127.0.0.1:1", key_file=None, models=None)
    assert "models      any name" in anything and 'base_url="http://127.0.0.1:1/v1"' in anything
    listed = serve_banner("http://127.0.0.1:1", key_file="/tmp/k", models=("a", "b", "c", "d"))
    assert "a, b, c, ... (4 names)" in listed and "model_not_found" in listed
