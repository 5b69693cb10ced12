"""`rtfleet serve` runs the embedded server alone; its generated key is in a private file."""

import os
import re
import signal
import stat
import subprocess
import sys

import httpx
import trio


async def test_serve_prints_its_urls_and_keeps_the_key_out_of_the_terminal():
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "orchestrator", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = ""
        with trio.fail_after(30):
            while "API key" not in text:
                text += (await process.stdout.receive_some(4096)).decode()
        url = re.search(r"server on (http://127\.0\.0\.1:\d+)", text).group(1)
        key_file = re.search(r"API key\s+in (\S+)", text).group(1)
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        with open(key_file) as f:
            key = f.read().strip()
        assert key not in text
        async with httpx.AsyncClient() as client:
            ok = await client.post(f"{url}/v1/realtime/client_secrets", json={},
                                   headers={"Authorization": f"Bearer {key}"})
            refused = await client.post(f"{url}/v1/realtime/client_secrets", json={})
        assert ok.status_code == 200 and ok.json()["value"].startswith("ek_")
        assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
    assert process.returncode == 0
    assert not os.path.exists(key_file)  # the server removed its key file on exit
