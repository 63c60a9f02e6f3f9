"""`preannotate --model M --eval` with nothing to score (hunt G, finding 10): it printed "on 0
article(s)" and an empty table with exit 0; now a one-line error says why."""

from click.testing import CliRunner

from spanbank import model
from spanbank.cli import cli
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus
from test_tagger_eval_languages import _languages_corpus


def _eval(corpus, model_dir):
    args = ["--corpus", str(corpus.path), "preannotate", "--model", str(model_dir), "--eval"]
    return CliRunner().invoke(cli, args)


def test_eval_of_a_model_with_nothing_to_score_is_a_one_line_error(tmp_path):
    other = _languages_corpus(tmp_path)
    held = model.train(gold_items(other), tmp_path / "m", ["QUOTE"], holdout=0.5, epochs=1)
    assert held["heldout_articles"]
    corpus = _seed_corpus(tmp_path)  # holds none of the model's held-out articles
    res = _eval(corpus, tmp_path / "m")
    n = len(held["heldout_articles"])
    assert res.exit_code == 1, res.output
    assert res.output == (
        f"Error: none of model {tmp_path / 'm'}'s {n} held-out article(s) has gold in this "
        "corpus: nothing to score it on\n"
    )
    model.train(gold_items(corpus), tmp_path / "m0", ["QUOTE"], holdout=0, epochs=1)
    res = _eval(corpus, tmp_path / "m0")
    assert res.exit_code == 1, res.output
    assert res.output == (
        f"Error: model {tmp_path / 'm0'} has no held-out articles (trained with --holdout 0): "
        "nothing to score it on\n"
    )
