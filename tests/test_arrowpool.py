"""spanbank's processes allocate Arrow memory from jemalloc unless $ARROW_DEFAULT_MEMORY_POOL says."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from spanbank import arrowpool

# the `spanbank` command in a fresh process; pyarrow's default pool before and after it ran
RUN_CLI = """
import sys
import pyarrow as pa
from spanbank.cli import main
before = pa.default_memory_pool().backend_name
sys.argv = ["spanbank", "--version"]
try:
    main()
finally:
    print(before, pa.default_memory_pool().backend_name)
"""


def pools(**env) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if k != arrowpool.ENV}
    out = subprocess.run(
        [sys.executable, "-c", RUN_CLI], env=base | env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.splitlines()[-1].split()
    return before, after


def test_the_command_runs_on_jemalloc_unless_the_variable_says():
    assert pools()[1] == "jemalloc"
    assert pools(**{arrowpool.ENV: "system"}) == ("system", "system")
    # a name this pyarrow does not know: its own default stays
    before, after = pools(**{arrowpool.ENV: "nosuch"})
    assert after == before


@pytest.mark.parametrize("name", ["jemalloc", "system"])
def test_use_switches_a_process_already_started(monkeypatch, name):
    before = pa.default_memory_pool()
    monkeypatch.setenv(arrowpool.ENV, name)
    try:
        arrowpool.use()
        assert pa.default_memory_pool().backend_name == name
        assert pa.array(["x"] * 10).to_pylist() == ["x"] * 10
    finally:
        pa.set_memory_pool(before)
