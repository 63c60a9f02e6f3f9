"""Heavy stages on Dask: in-process, a LocalCluster and a real `dask scheduler` + `dask worker`
processes on loopback give byte-identical exports; a worker killed mid-export never leaves half."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from click.testing import CliRunner

from _synth_corpus import synth_corpus
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.errors import SpanbankError
from spanbank.export import export_dataset
from spanbank.parallel import PROFILE_KEY, Engine, _local_config, default_workers, engine

FORMATS = "jsonl,spacy,hf,conll,brat,quotes"


def _square(x, k):
    return x * x + k


def _slow_pid(x, delay):
    time.sleep(delay)
    return os.getpid()


def _pool_name(x):
    import pyarrow as pa

    return pa.default_memory_pool().backend_name


def _parent(x):
    return os.getppid()


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synth_corpus(tmp_path_factory.mktemp("par") / "corpus", 240, seed=3)


@pytest.fixture(scope="module")
def local_export(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    export_dataset(corpus, FORMATS, out, workers=1, chunk_size=40, agreement=False)
    return digests(out)


def test_in_process_map_keeps_order_and_starts_nothing():
    eng = Engine(workers=1)
    assert not eng.distributed and eng.describe() == "in-process"
    assert list(eng.map(_square, range(5), 1)) == [1, 2, 5, 10, 17]
    assert eng._client is None


def _gc_on(x):
    import gc

    return x, gc.isenabled()


def _fail(x):
    raise ValueError(f"part {x} failed")


def test_parts_run_with_the_cyclic_collector_paused():
    """Inside a part the collector is off; after the part, or its error, it is as it was."""
    import gc

    assert gc.isenabled()
    assert list(Engine(workers=1).map(_gc_on, range(2))) == [(0, False), (1, False)]
    assert gc.isenabled()
    with pytest.raises(ValueError, match="part 0"):
        list(Engine(workers=1).map(_fail, range(2)))
    assert gc.isenabled()
    gc.disable()
    try:
        assert list(Engine(workers=1).map(_gc_on, [7])) == [(7, False)]
        assert not gc.isenabled()  # paused by someone else: it stays paused
    finally:
        gc.enable()


def _sleep_first(x):
    time.sleep(1.5 if x == 0 else 0)
    return x


def _profiling():
    import dask

    return dask.config.get(PROFILE_KEY)


def test_worker_profiler_stays_as_the_environment_says(monkeypatch):
    import dask

    with _local_config():
        assert dask.config.get(PROFILE_KEY) is False
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    with dask.config.set({PROFILE_KEY: True}), _local_config():
        assert dask.config.get(PROFILE_KEY) is True


def test_progress_follows_the_workers_not_the_order_of_results():
    """`done` counts parts as Dask finishes them: with part 0 slow, the later parts are counted
    before part 0's result is taken; each part once, and all before the last result."""
    log = []
    with engine(workers=2) as eng:
        for r in eng.map(_sleep_first, range(4), done=lambda n: log.append(("done", n))):
            log.append(("result", r))
        assert eng._client is not None  # the parts ran on the local cluster
        assert set(eng._client.run(_profiling).values()) == {False}  # Dask's profiler is off
        assert list(eng.map(_gc_on, range(3))) == [(0, False), (1, False), (2, False)]
    assert [e for e in log if e[0] == "result"] == [("result", i) for i in range(4)]
    assert [e for e in log if e[0] == "done"] == [("done", n) for n in range(1, 5)]
    assert log.index(("done", 3)) < log.index(("result", 0))  # 1, 2, 3 finished while 0 slept
    here = []
    assert list(Engine(workers=1).map(_square, range(3), 0, done=here.append)) == [0, 1, 4]
    assert here == [1, 2, 3]


def test_export_progress_on_two_workers_counts_each_chunk(corpus, tmp_path):
    """240 articles in chunks of 40: one "encoding" event per chunk as the workers finish it,
    one "exporting" event per chunk as this process writes it."""
    events = []
    export_dataset(
        corpus, "jsonl", tmp_path / "out", workers=2, chunk_size=40, agreement=False,
        progress=events.append,
    )  # fmt: skip
    encoding = [e for e in events if e[0] == "encoding"]
    exporting = [e for e in events if e[0] == "exporting"]
    assert encoding == [("encoding", i, 6) for i in range(1, 7)]
    assert [e[1] for e in exporting] == [40 * i for i in range(1, 7)]
    assert events.index(encoding[0]) < events.index(exporting[-1])


def test_one_part_runs_here_even_with_workers():
    with engine(workers=2) as eng:
        assert list(eng.map(_slow_pid, [1], 0)) == [os.getpid()]
        assert eng._client is None  # no cluster started for a single part


def _children() -> set[int]:
    """This process's worker processes: spawned, or forked from multiprocessing's forkserver (not
    the forkserver itself, nor the resource tracker)."""
    import psutil

    me = psutil.Process()
    pids = set()
    for p in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            line = " ".join(p.cmdline())
            if "spawn_main" in line or ("forkserver" in line and p.ppid() != me.pid):
                pids.add(p.pid)
    return pids


def test_a_started_engine_maps_on_the_cluster_it_started_and_stops_it():
    """`start` makes the cluster in the background (here, importing a module on its workers);
    `map` uses it; closing an engine started but never used stops its workers too."""
    before = _children()
    with engine(workers=2) as eng:
        eng.start("json")
        assert eng._starting is not None  # started, not yet waited for
        pids = set(eng.map(_slow_pid, range(4), 0.1))
        assert os.getpid() not in pids and len(pids) == 2
    assert pids and not pids & _children()
    eng = Engine(workers=2)
    eng.start("no_such_module_here")  # an import that fails is only a lost head start
    starting = eng._starting
    eng.close()
    starting.result()  # done before close returned: nothing starts after it
    assert eng._client is None and not _children() - before
    here = Engine(workers=1)
    here.start("json")  # in-process: nothing to start
    assert here._starting is None and list(here.map(_square, [1, 2], 1)) == [2, 5]


def test_ctrl_c_while_waiting_for_a_start_leaves_it_to_close(monkeypatch):
    """Interrupted while `map` waits for the cluster, the start goes on in its thread: `close`
    waits for it and stops the cluster it made, rather than leaving it running."""
    before = _children()
    real = Engine._connect_and_import
    monkeypatch.setattr(Engine, "_connect_and_import", lambda e, m: time.sleep(1) or real(e, m))
    eng = Engine(workers=2)
    eng.start()
    starting = eng._starting
    waited = []

    def interrupted(timeout=None):
        waited.append(timeout)
        if len(waited) == 1:
            raise KeyboardInterrupt
        return Future.result(starting, timeout)

    starting.result = interrupted
    with pytest.raises(KeyboardInterrupt):
        list(eng.map(_square, range(4), 0))
    eng.close()
    starting.result(timeout=60)  # long done: close waited for it
    assert len(waited) == 3 and eng._client is None and eng._cluster is None
    assert not _children() - before


def test_an_export_refused_after_its_cluster_started_stops_it(corpus, tmp_path, monkeypatch):
    """The export starts its cluster once it knows it has two chunks or more, before it checks
    `--group-by`: the refusal stops the cluster, after waiting for it to start."""
    started = []
    real = Engine.start
    monkeypatch.setattr(Engine, "start", lambda self, *m: started.append(self) or real(self, *m))
    before = _children()
    with pytest.raises(SpanbankError, match="not an articles column"):
        export_dataset(corpus, "jsonl", tmp_path / "out", workers=2, chunk_size=40, group_by="nope")
    [eng] = started
    assert eng._starting is None and eng._client is None and eng._cluster is None
    assert not _children() - before and not (tmp_path / "out").exists()


@pytest.fixture
def auto(monkeypatch):
    """Nothing asked (no --workers, --scheduler or variables) on a machine of 2 cores."""
    from spanbank import parallel

    monkeypatch.delenv("SPANBANK_WORKERS", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    return parallel


def test_the_default_keeps_small_work_here(auto):
    """Parts whose work left never reaches AUTO_SECONDS run in this process: no cluster starts,
    even after `start`, and the counts reach `done` as in-process."""
    before, seen = _children(), []
    with engine() as eng:
        assert eng.auto and eng.distributed and "if the work is big" in eng.describe()
        eng.start("json")
        got = list(eng.map(_slow_pid, range(5), 0.01, done=seen.append, total=5))
        assert eng._starting is None and eng._client is None
    assert got == [os.getpid()] * 5 and seen == [1, 2, 3, 4, 5]
    assert not _children() - before
    assert not Engine(workers=2).auto and not Engine(scheduler="tcp://127.0.0.1:1").auto


def test_the_default_hands_big_work_to_a_cluster_it_starts(auto, monkeypatch):
    """Once the last part's time times the parts left reaches AUTO_SECONDS (from the second part
    on), the cluster starts and the parts left run on its workers, in order; closing stops it."""
    monkeypatch.setattr(auto, "AUTO_SECONDS", 0.25)
    seen: list[int] = []
    with engine() as eng:
        # one part left is no work for two workers, however long it takes
        assert list(eng.map(_slow_pid, range(3), 0.3)) == [os.getpid()] * 3
        assert eng._starting is None and eng._client is None
        pids = list(eng.map(_slow_pid, range(12), 0.1, done=seen.append, total=12))
        workers = set(pids[2:])  # judged from the second part on: the first carries warm-ups
        assert pids[:2] == [os.getpid()] * 2 and os.getpid() not in workers and len(workers) == 2
        assert eng._client is not None and workers <= _children()
        assert list(eng.map(_square, range(3), 1)) == [1, 2, 5]  # the next map: the same cluster
    assert sorted(seen) == list(range(1, 13)) and not workers & _children()


def test_the_default_without_a_total_starts_once_the_work_done_here_is_worth_it(auto, monkeypatch):
    """With no `total`, it rents before it buys: the cluster starts only after the parts run here
    took AUTO_SECONDS, so work that ends sooner never pays for a start."""
    monkeypatch.setattr(auto, "AUTO_SECONDS", 0.35)
    with engine() as eng:
        pids = list(eng.map(_slow_pid, iter(range(3)), 0.1))  # 0.3 s: not worth it
        assert pids == [os.getpid()] * 3 and eng._starting is None and eng._client is None
        pids = list(eng.map(_slow_pid, iter(range(8)), 0.1))
        assert pids[:4] == [os.getpid()] * 4 and os.getpid() not in pids[4:]


def test_the_default_stays_here_when_its_cluster_cannot_start(auto, monkeypatch, caplog):
    """Nobody asked for workers: a cluster that fails to start is a warning and the work goes on
    here, every part once, in order."""
    monkeypatch.setattr(auto, "AUTO_SECONDS", 0.05)

    def refuse(self):
        raise SpanbankError("cannot start or reach Dask (a local cluster): no ports")

    monkeypatch.setattr(Engine, "_open", refuse)
    with engine() as eng, caplog.at_level("WARNING", logger="spanbank.parallel"):
        assert list(eng.map(_slow_pid, range(30), 0.01, total=30)) == [os.getpid()] * 30
        assert eng._here_only and eng._client is None
    assert "running in this process: cannot start or reach Dask" in caplog.text


def test_an_export_by_default_equals_one_worker(corpus, local_export, auto, monkeypatch, tmp_path):
    """The default export, its work judged big enough for a cluster after a few chunks, writes
    the files `--workers 1` writes."""
    monkeypatch.setattr(auto, "AUTO_SECONDS", 0.0)
    began = []
    real = Engine._connect_and_import
    monkeypatch.setattr(Engine, "_connect_and_import", lambda e, m: began.append(m) or real(e, m))
    out = tmp_path / "out"
    export_dataset(corpus, FORMATS, out, chunk_size=40, agreement=False)
    assert began == [("spanbank.export", "spacy")] and digests(out) == local_export


def test_workers_default_and_bad_values(monkeypatch):
    monkeypatch.setenv("SPANBANK_WORKERS", "3")
    assert default_workers() == 3
    for bad in ("many", "0", "-2"):
        monkeypatch.setenv("SPANBANK_WORKERS", bad)
        with pytest.raises(SpanbankError, match="whole number of at least 1"):
            default_workers()
    monkeypatch.delenv("SPANBANK_WORKERS")
    assert default_workers() == len(os.sched_getaffinity(0))
    with pytest.raises(SpanbankError, match="at least 1"):
        Engine(workers=0)


def test_local_cluster_export_is_byte_identical(corpus, local_export, tmp_path):
    with engine(workers=2) as eng:
        # two single-threaded worker processes, as the issue asks: parts really run elsewhere
        pids = set(eng.map(_slow_pid, range(6), 0.2))
        assert os.getpid() not in pids and len(pids) == 2
        # the workers we start allocate Arrow memory from the pool that gives it back
        assert set(eng.map(_pool_name, range(4))) == {"jemalloc"}
        # forked from a forkserver (cheaper to start), not spawned by this process's nannies
        assert os.getpid() not in set(eng.map(_parent, range(4)))
    out = tmp_path / "out"
    export_dataset(corpus, FORMATS, out, workers=2, chunk_size=40, agreement=False)
    got = digests(out)
    assert len(got) > 500 and got == local_export


def test_an_export_stopped_mid_stream_on_workers_leaves_nothing(corpus, tmp_path):
    """The workers write brat files into the export's temp folder: when the driver stops (here
    its progress callback raises after 80 articles), the folder goes with the cluster."""

    def stop(event):
        if event.stage == "exporting" and event.done >= 80:
            raise RuntimeError("stopped")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="stopped"):
        export_dataset(
            corpus, "brat", out, workers=2, chunk_size=10, agreement=False, progress=stop
        )
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_the_driver_of_a_two_worker_spacy_export_does_not_import_spacy(corpus, tmp_path):
    """Its workers encode; the driver joins their parts without spaCy (its import took 0.7 s
    before the first chunk could go out). The file is a DocBin spaCy reads."""
    code = (
        "import sys; from spanbank.corpus import Corpus; from spanbank.export import "
        "export_dataset; export_dataset(Corpus(sys.argv[1]), 'spacy', sys.argv[2], workers=2, "
        "chunk_size=40, agreement=False); print('spacy' in sys.modules)"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code, str(corpus.path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False"]
    from spacy.tokens import DocBin

    from spanbank.export.spacy import _blank

    docs = list(
        DocBin().from_disk(tmp_path / "out" / "spacy" / "train.spacy").get_docs(_blank("en").vocab)
    )
    assert len(docs) > 100 and all(d.user_data["article_id"] for d in docs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=timeout)


def _wait_for_scheduler(address: str) -> None:
    from distributed import Client

    Client(address, timeout="30s").close()


@contextlib.contextmanager
def dask_cluster(
    log_path: Path, n: int = 2, pythonpath: list[str] | None = None, flags: tuple = ()
):
    """`dask scheduler` and `n` `dask worker` processes on loopback, the workers importing from
    `pythonpath` (default: this process's path), started with Python's `flags`; yields
    (address, workers, scheduler)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    log = open(log_path, "w")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from distributed.cli.dask_scheduler import main; main()"]
            + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    if pythonpath is not None:
        env = env | {"PYTHONPATH": os.pathsep.join(pythonpath)}
    workers = [
        subprocess.Popen(
            [sys.executable, *flags, "-c", "from distributed.cli.dask_worker import main; main()"]
            + [address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log_path.parent,  # not this checkout: the workers import only from `pythonpath`
        )
        for _ in range(n)
    ]
    procs += workers
    try:
        time.sleep(1)
        _wait_for_workers(address, n) if n else _wait_for_scheduler(address)
        yield address, workers, procs[0]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


@pytest.fixture
def cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes on loopback; yields (address, workers)."""
    with dask_cluster(tmp_path / "dask.log") as (address, workers, _):
        yield address, workers


def test_preannotation_through_a_dask_scheduler_matches_local(
    corpus, cluster, tmp_path, monkeypatch
):
    """The rule tagger over the corpus in 5 parts on the cluster's workers: the same file, byte
    for byte, as in this process."""
    import spanbank.predict as predict

    monkeypatch.setattr(predict, "BATCH", 50)  # 240 articles: 5 parts
    address, _ = cluster
    outs = {}
    for where, opts in (("local", ["--workers", "1"]), ("cluster", ["--scheduler", address])):
        outs[where] = tmp_path / f"{where}.parquet"
        args = ["--corpus", str(corpus.path), "preannotate", "--out", str(outs[where]), "--json"]
        res = CliRunner().invoke(cli, args + opts)
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output)
        assert summary["articles"] == 240 and summary["spans"] > 100
        assert summary["engine"].startswith("in-process" if where == "local" else "dask scheduler")
    assert outs["local"].read_bytes() == outs["cluster"].read_bytes()


def test_a_worker_running_other_code_refuses_its_parts(corpus, tmp_path, monkeypatch):
    """A `dask worker` importing a copy of spanbank with one comment added to the tagger: the
    pre-annotation through `--scheduler` stops with one line naming what differs, and writes
    nothing (its parts could have come back other than this process would make them)."""
    import shutil

    import spanbank
    import spanbank.predict as predict

    other = tmp_path / "other"
    shutil.copytree(
        Path(spanbank.__file__).parent, other / "spanbank", ignore=shutil.ignore_patterns("*.pyc")
    )
    with open(other / "spanbank" / "preannotate.py", "a") as f:
        f.write("# edited on the workers only\n")
    monkeypatch.setattr(predict, "BATCH", 50)  # 240 articles: 5 parts
    out = tmp_path / "p.parquet"
    with dask_cluster(tmp_path / "dask.log", 1, [str(other), *sys.path]) as (address, *_):
        args = ["--corpus", str(corpus.path), "preannotate", "--out", str(out)]
        res = CliRunner().invoke(cli, args + ["--scheduler", address])
    assert res.exit_code != 0
    last = res.output.strip().splitlines()[-1]
    assert "runs other code than the driver: spanbank code" in last, res.output
    assert "(driver: " in last and "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.glob("*.parquet*"))


def test_a_cluster_whose_workers_cannot_import_spanbank_is_refused(corpus, tmp_path):
    """Workers with Dask and the libraries but not spanbank (site-packages without its editable
    path): the command stops at once with one line. Before, such a worker left the cluster on
    the first part it could not unpickle, and the command waited for ever."""
    import site

    out = tmp_path / "out"
    no_spanbank = (site.getsitepackages(), ("-S",))  # no site: no .pth file adds spanbank's src
    with dask_cluster(tmp_path / "dask.log", 1, *no_spanbank) as (address, *_):
        args = ["--corpus", str(corpus.path), "export", "--format", "jsonl", "--out", str(out)]
        args += ["--chunk-size", "40"]  # 6 parts
        run = subprocess.run(
            [sys.executable, "-m", "spanbank", *args, "--scheduler", address],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        f"Error: the Dask worker at {_only_worker(tmp_path / 'dask.log')} cannot run spanbank "
        "(ModuleNotFoundError(\"No module named 'spanbank'\")); the workers need the spanbank "
        "and libraries of the process that drives them"
    ]
    assert not out.exists()


def _only_worker(log: Path) -> str:
    (address,) = {
        line.split("Start worker at:")[1].split()[0]
        for line in log.read_text().splitlines()
        if "Start worker at:" in line
    }
    return address


def test_a_part_refuses_a_worker_that_joined_with_other_code():
    """The check each part makes on its worker (for workers that join after the cluster was
    checked): a driver's fingerprint with another code digest is refused, the same runs."""
    from spanbank.fingerprint import CODE, fingerprint
    from spanbank.parallel import _worker_part

    assert _worker_part(dict(fingerprint()), _square, 3, 1) == 10
    with pytest.raises(
        SpanbankError, match=f"a Dask worker runs other code than the driver: {CODE}"
    ):
        _worker_part(dict(fingerprint()) | {CODE: "0" * 12}, _square, 3, 1)


def test_losing_the_scheduler_mid_stage_is_one_line(tmp_path):
    """The scheduler killed after the first part came back: the map stops with one line, not
    Dask's many-line cancellation, and the parts still out are not waited for."""
    with dask_cluster(tmp_path / "dask.log", 1) as (address, _, scheduler):
        with engine(scheduler=address) as eng:
            parts = eng.map(_slow_pid, range(20), 0.3)
            next(parts)
            scheduler.kill()
            t = time.monotonic()
            with pytest.raises(SpanbankError) as err:
                list(parts)
    assert str(err.value) == (
        "lost the connection to the Dask scheduler; run the command again once it is back"
    )
    assert time.monotonic() - t < 30


def test_sigterm_ends_an_export_the_way_ctrl_c_does(corpus, tmp_path):
    """SIGTERM (`kill`, `timeout`, a service's stop) to an export waiting for workers that never
    come: exit 143 with one line, its temp folder removed, nothing at --out. Before, Python's
    default for SIGTERM ended the process where it stood and left the temp folder."""
    out = tmp_path / "out"
    with dask_cluster(tmp_path / "dask.log", 0) as (address, *_):
        args = ["--corpus", str(corpus.path), "export", "--format", "jsonl", "--out", str(out)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "spanbank", *args, "--chunk-size", "40", "--scheduler", address],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = proc.stderr.readline()
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob(".out.tmp-*")) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list(tmp_path.glob(".out.tmp-*")) and proc.poll() is None
            proc.terminate()
            rest = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert (
        first == f"spanbank: the Dask scheduler at {address} has no workers yet; waiting for some\n"
    )
    assert proc.returncode == 143, rest
    assert [line for line in rest.splitlines() if line] == ["Terminated."]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_tagger_evaluation_on_two_workers_equals_in_process(corpus, monkeypatch):
    """The rule tagger scored against the corpus's annotations in 6 parts on a LocalCluster."""
    import spanbank.tagger_eval as tagger_eval

    monkeypatch.setattr(tagger_eval, "BATCH", 40)  # 240 articles: 6 parts
    here = tagger_eval.evaluate_tagger(corpus, workers=1)
    there = tagger_eval.evaluate_tagger(corpus, workers=2)
    assert here == there and here["articles"] == 240
    assert here["overlap"]["QUOTE"]["n_gold"] > 0


def test_export_through_a_dask_scheduler_matches_local(corpus, local_export, cluster, tmp_path):
    address, _ = cluster
    out = tmp_path / "out"
    args = ["--corpus", str(corpus.path), "export", "--format", FORMATS, "--out", str(out)]
    args += ["--chunk-size", "40", "--scheduler", address, "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    got = digests(out)
    manifest = "manifest.json"
    # the manifest records an agreement summary only when there is overlap (none here)
    assert {k: v for k, v in got.items() if k != manifest} == {
        k: v for k, v in local_export.items() if k != manifest
    }


def test_a_killed_worker_leaves_a_whole_export_or_none(corpus, local_export, cluster, tmp_path):
    address, workers = cluster
    out = tmp_path / "out"
    victim = workers[0]
    killed = threading.Event()

    def kill_soon():
        time.sleep(1.0)
        victim.send_signal(signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_soon, daemon=True).start()
    try:
        export_dataset(corpus, FORMATS, out, scheduler=address, chunk_size=10, agreement=False)
    except SpanbankError:
        assert not out.exists()
        assert not list(tmp_path.glob(".out.tmp-*"))
        return
    assert killed.is_set() and victim.wait(10) is not None  # it died during the export
    assert digests(out) == _rechunked(corpus, tmp_path)


def _rechunked(corpus, tmp_path) -> dict[str, str]:
    ref = tmp_path / "ref"
    export_dataset(corpus, FORMATS, ref, workers=1, chunk_size=10, agreement=False)
    return digests(ref)


def test_unreachable_scheduler_is_one_line(corpus, tmp_path):
    with pytest.raises(SpanbankError, match="cannot start or reach Dask"):
        _export_through(corpus, tmp_path / "out", _free_port())
    assert not (tmp_path / "out").exists()


def _export_through(corpus, out: Path, port: int) -> None:
    export_dataset(
        corpus, "jsonl", out, scheduler=f"tcp://127.0.0.1:{port}", chunk_size=40, agreement=False
    )


def test_a_scheduler_address_where_no_dask_answers_is_one_line(corpus, tmp_path, monkeypatch):
    """An HTTP server at the address (a dashboard's port, say) takes the connection and never
    answers Dask's handshake; Dask's own timeout did not end that wait (the command hung)."""
    import spanbank.parallel as parallel

    monkeypatch.setattr(parallel, "CONNECT_SECONDS", 2.0)
    port = _free_port()
    http = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        t = time.monotonic()
        with pytest.raises(SpanbankError) as err:
            _export_through(corpus, tmp_path / "out", port)
        assert time.monotonic() - t < 30
    finally:
        http.terminate()
        http.wait(10)
    assert str(err.value) == (
        f"cannot start or reach Dask (tcp://127.0.0.1:{port}): nothing there answered as a Dask "
        "scheduler in 2 s"
    )
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def test_brat_ingest_on_a_local_cluster_stores_the_same(corpus, tmp_path):
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    export_dataset(corpus, "brat", tmp_path / "b", workers=1, agreement=False)
    stored = {}
    for w in (1, 2):
        c = Corpus.init(tmp_path / f"c{w}")
        summary = ingest_paths(c, [tmp_path / "b" / "brat"], fmt="brat", workers=w)
        assert summary.annotations == 240  # three batches of .ann files: a real parallel parse
        stored[w] = {
            name: c.read(name).select_dtypes(exclude=["datetime", "datetimetz"])
            for name in ("articles", "annotations", "spans", "relations", "rejects")
        }
    for name, frame in stored[1].items():
        assert frame.equals(stored[2][name]), name
    assert all(len(stored[1][n]) for n in ("articles", "annotations", "spans", "relations"))


def test_plain_ingest_through_a_dask_scheduler_matches_in_process(cluster, tmp_path, monkeypatch):
    """`spanbank ingest --scheduler`: a JSON Lines file cut into 6 pieces, parsed by the two
    `dask worker` processes; the corpus stores what `--workers 1` stores, in the same order."""
    import spanbank.corpus.ingest as ingest_mod
    from spanbank.corpus import Corpus

    address, _ = cluster
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"x{i}", "text": f"text {i} " + "é" * (i % 50)}) for i in range(600)]
    lines[100] = "{broken"
    lines[450] = json.dumps({"id": "x3", "text": "another text under x3"})
    src.write_text("\n".join(lines) + "\n", "utf-8")
    monkeypatch.setattr(ingest_mod, "PART_BYTES", 4 << 10)  # cut here, before anything is sent
    assert len(ingest_mod._plan([(src, "jsonl")], "utf-8")) >= 6
    out = {}
    for where, opts in (("here", ["--workers", "1"]), ("cluster", ["--scheduler", address])):
        path = tmp_path / where
        Corpus.init(path)
        args = ["--corpus", str(path), "ingest", str(src), "--json", *opts]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        rows = Corpus(path).read("articles").drop(columns="ingested_at")
        out[where] = (json.loads(res.output), rows)
    assert out["here"][0] == out["cluster"][0]
    assert out["here"][0]["added"] == 599 - 1 and out["here"][0]["refused"] == 2
    assert out["here"][1].equals(out["cluster"][1])


def test_preannotation_progress_on_two_workers_counts_each_part(corpus, tmp_path, monkeypatch):
    """240 articles in parts of 60: one "tagged parts" event per part as the workers finish."""
    from spanbank import predict
    from spanbank.labelstudio.workflow import run

    monkeypatch.setattr(predict, "BATCH", 60)
    events = []
    summary = run(
        predict.write_predictions(corpus, tmp_path / "p.parquet", workers=2), events.append
    )
    assert summary["articles"] == 240
    parts = [e[1] for e in events if e[0] == "tagged parts"]
    assert parts == [1, 2, 3, 4]


PRELOAD_RUN = """
import json, os
from spanbank.parallel import engine

with engine(workers=2) as eng:
    eng.start("spanbank_marker")
    workers = sorted(eng._connect().run(os.getpid).values())
print(json.dumps(workers))
"""


def test_the_modules_a_stage_names_are_imported_once_for_all_workers(tmp_path):
    """`start`'s modules are imported by the forkserver the workers are forked from, once, not
    by each worker (spaCy took each about a second). In a fresh process: this one's forkserver
    runs already."""
    mark = tmp_path / "imported-by"
    (tmp_path / "spanbank_marker.py").write_text(
        f"import os\nwith open({str(mark)!r}, 'a') as fh:\n    fh.write(f'{{os.getpid()}}\\n')\n"
    )
    path = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run(
        [sys.executable, "-c", PRELOAD_RUN],
        env=os.environ | {"PYTHONPATH": path},  # the forkserver's sys.path is its own
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    workers = json.loads(out.stdout.splitlines()[-1])
    importers = mark.read_text().split()
    assert len(workers) == 2 and len(importers) == 1 and int(importers[0]) not in workers


def test_relative_input_paths_are_read_from_the_driver_s_folder(cluster, tmp_path, monkeypatch):
    """The workers run in another folder (`dask_cluster`: tmp_path) holding files of the same
    names: ingest through `--scheduler` of a relative path stores the driver's files, as
    `--workers 1` does (the workers read their own: hunt K, finding 1)."""
    import spanbank.corpus.ingest as ingest

    monkeypatch.setattr(ingest, "PART_FILES", 2)  # 6 files: 3 parts
    address, _ = cluster
    here = tmp_path / "driver"
    for folder, text in ((here, "The driver's article"), (tmp_path, "A worker's decoy")):
        (folder / "docs").mkdir(parents=True)
        for i in range(6):
            (folder / "docs" / f"a{i}.txt").write_text(f"Title {i}\n{text} {i}.\n")
    monkeypatch.chdir(here)
    Corpus.init(here / "c")
    res = CliRunner().invoke(cli, ["--corpus", "c", "ingest", "docs", "--scheduler", address])
    assert res.exit_code == 0, res.output
    texts = sorted(Corpus(here / "c").read("articles")["text"])
    assert texts == [f"Title {i}\nThe driver's article {i}.\n" for i in range(6)]


@pytest.mark.parametrize(
    "address",
    [
        "tcp://alice:S3cretPW@127.0.0.1:8786",
        "alice:S3cretPW@127.0.0.1:8786",
        "garbage",
        "tcp://127.0.0.1:8786/",
        "http://127.0.0.1:8786",
        "inproc://x",
        "tcp://",
        " ",
        "tcp://127.0.0.1:99999",
    ],
)
def test_a_scheduler_address_dask_cannot_use_is_one_line_without_its_password(
    address, corpus, tmp_path, monkeypatch
):
    """Each was Dask's 70-80-line traceback after the stage's preparation, the password of
    the first two in its last line (hunt K, finding 3); now one line before any work."""
    out = tmp_path / "p.jsonl"
    args = ["--corpus", str(corpus.path), "preannotate", "--out", str(out)]
    for how in ("option", "variable"):
        if how == "option":
            res = CliRunner().invoke(cli, [*args, "--scheduler", address])
        else:
            monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
            res = CliRunner().invoke(cli, args)
            monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
        assert res.exit_code != 0 and "S3cretPW" not in res.output, (how, res.output)
        assert (
            res.output.strip().splitlines() == [res.output.strip().splitlines()[-1]]
            and "is not a Dask scheduler's" in res.output
        ), (how, res.output)
        assert not out.exists()


def test_workers_and_a_scheduler_are_chosen_plainly(monkeypatch):
    """`--workers 1` runs here whatever $DASK_SCHEDULER_ADDRESS says; `--workers N` with
    `--scheduler` is refused, not ignored; a huge `--workers` is refused before any start (it
    grew the driver to 11 GB: hunt K, findings 4 and 7)."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    local = Engine(workers=1)
    assert local.scheduler is None and not local.distributed
    assert Engine(workers=2).scheduler is None
    assert Engine().scheduler == "tcp://127.0.0.1:1"
    with pytest.raises(SpanbankError, match="--workers and --scheduler: choose one"):
        Engine(workers=2, scheduler="tcp://127.0.0.1:1")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    with pytest.raises(SpanbankError, match="at most 256 worker processes"):
        Engine(workers=100_000_000)
    monkeypatch.setenv("SPANBANK_WORKERS", "99999999999")
    with pytest.raises(SpanbankError, match="at most 256 worker processes"):
        Engine()


def test_a_local_cluster_that_fails_to_start_is_one_line(tmp_path):
    """Dask's temp folder under a regular file: LocalCluster's RuntimeError ("Cluster failed to
    start") was a 96-line traceback (hunt K, finding 5)."""
    import dask

    (tmp_path / "f").write_text("x")
    with dask.config.set({"temporary-directory": str(tmp_path / "f" / "sub")}):
        with pytest.raises(SpanbankError, match=r"^cannot start or reach Dask \(a local cluster\)"):
            with engine(2) as e:
                list(e.map(abs, [-1, -2, -3]))


def test_a_stage_of_one_part_says_it_ran_here_not_on_the_scheduler(tmp_path):
    """Hunt O, F8: `preannotate --out --scheduler tcp://127.0.0.1:1` (nothing listening) ran its
    one part in this process and said `engine: dask scheduler tcp://127.0.0.1:1`."""
    import spanbank.predict as predict
    from conftest import make_corpus
    from spanbank.labelstudio.workflow import run

    corpus = make_corpus(tmp_path / "c", {"a1": "“Prices will rise,” the minister said."})
    summary = run(
        predict.write_predictions(corpus, tmp_path / "p.jsonl", scheduler="tcp://127.0.0.1:1")
    )
    assert summary["engine"] == (
        "in-process (one part; the Dask scheduler tcp://127.0.0.1:1 was not needed)"
    )
