"""`train --labels` (hunt G, finding 12 c-e): a label with no gold trained silently, a label
given twice was written twice into the card, and `--labels ,` named no label in its error."""

import json

from click.testing import CliRunner

from spanbank.cli import cli
from test_tagger_eval_languages import _languages_corpus


def _train(corpus, out, *args):
    base = ["--corpus", str(corpus.path), "train", "--out", str(out), "--epochs", "1"]
    return CliRunner().invoke(cli, [*base, "--width", "8", "--depth", "1", *args])


def test_labels_are_checked_and_deduplicated(tmp_path):
    corpus = _languages_corpus(tmp_path)  # gold of QUOTE, SPEAKER and CUE, no EVENT
    for labels, want in (
        ("EVENT", "Error: the gold has no span labelled EVENT: nothing to learn; leave it out"),
        ("QUOTE,EVENT", "Error: the gold has no span labelled EVENT: nothing to learn; leave"),
        (",", "Error: labels: an empty label; name labels separated by commas"),
        ("QUOTE,,CUE", "Error: labels: an empty label; name labels separated by commas"),
    ):
        res = _train(corpus, tmp_path / "m", "--labels", labels)
        assert res.exit_code == 1 and res.output.startswith(want), (labels, res.output)
        assert res.output.count("\n") == 1
        assert not (tmp_path / "m").exists()
    res = _train(corpus, tmp_path / "m", "--labels", "QUOTE, CUE,QUOTE", "--holdout", "0")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m" / "card.json").read_text())["labels"] == ["QUOTE", "CUE"]


def test_a_model_is_not_written_inside_the_corpus(tmp_path):
    """`train --out CORPUS/models/m` wrote into the corpus folder, where `preannotate --out`
    refuses to write (hunt G, finding 12a)."""
    corpus = _languages_corpus(tmp_path)
    out = corpus.path / "models" / "m"
    res = _train(corpus, out)
    assert res.exit_code == 1, res.output
    assert res.output == (
        f"Error: --out {out} is inside the spanbank corpus {corpus.path.resolve()}; write the "
        "model outside it\n"
    )
    assert not (corpus.path / "models").exists()
