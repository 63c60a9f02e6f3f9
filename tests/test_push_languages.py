"""`spanbank push --preannotate`: each article is tagged in its language, and the summary
counts the articles that got no pre-annotation by reason (real local Label Studio)."""

from __future__ import annotations

from click.testing import CliRunner

from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.labelstudio import workflow
from spanbank.labelstudio.push import push_batch
from spanbank.preannotate import TAGGER_VERSION

TEXTS = {
    "en1": "“Trains will run on Monday,” the minister said.",
    "en2": "A headline without speech",
    "de1": "„Die Züge fahren am Montag“, sagte die Ministerin.",
    "de2": "Die Kanzlerin sagte, dass die Gespräche gescheitert seien.",
    "fr1": "« Les trains rouleront lundi », a déclaré la ministre.",
    "xx1": "“Trains will run on Monday,” the minister said.",
}
LANGUAGE = {"de1": "de", "de2": "de-AT", "fr1": "fr_FR", "xx1": "xx"}


def _corpus(path) -> Corpus:
    corpus = Corpus.init(path)
    rows = article_rows(TEXTS)
    for r in rows:
        r["language"] = LANGUAGE.get(r["article_id"], "en")
    with corpus.writer() as w:
        w.append("articles", rows)
    return corpus


def _predicted(client, pid) -> dict[str, list[str]]:
    """article_id -> model versions of its task's predictions, as the server holds them."""
    return {
        t["data"]["article_id"]: [p["model_version"] for p in t["predictions"]]
        for page in client.task_pages(pid)
        for t in page
    }


def test_push_tags_each_language_and_counts_articles_without_predictions(
    tmp_path, ls_conn, ls_client, project_name
):
    corpus = _corpus(tmp_path / "c")
    url, key = ls_conn
    dry = CliRunner().invoke(
        cli,
        ["--corpus", str(corpus.path), "push", "--project", project_name, "--create", "--dry-run"]
        + ["--preannotate", "rules", "--url", url, "--api-key", key],
    )
    assert dry.exit_code == 0, dry.output
    assert "without_predictions: no rules for language 'xx' 1, nothing found 1" in dry.output

    summary = workflow.run(push_batch(corpus, project_name, client=ls_client, preannotate="rules"))
    assert summary["pushed"] == 6 and summary["predictions"] == 4
    assert summary["without_predictions"] == {"no rules for language 'xx'": 1, "nothing found": 1}
    got = _predicted(ls_client, summary["ls_project_id"])
    assert got == {
        "en1": [TAGGER_VERSION],
        "en2": [],
        "de1": [TAGGER_VERSION],
        "de2": [TAGGER_VERSION],
        "fr1": [TAGGER_VERSION],
        "xx1": [],
    }


def test_push_with_a_model_leaves_out_articles_in_other_languages(
    tmp_path, ls_client, project_name
):
    from spanbank import model
    from spanbank.tagger_eval import gold_items
    from test_tagger_eval import _seed_corpus

    items = gold_items(_seed_corpus(tmp_path / "seed"))
    model.train(items, tmp_path / "m", ["QUOTE", "CUE"], lang="en", holdout=0, epochs=2)
    corpus = _corpus(tmp_path / "c")
    summary = workflow.run(
        push_batch(corpus, project_name, client=ls_client, preannotate=f"model:{tmp_path / 'm'}")
    )
    assert summary["pushed"] == 6
    why = dict(summary["without_predictions"])
    assert why.pop("model is for 'en', article is 'de'") == 2
    assert why.pop("model is for 'en', article is 'fr'") == 1
    assert why.pop("model is for 'en', article is 'xx'") == 1
    assert set(why) <= {"nothing found"}
    assert summary["predictions"] == 2 - why.get("nothing found", 0)
    got = _predicted(ls_client, summary["ls_project_id"])
    assert all(got[a] == [] for a in ("de1", "de2", "fr1", "xx1"))
