"""`spanbank ml-backend`: Label Studio asks a trained model for predictions over HTTP."""

import json
import os
import threading
import urllib.request

import pytest

from spanbank import model
from spanbank.labelstudio.mlbackend import make_server, predict_tasks
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(seed corpus, model dir): a tiny model that has learned the seed article."""
    tmp = tmp_path_factory.mktemp("mlb")
    corpus = _seed_corpus(tmp)
    model.train(gold_items(corpus), tmp / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=80)
    return corpus, str(tmp / "m")


@pytest.fixture
def backend(trained):
    corpus, model_dir = trained
    server = make_server(model_dir, corpus.schema, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _call(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_backend_answers_health_setup_and_predict(trained, backend):
    corpus, model_dir = trained
    text = gold_items(corpus)[0][1]
    assert _call(backend, "/health") == (
        200,
        {"status": "UP", "model_class": "spanbank", "model_version": "model:m"},
    )
    assert _call(backend, "/setup", {"project": "1.1", "schema": "<View/>"}) == (
        200,
        {"model_version": "model:m"},
    )
    tasks = [
        {"id": 1, "data": {"text": text}, "meta": {"language": "en"}},
        {"id": 2, "data": {"text": text}, "meta": {"language": "de"}},  # not the model's
    ]
    code, body = _call(backend, "/predict", {"tasks": tasks})
    assert code == 200 and len(body["results"]) == 2
    first, second = body["results"]
    assert first == predict_tasks(tasks[:1], model_dir, corpus.schema)[0]
    labels = {v["labels"][0] for r in first["result"] if "labels" in (v := r.get("value", {}))}
    assert {"QUOTE", "CUE"} <= labels and first["model_version"] == "model:m"
    assert second["result"] == []
    assert _call(backend, "/predict", {"tasks": "nope"})[0] == 400
    # JSON of other shapes: each was a traceback and a dropped connection (hunt F, finding 8)
    assert _call(backend, "/predict", [1]) == (
        400,
        {"error": "predict needs a list of tasks (objects)"},
    )
    good = {"data": {"text": text}}
    for bad, error in (
        ([1], "task 0 is not an object"),
        ([good, {"data": "text"}], "task 1 has no text under data.text"),
        (
            [{"id": 7, "meta": "x", "data": {"text": text}}],
            "task 7 has a meta that is not an object",
        ),
        # a task without its text under data.text was answered 200 with an empty prediction
        # (hunt G, finding 2)
        ([{"id": 8, "data": {"txt": text}}], "task 8 has no text under data.text"),
        ([{"data": {"text": 12345}}], "task 0 has no text under data.text"),
        ([{"data": {}}], "task 0 has no text under data.text"),
        ([{}], "task 0 has no text under data.text"),
    ):
        assert _call(backend, "/predict", {"tasks": bad}) == (400, {"error": error}), bad
    assert _call(backend, "/health")[0] == 200  # still serving
    # a prediction that fails (the model folder moved away) is an answer, not a dropped
    # connection (hunt G, finding 9)
    moved = model_dir + ".moved"
    os.rename(model_dir, moved)
    try:
        code, body = _call(backend, "/predict", {"tasks": tasks[:1]})
    finally:
        os.rename(moved, model_dir)
    assert code == 500 and body["error"].startswith("prediction failed: "), body
    assert _call(backend, "/nope")[0] == 404
    import http.client

    host, port = backend.removeprefix("http://").split(":")
    for length in ("-5", "many"):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()


def test_a_port_in_use_is_a_one_line_error(trained, backend):
    from spanbank.errors import SpanbankError

    corpus, model_dir = trained
    port = int(backend.rsplit(":", 1)[1])
    with pytest.raises(SpanbankError, match=f"cannot listen on 127.0.0.1:{port}"):
        make_server(model_dir, corpus.schema, "127.0.0.1", port)


@pytest.mark.labelstudio
def test_label_studio_fetches_predictions_from_the_backend_that_push_connected(
    trained, backend, tmp_path, ls_client, project_name
):
    from conftest import make_corpus
    from spanbank.labelstudio import workflow
    from spanbank.labelstudio.push import push_batch

    seed, model_dir = trained
    text = gold_items(seed)[0][1]
    corpus = make_corpus(tmp_path / "c", {"a1": text, "a2": text[:900]})
    summary = workflow.run(push_batch(corpus, project_name, client=ls_client, ml_backend=backend))
    assert summary["pushed"] == 2 and summary["ml_backend"]["state"] == "registered"
    pid = summary["ls_project_id"]
    again = workflow.run(push_batch(corpus, project_name, client=ls_client, ml_backend=backend))
    assert again["ml_backend"]["state"] == "kept"
    assert len(ls_client.request("GET", "/api/ml", params={"project": pid})) == 1
    # only loopback is let through the SSRF guard: another private address is still refused
    from spanbank.errors import SpanbankError
    from spanbank.labelstudio.mlbackend import register

    with pytest.raises(SpanbankError) as refused:
        register(ls_client, pid, "http://10.255.255.1:9090")
    assert "reserved network address" in str(refused.value)
    assert len(ls_client.request("GET", "/api/ml", params={"project": pid})) == 1

    # what an annotator's "retrieve predictions" does: Label Studio calls our /predict
    ls_client.request(
        "POST",
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": pid},
        json_body={"selectedItems": {"all": True, "excluded": []}, "project": str(pid)},
    )
    tasks = [t for page in ls_client.task_pages(pid) for t in page]
    assert len(tasks) == 2
    for t in tasks:
        preds = t["predictions"]
        assert len(preds) == 1 and preds[0]["model_version"] == "model:m"
        want = predict_tasks([{"data": t["data"], "meta": {}}], model_dir, seed.schema)[0]
        got = sorted(
            (r["value"]["start"], r["value"]["end"])
            for r in preds[0]["result"]
            if "start" in r.get("value", {})
        )
        exp = sorted(
            (r["value"]["start"], r["value"]["end"])
            for r in want["result"]
            if "start" in r.get("value", {})
        )
        assert got == exp and got
    # a backend URL with credentials: Label Studio gets them, the summary shows none (hunt F, 3)
    secret = backend.replace("http://", "http://mluser:mlSecretPw@")
    shown = register(ls_client, pid, secret)
    masked = backend.replace("http://", "http://***@")
    assert shown == {"url": masked, "id": shown["id"], "state": "registered"}
    urls = [b["url"] for b in ls_client.request("GET", "/api/ml", params={"project": pid})]
    assert secret in urls
