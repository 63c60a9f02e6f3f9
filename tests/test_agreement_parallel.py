"""Agreement on the engine: per-article statistics on 2 local Dask workers, combined here, give the
same report (every figure, bootstrap CIs included) as one process computing all articles at once."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import spanbank.agreement.report as report_mod
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.synth import synth_chunks

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """60 synthetic articles, each annotated by 3 annotators who disagree (spanbank.synth)."""
    corpus = Corpus.init(tmp_path_factory.mktemp("agree") / "corpus")
    now = pd.Timestamp("2025-06-01", tz="UTC")
    arts, spans, rels = next(synth_chunks(60, 4, 3, chunk=60))
    ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates("annotation_id")
    ann = ann.assign(
        project="synth", origin="human", created_at=now, updated_at=now, version=1,
        cancelled=False, superseded=False,
    )  # fmt: skip
    with corpus.writer() as w:
        w.append("articles", arts.assign(language="en", origin="synth", ingested_at=now)
                 .reindex(columns=TABLES["articles"].names))  # fmt: skip
        w.append("spans", spans.drop(columns="annotator").reindex(columns=TABLES["spans"].names))
        w.append("relations", rels.reindex(columns=TABLES["relations"].names))
        w.append("annotations", ann.reindex(columns=TABLES["annotations"].names))
    return corpus


def _agree(corpus, *opts) -> dict:
    args = ["--corpus", str(corpus.path), "agree", "--json", "--bootstrap", "300", *opts]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_two_workers_give_the_report_of_one_process(corpus, monkeypatch):
    whole = _agree(corpus)  # all 60 articles in one part, in this process
    monkeypatch.setattr(report_mod, "ARTICLES_PER_PART", 7)  # 9 parts, planned here
    here = _agree(corpus, "--workers", "1")
    there = _agree(corpus, "--workers", "2")
    assert whole["coverage"]["articles_with_2plus"] == 60
    assert whole["summary"]["token_alpha"]["value"] < 1  # the annotators do disagree
    assert whole["attributions"]["overall"]["attributions"] > 0
    assert whole["relations"]["overall"]["links"] > 0
    # every figure, to the last bit (NaN as NaN), per label, pair and article, and the CIs
    assert json.dumps(here, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert json.dumps(there, sort_keys=True) == json.dumps(whole, sort_keys=True)


def test_html_views_are_the_same_from_parts(corpus, monkeypatch):
    """The least-agreed articles' token views come from the parts' token arrays put together."""
    full = report_mod.agreement_report(corpus, bootstrap=0, views=True)
    monkeypatch.setattr(report_mod, "ARTICLES_PER_PART", 5)
    parts = report_mod.agreement_report(corpus, bootstrap=0, views=True, workers=1)
    assert json.dumps(parts["_views"], sort_keys=True, default=str) == json.dumps(
        full["_views"], sort_keys=True, default=str
    )
