"""The spanbank command gives freed heap memory back to the system (glibc's trim threshold)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spanbank import malloctrim

# blocks of 1 MiB freed after smaller ones were allocated between them: glibc, once it freed a
# bigger mapped block, serves them from the heap and keeps their pages unless tuned
FREED = """
import sys
import numpy as np
import psutil
if sys.argv[1] == "command":
    from spanbank.cli import main
    sys.argv = ["spanbank", "--version"]
    main()
me = psutil.Process()
first = np.ones(4 << 20, dtype=np.uint8)
del first
keep, big = [], []
for _ in range(200):
    big.append(np.ones(1 << 20, dtype=np.uint8))
    keep.append(bytearray(600))
before = me.memory_info().rss
del big
print(round((before - me.memory_info().rss) / 2**20))
"""


def given_back(how: str, **env) -> int:
    base = {k: v for k, v in os.environ.items() if k != malloctrim.ENV}
    out = subprocess.run(
        [sys.executable, "-c", FREED, how], env=base | env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_the_command_gives_freed_blocks_back():
    assert given_back("plain") < 50  # what glibc does untuned: the pages stay
    assert given_back("command") > 190
    assert given_back("plain", **{malloctrim.ENV: "65536"}) > 190  # the variable, glibc's own


def test_the_variable_decides(monkeypatch):
    monkeypatch.setenv(malloctrim.ENV, "131072")
    assert malloctrim.tune() is False
