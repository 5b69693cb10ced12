"""Each asyncio test here runs in an interpreter of its own.

They call ``asyncio.run`` (one in trio's guest mode) inside the pytest process, where other
tests have imported trio-asyncio, which installs its event-loop policy process-wide: sharing
that process made WebRTC tests that ran later fail ("You can't nest calls to
run_until_complete()"). A fresh ``python -m pytest <node id>`` per test keeps both honest.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_INNER = "RTFLEET_ASYNCIO_TEST_INNER"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if os.environ.get(_INNER):
        return None  # inside the child: run the test itself
    root = pyfuncitem.config.rootpath
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        cwd=root, env={**os.environ, _INNER: "1"}, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{pyfuncitem.nodeid} failed in its own interpreter:\n"
                    f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}", pytrace=False)
    return True
