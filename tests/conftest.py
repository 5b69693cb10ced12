"""Shared test configuration.

The repository root is put on ``sys.path`` so that shared helpers import as ``tests.<module>``.

Tests that need an outside program skip when it is missing on a developer's machine, with the
reason. CI (``scripts/test.sh``) sets ``RTFLEET_REQUIRE_SIPP=1``: there a missing ``sipp``
(Debian package ``sip-tester``) stops the run at once instead of skipping the SIP tests; likewise
``RTFLEET_REQUIRE_ESPEAK=1`` for ``espeak-ng`` (the ``speak`` step and the speaking stand-in).
(The browser tests enforce ``RTFLEET_REQUIRE_BROWSER`` themselves, in ``tests/browser_cdp.py``.)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# Shared test helpers import as ``tests.<module>`` (e.g. ``tests.browser_cdp``) wherever pytest
# is started from.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("RTFLEET_REQUIRE_SIPP") == "1" and shutil.which("sipp") is None:
        raise pytest.UsageError(
            "RTFLEET_REQUIRE_SIPP=1 but sipp is not installed (apt-get install -y sip-tester)")
    if os.environ.get("RTFLEET_REQUIRE_ESPEAK") == "1" and shutil.which("espeak-ng") is None:
        raise pytest.UsageError(
            "RTFLEET_REQUIRE_ESPEAK=1 but espeak-ng is not installed (apt-get install -y espeak-ng)")
