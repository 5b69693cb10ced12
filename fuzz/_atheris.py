"""The atheris runner for the harnesses in this directory.

Each harness module defines ``check(data: bytes)`` and ends with::

    if __name__ == "__main__":
        from _atheris import run
        run(__file__)

so ``python3 fuzz/<name>.py [libFuzzer flags] [corpus dirs]`` fuzzes it (``scripts/fuzz.sh``
runs them all for a bounded time).  ``run`` starts a fresh interpreter on this file, which
imports the harness inside ``atheris.instrument_imports`` so that the project's packages
(``actors``, ``orchestrator``), and only they, are instrumented for coverage.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def run(harness_path: str) -> None:
    """Re-run this interpreter as the runner for ``harness_path`` (same arguments)."""
    os.execv(sys.executable, [sys.executable, __file__, os.path.abspath(harness_path), *sys.argv[1:]])


def main() -> None:
    try:
        import atheris
    except ImportError:  # pragma: no cover - the optional "fuzz" extra
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    path = sys.argv.pop(1)
    with atheris.instrument_imports(include=["actors", "orchestrator"]):
        spec = importlib.util.spec_from_file_location("fuzz_harness", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    atheris.Setup(sys.argv, module.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
