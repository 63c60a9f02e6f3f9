"""The pull workload of bench_sync.py under the names measure() expects (prepare/ours/baseline)."""

from bench_sync import baseline_pull as baseline  # noqa: F401
from bench_sync import ours_pull as ours  # noqa: F401
from bench_sync import prepare_pull as prepare  # noqa: F401
