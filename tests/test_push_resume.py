"""`push --batch-size N` (or `--sample N`) stopped half-way: the next such push finishes that
batch, as the interruption message says, instead of picking N articles anew (a re-run pushed
140 tasks where a clean run gives 100). Against the real local Label Studio."""

from __future__ import annotations

from collections import Counter

import pytest

from _helpers import Stopped, stop_after_first_import
from conftest import make_corpus
from spanbank.corpus.articles import selection_frame
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow

pytestmark = pytest.mark.labelstudio


@pytest.mark.parametrize("pick", [{"batch_size": 8}, {"sample": 8, "seed": 5}])
def test_a_batch_stopped_half_way_is_finished_by_the_next_push(
    tmp_path, ls_client, project_name, monkeypatch, pick
):
    texts = {f"a{i:02d}": f"Story {i}. “Yes,” she said." for i in range(20)}
    corpus = make_corpus(tmp_path / "c", texts)
    selected, _ = ls_push.select_articles(selection_frame(corpus, None))
    clean = ls_push._pick(  # what a push that is not stopped sends
        selected, set(), Counter(), pick.get("sample"), pick.get("seed", 0), pick.get("batch_size")
    )
    args = dict(client=ls_client, chunk_size=3, **pick)
    stop_after_first_import(ls_client, monkeypatch)
    with pytest.raises(Stopped):
        workflow.run(ls_push.push_batch(corpus, project_name, **args))
    assert len(corpus.read("tasks")) == 3
    monkeypatch.undo()

    done = workflow.run(ls_push.push_batch(corpus, project_name, **args))
    assert done["pushed"] == 5 and done.get("resumed_batch") == 5
    tasks = corpus.read("tasks")
    assert len(tasks) == 8 and set(tasks["article_id"]) == set(clean["article_id"])
    # that batch is done: the next push picks a new one
    after = workflow.run(ls_push.push_batch(corpus, project_name, **args))
    assert "resumed_batch" not in after and after["pushed"] == 8
    assert len(corpus.read("tasks")) == 16 and corpus.read("tasks")["article_id"].is_unique
