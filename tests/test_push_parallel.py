"""Push's tagging on the engine: the predictions push sends and the order `--select uncertain`
picks are the same from parts on 2 local Dask workers as from one process tagging all at once."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import article_rows
from spanbank import model, predict
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.corpus.articles import attach_rows, selection_frame
from spanbank.labelstudio.push import _Batch, _predictions
from spanbank.parallel import engine
from spanbank.selection import order_articles
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus

pytest.importorskip("distributed")
PART = 7  # articles per part: 40 articles make 6 parts


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model trained on the seed gold, and 40 articles cut from its text: 36 in English
    (of growing length, so the model is unsure of each to a different degree), 4 in German."""
    tmp = tmp_path_factory.mktemp("pushpar")
    items = gold_items(_seed_corpus(tmp / "seed"))
    model.train(items, tmp / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=35)
    text = items[0][1]
    texts = {f"a{i:02d}": text[(i * 37) % 400 : (i * 37) % 400 + 120 + 29 * i] for i in range(40)}
    rows = article_rows(texts)
    for r in rows[::10]:
        r["language"] = "de"
    corpus = Corpus.init(tmp / "c")
    with corpus.writer() as w:
        w.append("articles", rows)
    return corpus, str(tmp / "m")


def _three_ways(monkeypatch, run):
    """run(eng) with every article in one part in this process, then in parts of PART here and
    on a LocalCluster of 2 single-threaded workers (which must have started)."""
    whole = run(None)
    monkeypatch.setattr(predict, "BATCH", PART)
    with engine(workers=1) as eng:
        here = run(eng)
    with engine(workers=2) as eng:
        there = run(eng)
        assert eng._client is not None  # the parts did go to the workers
    return whole, here, there


@pytest.mark.parametrize("mode", ["rules", "model"])
def test_predictions_from_parts_on_two_workers_are_those_of_one_process(setup, monkeypatch, mode):
    corpus, model_dir = setup
    candidates = attach_rows(corpus, selection_frame(corpus, None))
    preannotate = "rules" if mode == "rules" else f"model:{model_dir}"

    def run(eng):
        preds, why = _predictions(preannotate, candidates, corpus.schema, eng)
        return json.dumps(list(preds.items())), dict(why)

    whole, here, there = _three_ways(monkeypatch, run)
    assert len(json.loads(whole[0])) >= 10  # most articles got predictions
    if mode == "model":
        assert whole[1]["model is for 'en', article is 'de'"] == 4
    assert here == whole and there == whole


def test_uncertain_order_from_parts_on_two_workers_is_that_of_one_process(setup, monkeypatch):
    corpus, model_dir = setup
    fresh = selection_frame(corpus, None)

    def run(eng):
        return order_articles(corpus, fresh, "uncertain", 0, model_dir, eng)["article_id"].tolist()

    whole, here, there = _three_ways(monkeypatch, run)
    assert whole != fresh["article_id"].tolist()  # the model reordered them
    assert whole[-4:] == ["a00", "a10", "a20", "a30"]  # German: the English model goes last
    assert here == whole and there == whole


@pytest.mark.parametrize("batch_size", [3, 12, None])
def test_uncertain_push_tags_each_candidate_once(setup, monkeypatch, batch_size):
    """`push --select uncertain --preannotate model:` sends the batch the tagging that ranked it:
    each candidate is tagged once, and the predictions are those of tagging the batch afresh."""
    corpus, model_dir = setup
    real, seen = predict.tag_articles, []

    def counting(texts, languages, model_dir=None):
        seen.extend(texts)
        return real(texts, languages, model_dir)

    monkeypatch.setattr(predict, "tag_articles", counting)
    fresh = selection_frame(corpus, None)
    batch = _Batch(corpus, fresh, f"model:{model_dir}", None, 0, batch_size, 5)
    batch.select = "uncertain"
    batch.pick(set(), encoder=None)
    assert len(seen) == len(fresh)  # the batch was not tagged a second time
    monkeypatch.setattr(predict, "tag_articles", real)
    order = order_articles(corpus, fresh, "uncertain", 0, model_dir)["article_id"].tolist()
    assert batch.ids == order[:batch_size]
    preds, why = _predictions(f"model:{model_dir}", batch.todo, corpus.schema)
    assert len(preds) >= min(3, batch_size or 40)
    assert json.dumps(batch.preds) == json.dumps(preds) and batch.why == why


def test_uncertain_first_keeps_the_taggings_of_the_first_in_order(monkeypatch):
    """The taggings kept while the scores stream in are those of the first `keep` articles of
    the stable order, ties broken by position, for every `keep`."""
    scores = [0.5, 2.0, 0.5, -1.0, 2.0, 0.5, 1.0, -1.0, 2.0]

    def fake(texts, languages, model_dir=None):
        return [({"spans": [], "relations": [], "uncertainty": float(t)}, t) for t in texts]

    monkeypatch.setattr(predict, "tag_articles", fake)
    monkeypatch.setattr(predict, "BATCH", 2)
    texts = [str(x) for x in scores]
    for keep in [*range(len(scores) + 2), None]:
        order, kept = predict.uncertain_first(texts, [None] * len(texts), "m", None, keep)
        assert order.tolist() == sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        assert sorted(kept) == sorted(order.tolist()[:keep])
        assert all(kept[i][1] == texts[i] for i in kept)


@pytest.mark.labelstudio
def test_push_with_two_workers_sends_the_one_process_choice_and_predictions(
    setup, monkeypatch, ls_conn, ls_client, project_name
):
    corpus, model_dir = setup
    fresh = selection_frame(corpus, None)
    want = order_articles(corpus, fresh, "uncertain", 0, model_dir)["article_id"].iloc[:12]
    preds, _ = _predictions(
        f"model:{model_dir}", attach_rows(corpus, fresh), corpus.schema
    )  # all in this process
    monkeypatch.setattr(predict, "BATCH", PART)
    url, key = ls_conn
    args = ["--corpus", str(corpus.path), "push", "--project", project_name, "--create"]
    args += ["--url", url, "--api-key", key, "--batch-size", "12", "--select", "uncertain"]
    args += ["--preannotate", f"model:{model_dir}", "--workers", "2", "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["pushed"] == 12
    tasks = corpus.read("tasks")
    tasks = tasks[tasks["project"] == project_name]
    assert set(tasks["article_id"]) == set(want)
    pid = int(tasks["ls_project_id"].iloc[0])
    sent = {
        t["data"]["article_id"]: [p["result"] for p in t["predictions"]]
        for page in ls_client.task_pages(pid)
        for t in page
    }
    mine = {a: [p["result"] for p in preds.get(a, [])] for a in want}
    assert any(mine.values()) and sent == mine
