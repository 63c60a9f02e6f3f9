"""A model folder must hold spanbank's NER (hunt G, finding 8): a sentencizer pipeline passed the
check and crashed preannotate (AttributeError traceback), a PERSON ner wrote PERSON spans although
card.json said QUOTE/SPEAKER/CUE, and labels the corpus's schema lacks were not refused."""

import json

import pytest
import spacy
from click.testing import CliRunner

from spanbank import model
from spanbank.cli import cli
from test_tagger_eval import _seed_corpus


def _save(nlp, path, labels=("QUOTE", "SPEAKER", "CUE")):
    nlp.initialize()
    path.mkdir()
    nlp.to_disk(path / "pipeline")
    (path / "card.json").write_text(json.dumps({"kind": model.KIND, "labels": list(labels)}))
    return path


def _ner(labels):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner", name="ner0")
    for lab in labels:
        ner.add_label(lab)
    return nlp


def test_a_pipeline_that_is_not_our_ner_is_a_one_line_error(tmp_path):
    corpus = _seed_corpus(tmp_path)
    sent = spacy.blank("en")
    sent.add_pipe("sentencizer")
    cases = {
        _save(sent, tmp_path / "sent"): "its pipeline's 'sentencizer' is a sentencizer, not an ner",
        _save(_ner(["PERSON"]), tmp_path / "person"): (
            "its ner labels PERSON are not in card.json's labels"
        ),
        _save(spacy.blank("en"), tmp_path / "empty"): "its pipeline has no ner",
    }
    for path, why in cases.items():
        want = f"{path} is not a spanbank model ({why}); train one with spanbank train"
        with pytest.raises(model.NotAModel) as exc:
            model.check(path)
        assert str(exc.value) == want
        args = ["--corpus", str(corpus.path), "preannotate", "--model", str(path)]
        res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "p.parquet")])
        assert (res.exit_code, res.output) == (1, f"Error: {want}\n")
    assert not (tmp_path / "p.parquet").exists()


def test_a_model_whose_labels_the_schema_lacks_is_refused(tmp_path):
    corpus = _seed_corpus(tmp_path)
    path = _save(_ner(["QUOTE", "RUMOUR"]), tmp_path / "m", labels=["QUOTE", "RUMOUR"])
    model.check(path)  # a model of its own
    args = ["--corpus", str(corpus.path), "preannotate", "--model", str(path)]
    for more in (["--out", str(tmp_path / "p.parquet")], ["--eval"]):
        res = CliRunner().invoke(cli, [*args, *more])
        assert res.exit_code == 1, res.output
        assert res.output.startswith(
            f"Error: {path}: the model's labels RUMOUR are not in this corpus's schema (known: "
        )
        assert res.output.count("\n") == 1
    # push --preannotate model:DIR and ml-backend refuse it too (before any connection)
    from spanbank.labelstudio.mlbackend import make_server
    from spanbank.labelstudio.push import check_push

    for refused in (
        lambda: check_push(corpus, "news", None, f"model:{path}"),
        lambda: make_server(str(path), corpus.schema, "127.0.0.1", 0),
    ):
        with pytest.raises(model.NotAModel, match="the model's labels RUMOUR are not in"):
            refused()


def test_a_folder_missing_its_pipeline_says_so(tmp_path):
    """A folder with card.json but no pipeline/ was reported as having no card.json."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "card.json").write_text(json.dumps({"kind": model.KIND}))
    with pytest.raises(model.NotAModel, match=r"m is not a spanbank model \(no pipeline/\); "):
        model.check(tmp_path / "m")
    with pytest.raises(model.NotAModel, match=r"\(no card.json and no pipeline/\)"):
        model.check(tmp_path)
