"""A damaged model directory is a one-line error for every command that reads a model (hunt D,
finding 8): a traceback came from card.json `{` or `[]`, truncated weights and a damaged
pipeline config."""

from __future__ import annotations

import gc
import shutil

import pytest
from click.testing import CliRunner

from spanbank import model
from spanbank.cli import cli
from spanbank.labelstudio.mlbackend import make_server
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus

DAMAGE = {
    "card not JSON": ("card.json", lambda p: p.write_text("{")),
    "card a list": ("card.json", lambda p: p.write_text("[]")),
    "weights truncated": ("pipeline/ner0/model", lambda p: p.write_bytes(p.read_bytes()[:100])),
    "config damaged": ("pipeline/config.cfg", lambda p: p.write_text("[nlp\n")),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(corpus, model dir): a tiny model (1 epoch) of the seed gold."""
    tmp = tmp_path_factory.mktemp("model")
    corpus = _seed_corpus(tmp)
    model.train(gold_items(corpus), tmp / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=1)
    return corpus, tmp / "m"


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_model_is_a_one_line_error_for_every_reader(tmp_path, trained, how):
    corpus, good = trained
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    part, damage = DAMAGE[how]
    damage(bad / part)
    expected = rf"^{bad}: a damaged model \({part.split('/')[0]}: [^\n]+\); train it again$"
    for read in (model.load, model.check, lambda d: make_server(str(d), corpus.schema, port=0)):
        with pytest.raises(model.NotAModel, match=expected):
            read(bad)
        assert gc.isenabled()  # srsly left the collector paused after truncated weights
    c = ["--corpus", str(corpus.path)]
    for args in (
        ["preannotate", "--model", str(bad), "--out", str(tmp_path / "p.parquet")],
        ["push", "--project", "news-x", "--preannotate", f"model:{bad}"],
        ["ml-backend", "--model", str(bad), "--port", "0"],
    ):
        res = CliRunner().invoke(cli, [*c, *args], env={"LABEL_STUDIO_URL": "http://127.0.0.1:9"})
        assert res.exit_code == 1, (args, res.output, res.exception)
        assert res.output.startswith(f"Error: {bad}: a damaged model ("), (args, res.output)
        assert res.output.count("\n") == 1, (args, res.output)
