"""Opt-in check on the real PolNeAR brat corpus (SPANBANK_POLNEAR=1; skipped where it is absent)."""

import importlib.util
import os
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_brat_corpus.py"


def _measure_module():
    spec = importlib.util.spec_from_file_location("measure_brat_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not os.environ.get("SPANBANK_POLNEAR"), reason="opt-in: SPANBANK_POLNEAR=1")
def test_polnear_imports_whole_and_round_trips():
    mod = _measure_module()
    if not mod.DEFAULT.is_dir():
        pytest.skip(f"{mod.DEFAULT} is absent")
    m = mod.measure(mod.DEFAULT.resolve())
    files, stored = m["files"], m["stored"]
    assert stored["articles"] == files["ann_files"]
    kept = ("Source", "Cue", "Content")
    assert stored["spans"] + stored["rejects_of_t_lines"] == sum(files["t_lines"][k] for k in kept)
    assert stored["ignored_t_lines"] == files["t_lines_total"] - sum(
        files["t_lines"][k] for k in kept
    )
    assert m["reject_rate_of_t_lines"] <= 0.001
    assert m["quotes"]["of_those_rows_without_speaker"] <= stored["reject_reasons"].get(
        "E line roles swapped", 0
    )
    assert all(
        m["brat_round_trip"][k]
        for k in ("texts_identical", "spans_identical", "relations_identical")
    )
