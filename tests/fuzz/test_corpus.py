"""The fuzz harnesses (``fuzz/*.py``) in CI: every committed corpus file is replayed through its
harness, and a bounded, derandomized hypothesis run mutates the seeds (byte flips, inserts,
deletions, duplications, splices of two seeds).  A harness's ``check`` fails when anything but
the parser's own error types escapes, so a failure here is a fuzz finding: minimize the input,
add it to ``fuzz/corpus/<name>/`` and fix the parser.  ``scripts/fuzz.sh`` runs the same
harnesses under atheris for longer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
CORPUS = FUZZ / "corpus"
HARNESSES = ("realtime", "live", "scenario_yaml", "sdp", "sip", "rtp", "webhooks", "media_streams",
             "results", "fault_file")
#: mutated examples per harness; the whole module stays well under 30 s on one core
EXAMPLES = {"scenario_yaml": 120, "results": 100, "webhooks": 150, "fault_file": 120}
DEFAULT_EXAMPLES = 250

_modules: dict[str, ModuleType] = {}


def harness(name: str) -> Callable[[bytes], None]:
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(f"rtfleet_fuzz_{name}", FUZZ / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name].check


def seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / name).iterdir()) if p.is_file()]


def test_every_harness_has_a_small_corpus() -> None:
    assert sorted(p.stem for p in FUZZ.glob("*.py") if not p.name.startswith("_")) == sorted(HARNESSES)
    for name in HARNESSES:
        files = list((CORPUS / name).iterdir())
        assert len(files) >= 3, name
        assert sum(f.stat().st_size for f in files) < 24_000, name


CORPUS_FILES = [(name, path.name) for name in HARNESSES
                for path in sorted((CORPUS / name).iterdir()) if path.is_file()]


@pytest.mark.parametrize(("name", "file"), CORPUS_FILES, ids=[f"{n}/{f}" for n, f in CORPUS_FILES])
def test_corpus_file_passes_its_harness(name: str, file: str) -> None:
    harness(name)((CORPUS / name / file).read_bytes())


@st.composite
def mutated(draw: st.DrawFn, pool: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "duplicate", "splice")))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        elif op == "splice":
            other = draw(st.sampled_from(pool))
            start = draw(st.integers(0, len(other)))
            data[at:] = other[start:]
    return bytes(data)


def _mutation_test(name: str) -> Callable[[], None]:
    @settings(max_examples=EXAMPLES.get(name, DEFAULT_EXAMPLES), deadline=2000, derandomize=True,
              database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(seeds(name)))
    def test(data: bytes) -> None:
        harness(name)(data)

    return test


test_realtime_mutations = _mutation_test("realtime")
test_scenario_yaml_mutations = _mutation_test("scenario_yaml")
test_sdp_mutations = _mutation_test("sdp")
test_sip_mutations = _mutation_test("sip")
test_rtp_mutations = _mutation_test("rtp")
test_webhooks_mutations = _mutation_test("webhooks")
test_media_streams_mutations = _mutation_test("media_streams")
test_results_mutations = _mutation_test("results")
test_fault_file_mutations = _mutation_test("fault_file")
test_live_mutations = _mutation_test("live")
