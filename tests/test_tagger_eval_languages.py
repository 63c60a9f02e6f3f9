"""A model's held-out score on a corpus of two languages (hunt G, finding 6): the card's
heldout_scores and `preannotate --model --eval` score the same articles, and name the rest."""

import json

from click.testing import CliRunner

from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus.store import Corpus
from spanbank.tagger_eval import evaluate_tagger
from spanbank.train import train_from_corpus
from test_tagger_eval import import_annotation

NAMES = ["Ann Lee", "Bo Chan", "Cy Diaz", "Di Evans", "Ed Fox", "Flo Gray", "Gus Hall", "Hy Ito"]
GERMAN = {"a1", "a3", "a6"}


def _languages_corpus(tmp_path) -> Corpus:
    """Eight short articles with gold (QUOTE, SPEAKER, CUE), three of them marked German."""
    texts, spans = {}, []
    for i, name in enumerate(NAMES):
        aid = f"a{i}"
        text = f'"The vote is on day {i + 1}," {name} said. Polls open at eight.'
        texts[aid] = text
        q = (0, text.index(name) - 1)
        for sid, label, a, b in (
            ("T1", "QUOTE", *q),
            ("T2", "SPEAKER", text.index(name), text.index(name) + len(name)),
            ("T3", "CUE", text.index(" said") + 1, text.index(" said") + 5),
        ):
            spans.append(
                {
                    "annotation_id": f"imp-{aid}",
                    "span_id": sid,
                    "article_id": aid,
                    "label": label,
                    "start": a,
                    "end": b,
                    "text": text[a:b],
                    "attributes": None,
                    "offset_repair": None,
                }
            )
    anns = [import_annotation(f"imp-{aid}", aid) for aid in texts]
    rows = article_rows(texts)
    for r in rows:
        r["language"] = "de" if r["article_id"] in GERMAN else "en"
    corpus = Corpus.init(tmp_path / "c")
    with corpus.writer() as w:
        w.append("articles", rows)
        w.append("annotations", anns)
        w.append("spans", spans)
    return corpus


def test_card_and_eval_score_the_same_held_out_articles(tmp_path):
    """--eval left the German held-out articles untagged but counted their gold as missed,
    while the card tagged them: two figures for one model. Both now leave them out, by name."""
    corpus = _languages_corpus(tmp_path)
    card = train_from_corpus(
        corpus, tmp_path / "m", holdout=0.5, seed=1, epochs=1, width=8, depth=1
    )
    held = set(card["heldout_articles"])
    german = held & GERMAN
    assert german and held - GERMAN  # the seed holds out both kinds
    assert card["lang"] == "en"
    scored = len(held - GERMAN)
    for key in ("QUOTE", "SPEAKER", "CUE"):
        assert card["heldout_scores"][key]["n_gold"] == scored, key
    assert card["heldout_left_out"] == {a: "model is for 'en', article is 'de'" for a in german}
    res = evaluate_tagger(corpus, model_dir=str(tmp_path / "m"))
    assert res["articles"] == scored and res["left_out"] == card["heldout_left_out"]
    assert res["overlap"] == card["heldout_scores"]
    out = CliRunner().invoke(
        cli, ["--corpus", str(corpus.path), "preannotate", "--model", str(tmp_path / "m"), "--eval"]
    )
    assert out.exit_code == 0, out.output
    line = out.output.splitlines()[1]
    assert line.startswith(
        f"left out {len(german)} article(s) (model is for 'en', article is 'de'): "
    )
    assert set(line.split(": ", 1)[1].split(", ")) == german
    got = json.loads(
        CliRunner()
        .invoke(
            cli,
            ["--corpus", str(corpus.path), "preannotate", "--model", str(tmp_path / "m")]
            + ["--eval", "--json"],
        )
        .output
    )
    assert got["left_out"] == card["heldout_left_out"]
