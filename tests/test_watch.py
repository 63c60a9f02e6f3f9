"""`spanbank watch` against the real local Label Studio: webhook -> pull, polling, one hook per project."""

from __future__ import annotations

import threading
import time

import pytest

from _helpers import region
from conftest import make_corpus
from spanbank.corpus import Corpus
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import watch as ls_watch
from spanbank.labelstudio import workflow

pytestmark = pytest.mark.labelstudio

TEXTS = {f"w{i}": f"Story {i}. “Prices will rise,” the minister said." for i in range(3)}
DEADLINE_S = 10.0


def _wait_for(check, what: str, deadline: float = DEADLINE_S):
    """Poll `check()` until it returns something truthy; fail naming `what` after `deadline` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what} not seen within {deadline} s")


class Running:
    """A watch generator driven in a thread, its records collected."""

    def __init__(self, corpus, project, client, **kw):
        self.stop = threading.Event()
        self.records: list[dict] = []
        self.totals: dict = {}
        gen = ls_watch.watch(corpus, project, client=client, stop=self.stop, **kw)
        self.thread = threading.Thread(target=self._drive, args=(gen,), daemon=True)
        self.thread.start()

    def _drive(self, gen):
        self.totals = workflow.run(gen, self.records.append)

    def finish(self):
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _annotation(corpus, ls_annotation_id):
    ann = corpus.read("annotations")
    rows = ann[ann["ls_annotation_id"] == ls_annotation_id]
    return rows if len(rows) else None


@pytest.fixture
def pushed(tmp_path, ls_client, project_name):
    corpus = make_corpus(tmp_path / "corpus", TEXTS)
    summary = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    tasks = corpus.read("tasks").set_index("article_id")["ls_task_id"]
    return corpus, summary["ls_project_id"], tasks


def test_watch_stores_posted_and_deleted_annotation(pushed, ls_client, project_name):
    corpus, pid, tasks = pushed
    w = Running(corpus, project_name, ls_client, poll=3600)  # only webhooks can wake it in time
    try:
        hook = _wait_for(lambda: [r for r in w.records if "hook_id" in r], "hook registration")
        assert hook[0]["url"].startswith("http://127.0.0.1:")
        posted = ls_client.create_annotation(
            int(tasks["w1"]), [region("r1", TEXTS["w1"], "the minister", "SPEAKER")]
        )
        _wait_for(lambda: _annotation(corpus, posted["id"]) is not None, "posted annotation")
        assert _annotation(corpus, posted["id"])["deleted_at"].isna().all()
        ls_client.delete_annotation(posted["id"])
        _wait_for(lambda: _annotation(corpus, posted["id"])["deleted_at"].notna().any(), "deletion")
        assert any(r["trigger"] == "event" for r in w.records)
    finally:
        w.finish()
    assert w.totals["events"] >= 2 and w.totals["hook"] == "removed"
    assert ls_watch.own_hooks(ls_client, pid, ls_watch.corpus_tag(corpus)) == []


def test_watch_polls_when_events_are_lost(pushed, ls_client, project_name):
    corpus, pid, tasks = pushed
    w = Running(corpus, project_name, ls_client, poll=1.0)
    try:
        hook = _wait_for(lambda: [r for r in w.records if "hook_id" in r], "hook registration")
        ls_watch.remove_hook(ls_client, hook[0]["hook_id"])  # no events reach it any more
        posted = ls_client.create_annotation(
            int(tasks["w2"]), [region("r1", TEXTS["w2"], "Prices", "QUOTE")]
        )
        _wait_for(lambda: _annotation(corpus, posted["id"]) is not None, "polled annotation")
        assert not any(r["trigger"] == "event" for r in w.records)
    finally:
        w.finish()


def test_restarted_watch_reuses_its_hook(pushed, ls_client):
    _, pid, _ = pushed
    first, second = ls_watch.Receiver(), ls_watch.Receiver()
    try:
        a = ls_watch.register_hook(ls_client, pid, first)
        b = ls_watch.register_hook(ls_client, pid, second)  # a watcher killed and run again
        assert not a["reused"] and b["reused"] and a["id"] == b["id"]
        hooks = ls_watch.own_hooks(ls_client, pid)
        assert [h["url"] for h in hooks] == [ls_watch.hook_url(second.port, pid)]
        ls_watch.remove_hook(ls_client, b["id"])
    finally:
        first.close()
        second.close()


def test_watches_of_one_project_from_two_corpora_keep_a_hook_each(pushed, ls_client, tmp_path):
    """Before, the hook was named by the project alone: the second corpus's watch took the
    first's hook, and removed it when it stopped; the first got no more events."""
    corpus, pid, _ = pushed
    other = ls_watch.corpus_tag(Corpus.init(tmp_path / "other"))
    mine = ls_watch.corpus_tag(corpus)
    assert other != mine
    first, second = ls_watch.Receiver(), ls_watch.Receiver()
    try:
        a = ls_watch.register_hook(ls_client, pid, first, mine)
        b = ls_watch.register_hook(ls_client, pid, second, other)
        assert not a["reused"] and not b["reused"] and a["id"] != b["id"]
        ls_watch.remove_hook(ls_client, b["id"])  # the second watch stops
        assert [h["id"] for h in ls_watch.own_hooks(ls_client, pid, mine)] == [a["id"]]
        ls_watch.remove_hook(ls_client, a["id"])
    finally:
        first.close()
        second.close()


def test_receiver_ignores_posts_without_its_token():
    import httpx

    r = ls_watch.Receiver()
    try:
        url = f"http://127.0.0.1:{r.port}{ls_watch.HOOK_PATH}1"
        assert httpx.post(url, json={"action": "ANNOTATION_CREATED"}).status_code == 403
        assert not r.wake.is_set()
        ok = httpx.post(url, json={}, headers={ls_watch.TOKEN_HEADER: r.token})
        assert ok.status_code == 200 and r.wake.is_set()
    finally:
        r.close()


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])  # Ctrl-C; `kill` or a service's stop
def test_watch_cli_ctrl_c_removes_its_hook(pushed, ls_conn, ls_client, project_name, stop):
    import os
    import signal
    import subprocess
    import sys

    corpus, pid, tasks = pushed
    env = os.environ | {"LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}
    cmd = [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path), "watch"]
    proc = subprocess.Popen(
        [*cmd, "--project", project_name, "--poll", "3600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        _wait_for(
            lambda: lines.append(proc.stdout.readline()) or "[hook]" in lines[-1], "hook line", 30
        )
        posted = ls_client.create_annotation(
            int(tasks["w0"]), [region("r1", TEXTS["w0"], "the minister", "SPEAKER")]
        )
        # the event line comes after the store: waiting for it, not the row, leaves no race with ^C
        _wait_for(
            lambda: lines.append(proc.stdout.readline()) or "[event]" in lines[-1], "event line", 30
        )
        assert _annotation(corpus, posted["id"]) is not None
        proc.send_signal(getattr(signal, stop))
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "webhook removed" in err and "Traceback" not in err
    assert "[event] pulled new 1" in "".join(lines) + out
    assert ls_watch.own_hooks(ls_client, pid, ls_watch.corpus_tag(corpus)) == []


def test_watch_survives_a_server_restart(pushed, ls_server, ls_client, project_name):
    from spanbank.labelstudio import server

    corpus, pid, tasks = pushed
    w = Running(corpus, project_name, ls_client, poll=3600)  # only the webhook can wake it
    try:
        _wait_for(lambda: [r for r in w.records if "hook_id" in r], "hook registration")
        assert server.stop(ls_server.data_dir)
        again = server.start(data_dir=ls_server.data_dir)
        assert not again.reused and again.url == ls_server.url  # the local server keeps its port
        posted = ls_client.create_annotation(
            int(tasks["w1"]), [region("r1", TEXTS["w1"], "Prices", "QUOTE")]
        )
        _wait_for(lambda: _annotation(corpus, posted["id"]) is not None, "annotation after restart")
    finally:
        w.finish()
    assert ls_watch.own_hooks(ls_client, pid, ls_watch.corpus_tag(corpus)) == []


def test_a_second_watch_of_one_corpus_and_project_is_one_line(pushed, ls_client, project_name):
    """Two watches shared one webhook: the second repointed it, then deleted it on exit, and the
    first went on deaf to events, saying nothing (hunt H, finding 2)."""
    from spanbank.errors import LockError

    corpus, pid, _ = pushed
    first = Running(corpus, project_name, ls_client, poll=3600)
    try:
        _wait_for(lambda: [r for r in first.records if "hook_id" in r], "hook registration")
        second = ls_watch.watch(corpus, project_name, client=ls_client)
        with pytest.raises(
            LockError, match=rf"another `spanbank watch` of project '{project_name}'"
        ):
            next(second)
        assert len(ls_watch.own_hooks(ls_client, pid, ls_watch.corpus_tag(corpus))) == 1
    finally:
        first.finish()
    stop = threading.Event()
    stop.set()  # the lock went with the first: a new watch starts, pulls once and stops
    assert (
        workflow.run(ls_watch.watch(corpus, project_name, client=ls_client, stop=stop))["pulls"]
        == 1
    )
