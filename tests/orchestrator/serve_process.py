"""``rtfleet serve`` in a subprocess for tests: started on port 0, known by its banner.

::

    async with rtfleet_serve("--sip-port", "0") as serve:
        serve.url, serve.key, serve.sip_port        # from the banner (key from its 0600 file)
        await serve.wait_line(lambda l: "fault:" in l)   # a later stdout line, no sleeps

Stops it with SIGTERM on exit and asserts it exited 0 with no traceback on stderr.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import attrs
import trio

__all__ = ["ServeProcess", "rtfleet_serve"]


@attrs.define(eq=False)
class ServeProcess:
    process: trio.Process
    lines: list[str] = attrs.field(factory=list)
    stderr: list[str] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)
    url: str = ""
    key: str = ""
    sip_port: int | None = None
    banner: str = ""

    async def wait_line(self, predicate: Callable[[str], bool], *, after: int = 0) -> str:
        """The first stdout line from index ``after`` on that satisfies ``predicate``."""
        while True:
            for line in self.lines[after:]:
                if predicate(line):
                    return line
            if self.process.returncode is not None:
                raise AssertionError(f"rtfleet serve exited: {''.join(self.stderr)[-2000:]}")
            changed = self.changed
            await changed.wait()

    async def _pump(self, stream: trio.abc.ReceiveStream, into: list[str]) -> None:
        pending = b""
        async for chunk in stream:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            into.extend(line.decode(errors="replace") for line in complete)
            self.changed.set()
            self.changed = trio.Event()
        self.changed.set()


@asynccontextmanager
async def rtfleet_serve(*args: str, cwd: Path | None = None) -> AsyncIterator[ServeProcess]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "orchestrator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    serve = ServeProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve._pump, process.stdout, serve.lines)
            nursery.start_soon(serve._pump, process.stderr, serve.stderr)
            with trio.fail_after(30):
                await serve.wait_line(lambda line: line.startswith("  OPENAI_API_KEY="))
            serve.banner = "\n".join(serve.lines)
            serve.url = re.search(r"server on (http://\S+)", serve.banner).group(1)
            serve.key = Path(re.search(r"API key\s+in (\S+)", serve.banner).group(1)).read_text().strip()
            sip = re.search(r"SIP\s+sip:openai@[\d.]+:(\d+)", serve.banner)
            serve.sip_port = int(sip.group(1)) if sip else None
            yield serve
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    stderr = "\n".join(serve.stderr)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
