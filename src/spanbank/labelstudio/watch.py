"""Live sync: a Label Studio webhook wakes a loopback receiver, which pulls incrementally.

`watch` registers one webhook per project (annotation created / updated / deleted) pointing
at a small HTTP receiver on 127.0.0.1, and runs the ordinary incremental `pull` after each
event; it also pulls every `poll` seconds, which catches events a restart of either side
lost (and is the only trigger when Label Studio cannot register or reach the hook). Its
hook is found again by its URL path, which names the project and the corpus, so restarts never
add a second one, and watches of one project from two corpora keep a hook each.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from spanbank.corpus.store import Corpus, flock_wait
from spanbank.errors import LabelStudioError, LockError
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.labelstudio.pull import pull
from spanbank.labelstudio.workflow import connect, run

HOOK_PATH = "/spanbank/watch/"  # + project id / corpus tag: how watch knows its own hook
TOKEN_HEADER = "X-Spanbank-Watch"  # a per-run random value, so only our hook wakes us
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
TICK = 0.25  # seconds between looks at the stop flag


class Receiver:
    """The loopback HTTP endpoint Label Studio posts to; each valid post sets `wake`."""

    def __init__(self, port: int = 0):
        self.token = secrets.token_hex(16)
        self.wake = threading.Event()
        self.events = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(
                    min(length, 1 << 20)
                )  # the payload is not needed: pull reads the truth
                ok = secrets.compare_digest(self.headers.get(TOKEN_HEADER, ""), receiver.token)
                self.send_response(200 if ok else 403)
                self.end_headers()
                if ok:
                    receiver.events += 1
                    receiver.wake.set()

            def log_message(self, *args):  # quiet: no request lines on stderr
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def corpus_tag(corpus: Corpus) -> str:
    """A short name of the corpus folder for hook paths."""
    return hashlib.sha256(str(corpus.path.resolve()).encode()).hexdigest()[:12]


def hook_url(port: int, ls_project_id: int, tag: str = "") -> str:
    return f"http://127.0.0.1:{port}{_mark(ls_project_id, tag)}"


def _mark(ls_project_id: int, tag: str) -> str:
    return f"{HOOK_PATH}{int(ls_project_id)}" + (f"/{tag}" if tag else "")


def own_hooks(client: LabelStudioClient, ls_project_id: int, tag: str = "") -> list[dict]:
    """The project's webhooks a `spanbank watch` of the corpus `tag` registered (by URL path)."""
    hooks = client.request("GET", "api/webhooks/", params={"project": int(ls_project_id)}) or []
    mark = _mark(ls_project_id, tag)
    return [h for h in hooks if str(h.get("url", "")).endswith(mark)]


def register_hook(
    client: LabelStudioClient, ls_project_id: int, receiver: Receiver, tag: str = ""
) -> dict:
    """Point the project's one watch hook at `receiver`: reuse (and repoint) an earlier one,
    drop any duplicates, create one only when there is none. Returns the hook."""
    body = {
        "project": int(ls_project_id),
        "url": hook_url(receiver.port, ls_project_id, tag),
        "send_payload": False,
        "send_for_all_actions": False,
        "actions": list(ACTIONS),
        "headers": {TOKEN_HEADER: receiver.token},
        "is_active": True,
    }
    mine = sorted(own_hooks(client, ls_project_id, tag), key=lambda h: h["id"])
    for extra in mine[1:]:
        client.request("DELETE", f"api/webhooks/{int(extra['id'])}/", ok_404=True)
    if mine:
        hook = client.request(
            "PATCH", f"api/webhooks/{int(mine[0]['id'])}/", json_body=body, idempotent=True
        )
        return hook | {"reused": True}
    return client.request("POST", "api/webhooks/", json_body=body) | {"reused": False}


def remove_hook(client: LabelStudioClient, hook_id: int) -> None:
    client.request("DELETE", f"api/webhooks/{int(hook_id)}/", ok_404=True, tries=1)


def watch(
    corpus: Corpus,
    project: str,
    *,
    client: LabelStudioClient | None = None,
    url: str | None = None,
    api_key: str | None = None,
    port: int = 0,
    poll: float = 60.0,
    keep_hook: bool = False,
    stop: threading.Event | None = None,
) -> Generator[dict, None, dict]:
    """Pull `project` after each webhook event and every `poll` seconds until `stop` is set
    (or KeyboardInterrupt); yields one record per pull or problem, returns totals.

    On a clean stop the hook is deleted unless `keep_hook` (a killed watcher leaves it; the
    next run finds it by URL and repoints it). One watch per corpus and project: LockError.
    """
    with _only_watch(corpus, project):
        return (
            yield from _watch(
                corpus, project, client or connect(url, api_key), port, poll, keep_hook, stop
            )
        )


@contextlib.contextmanager
def _only_watch(corpus: Corpus, project: str):
    """Hold `.watch-<hash>.lock` in the corpus while `project` is watched: two watches of one
    corpus and project share one webhook (the second repoints it, then deletes it on exit,
    leaving the first deaf to events without a word)."""
    corpus.require()
    path = corpus.path / f".watch-{hashlib.sha256(project.encode()).hexdigest()[:12]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def busy() -> str:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            return (
                f"another `spanbank watch` of project {project!r} runs on corpus {corpus.path} "
                f"(pid {holder}); one is enough"
            )

        flock_wait(fd, False, busy)
        pid = str(os.getpid()).encode()
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays (deleting it would race a waiter)


def _watch(corpus, project, client, port, poll, keep_hook, stop):
    stop = stop or threading.Event()
    first = _pull_once(corpus, project, client, "start")  # a wrong project stops here, one line
    yield first
    pid = int(first["ls_project_id"])
    receiver = Receiver(port)
    hook = None
    totals = {"pulls": 1, "events": 0, "errors": 0}
    try:
        tag = corpus_tag(corpus)
        hook = yield from _try_register(client, pid, receiver, totals, tag)
        last = time.monotonic()
        while not stop.is_set():
            if not receiver.wake.wait(TICK) and time.monotonic() - last < poll:
                continue
            trigger = "event" if receiver.wake.is_set() else "poll"
            receiver.wake.clear()
            last = time.monotonic()
            record = _pull_once(corpus, project, client, trigger, totals)
            totals["pulls"] += 1
            if hook is None and "error" not in record:  # the server may be back: try again
                hook = yield from _try_register(client, pid, receiver, totals, tag)
            yield record
    except KeyboardInterrupt:  # Ctrl-C is how a user stops it: a clean stop, not an error
        totals["interrupted"] = True
    finally:
        totals["events"] = receiver.events
        receiver.close()
        if hook is not None and not keep_hook:
            try:
                remove_hook(client, hook["id"])
                totals["hook"] = "removed"
            except LabelStudioError:
                totals["hook"] = "left (the next watch reuses it)"
    return totals


def _try_register(client, pid: int, receiver: Receiver, totals: dict, tag: str):
    """Register the hook, yielding what happened; None (polling only) when the server refuses."""
    try:
        hook = register_hook(client, pid, receiver, tag)
    except LabelStudioError as exc:
        totals["errors"] += 1
        yield {"trigger": "hook", "error": f"webhook not registered, polling only: {exc}"}
        return None
    yield {"trigger": "hook", "hook_id": hook["id"], "url": hook["url"], "reused": hook["reused"]}
    return hook


def _pull_once(corpus, project, client, trigger: str, totals: dict | None = None) -> dict:
    """One incremental pull; after the first, a server or lock problem is reported, not raised."""
    try:
        summary = run(pull(corpus, project, client=client, wait=30))
    except (LabelStudioError, LockError) as exc:
        if totals is None:
            raise
        totals["errors"] += 1
        return {"trigger": trigger, "error": str(exc)}
    return {"trigger": trigger} | summary
