"""A Label Studio ML backend served by spanbank: the model's predictions when a task is opened.

Label Studio calls GET /health, POST /setup (model version) and POST /predict ({"tasks": [...]}
→ {"results": [{"result", "score", "model_version"} per task]}). The server is the standard
library's; it binds to loopback by default and keeps no state but the loaded model.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from spanbank.errors import LabelStudioError, SpanbankError
from spanbank.labelstudio import convert
from spanbank.labelstudio.convert import LS_TEXT_NAME

MAX_BODY = 64 * 2**20  # a predict request larger than this is refused


def model_version(model_dir: str) -> str:
    """The version Label Studio records with each prediction (as push's `model:NAME`)."""
    return f"model:{Path(model_dir).name}"


def predict_tasks(tasks: list[dict], model_dir: str, schema) -> list[dict]:
    """One LS prediction per task (an empty result when the model has nothing for it)."""
    from spanbank.predict import tag_articles

    texts = [t["data"][LS_TEXT_NAME] for t in tasks]
    langs = [(t.get("meta") or {}).get("language") for t in tasks]
    version = model_version(model_dir)
    out = []
    for text, (tagged, _) in zip(texts, tag_articles(texts, langs, model_dir), strict=True):
        spans = tagged["spans"]
        result = convert.spans_to_result(text, spans, tagged["relations"], schema) if spans else []
        score = sum(s.get("score", 1.0) for s in spans) / len(spans) if spans else None
        out.append(convert.prediction(result, version, score))
    return out


def _task_problem(task) -> str | None:
    """Why `predict_tasks` cannot read `task` (None when it can): an object with its text under
    `data.text` (Label Studio always sends it; another key would get an empty prediction)."""
    if not isinstance(task, dict):
        return "is not an object"
    data, meta = task.get("data"), task.get("meta") or {}
    if not isinstance(data, dict) or not isinstance(data.get(LS_TEXT_NAME), str):
        return f"has no text under data.{LS_TEXT_NAME}"
    if not isinstance(meta, dict):
        return "has a meta that is not an object"
    return None


def make_server(model_dir: str, schema, host: str = "127.0.0.1", port: int = 9090):
    """A ThreadingHTTPServer answering Label Studio's ML backend calls (not yet serving)."""
    from spanbank.model import check, check_labels, loaded

    check(model_dir)
    check_labels(model_dir, schema)
    loaded(model_dir)  # load before the first request, not during Label Studio's timeout
    version = model_version(model_dir)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") in ("", "/health"):
                self._send(
                    200, {"status": "UP", "model_class": "spanbank", "model_version": version}
                )
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            try:
                size = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                size = -1
            if not 0 <= size <= MAX_BODY:
                self._send(413, {"error": f"Content-Length must be 0 to {MAX_BODY} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                self._send(400, {"error": "request body is not JSON"})
                return
            path = self.path.rstrip("/")
            if path == "/setup":
                self._send(200, {"model_version": version})
            elif path == "/predict":
                tasks = body.get("tasks") if isinstance(body, dict) else None
                if not isinstance(tasks, list):
                    self._send(400, {"error": "predict needs a list of tasks (objects)"})
                    return
                for i, task in enumerate(tasks):
                    if problem := _task_problem(task):
                        ref = task.get("id", i) if isinstance(task, dict) else i
                        self._send(400, {"error": f"task {str(ref)[:40]} {problem}"})
                        return
                try:
                    results = predict_tasks(tasks, model_dir, schema)
                except Exception as exc:  # noqa: BLE001 - an answer, not a dropped connection
                    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
                    self._send(500, {"error": f"prediction failed: {reason}"})
                    return
                self._send(200, {"results": results})
            elif path in ("/webhook", "/train"):
                self._send(200, {"status": "ignored: train with spanbank train"})
            else:
                self._send(404, {"error": "not found"})

        def log_message(self, *args):  # request lines would carry nothing useful to us
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # Label Studio's "retrieve predictions" calls at once (not 5)

    try:
        return Server((host, port), Handler)
    except OSError as exc:
        raise SpanbankError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def register(client, project_id: int, url: str, title: str = "spanbank") -> dict:
    """Connect the ML backend at `url` to the project (once: an existing connection is kept).
    The summary shows `url` with its user-info masked (Label Studio gets it whole, to log in)."""
    from spanbank.corpus.commits import mask_userinfo

    found = client.request("GET", "/api/ml", params={"project": project_id}) or []
    for backend in found:
        if backend.get("url", "").rstrip("/") == url.rstrip("/"):
            return {"url": mask_userinfo(url), "id": backend["id"], "state": "kept"}
    try:
        made = client.request(
            "POST",
            "/api/ml",
            json_body={"url": url, "project": project_id, "title": title, "is_interactive": True},
        )
    except LabelStudioError as exc:  # its reason quotes the URL, whatever its password holds
        raise type(exc)(str(exc).replace(url, mask_userinfo(url))) from None
    return {"url": mask_userinfo(url), "id": made["id"], "state": "registered"}
