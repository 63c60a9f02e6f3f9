"""`spanbank train` and the span model: a tiny model trained on the seed gold, its errors."""

import json

import pytest
from click.testing import CliRunner

from spanbank import model
from spanbank.cli import cli
from spanbank.spans import fragment_list, joined_text
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus


def test_train_writes_a_model_that_predicts_spans_and_links(tmp_path):
    corpus = _seed_corpus(tmp_path)
    out = tmp_path / "m"
    res = CliRunner().invoke(
        cli,
        [
            "--corpus",
            str(corpus.path),
            "train",
            "--out",
            str(out),
            "--epochs",
            "80",
            "--holdout",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    card = json.loads(res.output)
    assert card["labels"] == ["QUOTE", "SPEAKER", "CUE"] and card["train_articles"] == 1
    assert card["data"]["corpus_commit"] == corpus.commits()["commit"].max() >= 1
    assert card["data"]["articles"] == 1
    nlp, _ = model.load(out)
    (_, text, gold, _) = gold_items(corpus)[0]
    pred = model.predict(nlp, [text])[0]
    labels = {s["label"] for s in pred["spans"]}
    assert {"QUOTE", "CUE"} <= labels, pred["spans"][:5]
    assert all(
        0 <= s["score"] <= 1
        and joined_text(text, fragment_list(s["start"], s["end"], s["fragments"])) == s["text"]
        for s in pred["spans"]
    )
    assert model.uncertainty(pred) >= 0
    # the scores come from our own stepping of the parser: its entities are spaCy's own
    docs = [nlp.make_doc(text)]
    model._parse(nlp.get_pipe("ner0"), docs)
    assert [(e.start, e.end, e.label_) for e in docs[0].ents] == [
        (e.start, e.end, e.label_) for e in nlp.get_pipe("ner0")(nlp.make_doc(text)).ents
    ]


def test_training_is_deterministic_for_a_seed(tmp_path):
    corpus = _seed_corpus(tmp_path)
    items = gold_items(corpus)
    texts = [items[0][1]]
    runs = []
    for name in ("a", "b"):
        model.train(items, tmp_path / name, ["QUOTE", "CUE"], seed=3, holdout=0, epochs=3)
        runs.append(model.predict(model.load(tmp_path / name)[0], texts))
    assert runs[0] == runs[1]


def test_bad_inputs_are_one_line_errors(tmp_path):
    corpus = _seed_corpus(tmp_path)
    run = CliRunner().invoke
    res = run(
        cli,
        [
            "--corpus",
            str(corpus.path),
            "train",
            "--out",
            str(tmp_path / "m"),
            "--labels",
            "QUOTE,NOPE",
        ],
    )
    assert res.exit_code == 1 and res.output.startswith("Error: labels not in the schema: NOPE")
    try:
        model.load(tmp_path)
    except model.NotAModel as exc:
        assert "is not a spanbank model" in str(exc)
    else:
        raise AssertionError("a plain directory loaded as a model")


def test_links_join_a_quote_to_the_nearest_cue_and_its_speaker():
    spans = [
        {"span_id": "q", "label": "QUOTE", "start": 0, "end": 20},
        {"span_id": "c", "label": "CUE", "start": 27, "end": 31},
        {"span_id": "s", "label": "SPEAKER", "start": 22, "end": 26},
        {"span_id": "far", "label": "SPEAKER", "start": 900, "end": 905},
    ]
    rels = {(r["to_span_id"], r["label"]) for r in model.link(spans)}
    assert rels == {("c", "cue"), ("s", "said_by")}


def test_preannotate_with_a_model_writes_predictions_and_scores_them(tmp_path):
    import pyarrow.parquet as pq

    corpus = _seed_corpus(tmp_path)
    model.train(
        gold_items(corpus), tmp_path / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=80
    )
    base = ["--corpus", str(corpus.path), "preannotate", "--model", str(tmp_path / "m")]
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "p.parquet"), "--json"])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert rows and {r["label"] for r in rows} <= {"QUOTE", "SPEAKER", "CUE"}
    assert json.loads(res.output)["tagger"].startswith("model:")
    res = CliRunner().invoke(cli, [*base, "--eval", "--json"])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "has no held-out articles (trained with --holdout 0)" in res.output
    res = CliRunner().invoke(cli, [*base[:2], "preannotate", "--model", str(tmp_path), "--eval"])
    assert res.exit_code == 1 and "is not a spanbank model" in res.output


@pytest.mark.labelstudio
def test_push_sends_model_predictions_for_the_most_uncertain_articles(
    tmp_path, ls_client, project_name
):
    from conftest import make_corpus
    from spanbank.corpus.articles import selection_frame
    from spanbank.labelstudio import workflow
    from spanbank.labelstudio.push import push_batch
    from spanbank.selection import order_articles

    seed = _seed_corpus(tmp_path)
    model.train(gold_items(seed), tmp_path / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=80)
    text = gold_items(seed)[0][1]
    texts = {f"a{i}": text[: 200 * (i + 1)] for i in range(6)}
    corpus = make_corpus(tmp_path / "c", texts)
    order = order_articles(
        corpus, selection_frame(corpus, None), "uncertain", 0, str(tmp_path / "m")
    )
    expected = set(order["article_id"].iloc[:2])
    summary = workflow.run(
        push_batch(
            corpus,
            project_name,
            client=ls_client,
            batch_size=2,
            select="uncertain",
            preannotate=f"model:{tmp_path / 'm'}",
        )
    )
    assert summary["pushed"] == 2 and summary["predictions"] > 0
    pushed = set(corpus.read("tasks")["article_id"])
    assert pushed == expected
    assert expected != {"a0", "a1"}  # not simply table order: the long texts are less certain


def test_nested_gold_is_dealt_to_layers_and_learned(tmp_path):
    assert model.layers([(0, 10, "QUOTE"), (2, 4, "SPEAKER"), (3, 4, "CUE"), (12, 13, "CUE")]) == [
        [(0, 10, "QUOTE"), (12, 13, "CUE")],
        [(2, 4, "SPEAKER")],
        [(3, 4, "CUE")],
    ]
    names = ["Ann Lee", "Bo Chan", "Cy Diaz", "Di Evans", "Ed Fox", "Flo Gray"]
    items = []
    for i, name in enumerate(names):
        text = f"Voters said {name} will win the seat. The vote is on day {i + 1}."
        q0 = text.index(name)
        q1 = text.index(" The") - 1
        items.append(
            (
                f"a{i}",
                text,
                [
                    {"label": "QUOTE", "start": q0, "end": q1},
                    {"label": "SPEAKER", "start": q0, "end": q0 + len(name)},
                    {"label": "CUE", "start": 7, "end": 11},
                ],
                [],
            )
        )
    card = model.train(items, tmp_path / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=40)
    assert card["layers"] == 2 and card["gold_spans_not_learned"] == 0
    nlp, _ = model.load(tmp_path / "m")
    for (_, text, gold, _), pred in zip(
        items, model.predict(nlp, [it[1] for it in items]), strict=True
    ):
        got = {(s["label"], s["start"], s["end"]) for s in pred["spans"]}
        assert {(g["label"], g["start"], g["end"]) for g in gold} <= got, (text, got)


def test_a_model_of_an_older_kind_is_refused_in_one_line(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "card.json").write_text('{"kind": "spanbank-spancat-1"}')
    with pytest.raises(model.NotAModel, match="spanbank-spancat-1 model.*train it again"):
        model.load(tmp_path)


def test_train_takes_the_cnn_shape_and_records_it(tmp_path):
    corpus = _seed_corpus(tmp_path)
    args = ["--corpus", str(corpus.path), "train", "--out", str(tmp_path / "m"), "--epochs", "1"]
    res = CliRunner().invoke(cli, [*args, "--width", "32", "--depth", "1", "--holdout", "0"])
    assert res.exit_code == 0, res.output
    _, card = model.load(tmp_path / "m")
    assert (card["width"], card["depth"], card["epochs"]) == (32, 1, 1)
    t2v = model.loaded(str(tmp_path / "m")).config["components"]["ner0"]["model"]["tok2vec"]
    assert (t2v["width"], t2v["depth"]) == (32, 1)


def test_train_replaces_only_a_model_and_whole(tmp_path, monkeypatch):
    """`--out` was filled in place: a folder of the user's got `pipeline/` and `card.json` added,
    and a run that failed after the pipeline left the new pipeline beside the old card. Now the
    model is written beside `--out` and renamed into place; only an earlier model is replaced."""
    corpus = _seed_corpus(tmp_path)
    items = gold_items(corpus)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    with pytest.raises(
        model.SpanbankError, match=r"notes is not a spanbank model \(no readable card.json\)"
    ):
        model.train(items, mine, ["QUOTE"], holdout=0, epochs=1)
    assert sorted(p.name for p in mine.iterdir()) == ["todo.txt"]
    out = tmp_path / "m"
    first = model.train(items, out, ["QUOTE"], seed=1, holdout=0, epochs=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    from spacy.language import Language

    real = Language.to_disk

    def fail(*args, **kwargs):  # the disk fills up after the pipeline, before the card
        real(*args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Language, "to_disk", fail)
    with pytest.raises(OSError, match="No space left"):
        model.train(items, out, ["QUOTE", "CUE"], seed=2, holdout=0, epochs=1)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert model.load(out)[1]["labels"] == first["labels"] == ["QUOTE"]
    second = model.train(items, out, ["QUOTE", "CUE"], seed=2, holdout=0, epochs=1)
    assert model.load(out)[1]["labels"] == second["labels"] == ["QUOTE", "CUE"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m", "notes", corpus.path.name])
