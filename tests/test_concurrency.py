"""Two writers at once: two pulls, a pull and an ingest, many appenders. The lock holds, no table
is corrupted, and the second writer either waits (--wait) or stops with the one-line lock error."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import uuid

import pytest

from _helpers import region
from conftest import make_corpus
from spanbank.corpus import Corpus
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow

FIGURES: dict = {}


def _text(i: int) -> str:
    return f"Note {i}. “Trains will run,” the minister said. Mr Obi agreed."


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, ls_client):
    """A corpus whose project holds 2 annotators' work on 20 articles, not pulled yet."""
    root = tmp_path_factory.mktemp("conc")
    project = f"conc-{uuid.uuid4().hex[:8]}"
    corpus = make_corpus(root / "base", {f"c{i:03d}": _text(i) for i in range(20)})
    workflow.run(ls_push.push_batch(corpus, project, client=ls_client))
    ls_pull.pseudonym_key(corpus)
    tag = uuid.uuid4().hex[:6]
    users = [ls_client.create_user(f"conc{i}-{tag}@example.org", f"conc{i}{tag}") for i in range(2)]
    tasks = corpus.read("tasks")
    for i, t in enumerate(tasks["ls_task_id"]):
        for u in users:
            text = _text(i)
            ls_client.create_annotation(
                int(t), [region("q", text, "“Trains will run,”", "QUOTE")], completed_by=u["id"]
            )
    return corpus, project


def _copy(corpus: Corpus, dest) -> Corpus:
    import shutil

    shutil.copytree(corpus.path, dest)
    return Corpus(dest)


def _cmd(corpus: Corpus, *args):
    return [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path), *map(str, args)]


def _env(ls_conn):
    return {**os.environ, "LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}


def _check_tables(corpus: Corpus, articles: int, annotations: int) -> None:
    arts = corpus.read("articles")
    ann = corpus.read("annotations")
    assert len(arts) == articles and arts["article_id"].is_unique
    assert len(ann) == annotations and ann["annotation_id"].is_unique
    assert len(corpus.read("spans")) == annotations
    assert corpus.read("annotators")["ls_user_id"].is_unique


@pytest.mark.labelstudio
def test_second_pull_without_wait_stops_with_the_lock_error(annotated, tmp_path, ls_conn):
    corpus = _copy(annotated[0], tmp_path / "c")
    with corpus.writer():  # another writer holds the corpus
        out = subprocess.run(
            _cmd(corpus, "pull", "--project", annotated[1]),
            env=_env(ls_conn),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith(
        f"Error: corpus {corpus.path} is being written by another spanbank process (pid "
    )
    assert out.stderr.rstrip().endswith("wait for it to finish or pass --wait")
    assert corpus.read_arrow("annotations").num_rows == 0


@pytest.mark.labelstudio
def test_two_pulls_at_once_with_wait(annotated, tmp_path, ls_conn):
    corpus = _copy(annotated[0], tmp_path / "c")
    procs = [
        subprocess.Popen(
            _cmd(corpus, "pull", "--project", annotated[1], "--wait", "--json"),
            env=_env(ls_conn),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    news = sorted(json.loads(o)["new"] for o, _ in outs)
    assert news == [0, 40], "the second pull ran after the first and found nothing new"
    _check_tables(corpus, 20, 40)


@pytest.mark.labelstudio
def test_pull_and_ingest_at_once(annotated, tmp_path, ls_conn):
    corpus = _copy(annotated[0], tmp_path / "c")
    more = tmp_path / "more.jsonl"
    more.write_text(
        "".join(json.dumps({"id": f"m{i}", "text": _text(100 + i)}) + "\n" for i in range(50))
    )
    env = _env(ls_conn)
    pull = subprocess.Popen(
        _cmd(corpus, "pull", "--project", annotated[1], "--wait", "--quiet"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ingest = subprocess.Popen(
        _cmd(corpus, "ingest", str(more), "--wait", "--json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    po, ie = pull.communicate(timeout=300), ingest.communicate(timeout=300)
    assert (pull.returncode, ingest.returncode) == (0, 0), (po, ie)
    assert json.loads(ie[0])["added"] == 50
    _check_tables(corpus, 70, 40)
    # without --wait, an ingest while a writer holds the lock stops cleanly and changes nothing
    with corpus.writer():
        out = subprocess.run(
            _cmd(corpus, "ingest", str(more)), env=env, capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "pass --wait" in out.stderr
    _check_tables(corpus, 70, 40)


def _appender(path: str, worker: int, n: int) -> None:
    from conftest import article_rows

    corpus = Corpus(path)
    for i in range(n):
        with corpus.writer(wait=True) as w:
            w.append("articles", article_rows({f"w{worker}-{i}": f"Text {worker} {i}."}))


def test_many_writers_and_a_reader(tmp_path):
    """4 processes x 15 appends under the lock, while a reader reads all along: nothing lost or torn."""
    corpus = Corpus.init(tmp_path / "c")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_appender, args=(str(corpus.path), k, 15)) for k in range(4)]
    stop, reads, errors = threading.Event(), [0], []

    def reader():
        while not stop.is_set():
            try:
                n = len(corpus.read("articles"))
                reads[0] += 1
                assert n <= 60
            except Exception as exc:  # a torn table would land here
                errors.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    stop.set()
    t.join()
    assert [p.exitcode for p in procs] == [0] * 4
    assert errors == []
    arts = corpus.read("articles")
    assert len(arts) == 60 and arts["article_id"].is_unique
    FIGURES["appends"] = 60
    FIGURES["concurrent_reads"] = reads[0]
    print("\nCONCURRENCY FIGURES " + json.dumps(FIGURES))
