"""Shared fixtures: the local Label Studio (started once per session) and small corpora."""

from __future__ import annotations

import hashlib
import os
import signal
import uuid
from pathlib import Path

import pandas as pd
import pytest

from spanbank.corpus import Corpus
from spanbank.labelstudio import server

DATA = Path(__file__).parent / "data"
# heavy stages run in this process unless a test asks for workers (tests/test_parallel.py):
# a local Dask cluster per multi-chunk export would cost seconds each
os.environ.setdefault("SPANBANK_WORKERS", "1")
# a shell's background job (`make test &`, `nohup`) starts with Ctrl-C ignored, and the commands
# the tests start would inherit that: the tests that interrupt them need Ctrl-C at its default
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _test_data_dir() -> Path:
    """Its own server data dir, apart from the user's: $SPANBANK_TEST_LS_DIR or <cache>/test-server."""
    return Path(os.environ.get("SPANBANK_TEST_LS_DIR") or server.cache_dir() / "test-server")


def pytest_collection_modifyitems(items):
    """A test that needs the session's Label Studio carries the `labelstudio` marker whether or
    not it says so, so `pytest -m "not labelstudio"` (`make test-fast`) never starts a server."""
    for item in items:
        if "ls_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.labelstudio)


@pytest.fixture(scope="session")
def ls_server():
    """A real local Label Studio for the whole session: reused if running, else started and
    stopped at the end. Yields its ServerInfo; the key is read through `ls_key`."""
    data_dir = _test_data_dir()
    info = server.status(data_dir)
    started = info is None
    if started:
        info = server.start(data_dir=data_dir)
    yield info
    if started:
        server.stop(data_dir)


@pytest.fixture(scope="session")
def ls_conn(ls_server):
    """(url, key) of the session's server, from its env file."""
    return ls_server.url, server.read_env_file(ls_server.env_file)[server.ENV_KEY]


@pytest.fixture(scope="session")
def ls_client(ls_conn):
    from spanbank.labelstudio.client import LabelStudioClient

    return LabelStudioClient(*ls_conn)


@pytest.fixture
def project_name():
    """A project title unique to this test (the test server's data outlives a session)."""
    return f"t-{uuid.uuid4().hex[:10]}"


def article_rows(texts: dict[str, str], **extra) -> list[dict]:
    """Complete `articles` rows for {article_id: text}."""
    now = pd.Timestamp.now(tz="UTC")
    return [
        {
            "article_id": aid,
            "title": f"Title {aid}",
            "text": text,
            "source": "reuters" if i % 2 else "ap",
            "url": f"https://example.org/{aid}",
            "published_at": now,
            "language": "en",
            "origin": "test",
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "ingested_at": now,
            **extra,
        }
        for i, (aid, text) in enumerate(texts.items())
    ]


def make_corpus(path: Path, texts: dict[str, str]) -> Corpus:
    corpus = Corpus.init(path)
    with corpus.writer() as w:
        w.append("articles", article_rows(texts))
    return corpus
