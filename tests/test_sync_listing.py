"""A pull's task listing while annotators and admins work: Label Studio cuts it into pages by
offset, read one after another. An edit made meanwhile must not be skipped by the next pull's
cursor, and a task deleted meanwhile must not shift a live annotation out of the listing (it
would be marked deleted). Against the real local Label Studio; the listing is cut into pages
of 3 tasks, and the wrapped `task_pages` does what a second user does after its first page."""

from __future__ import annotations

import time

import pytest

from _helpers import region
from conftest import make_corpus
from spanbank.errors import ListingChangedError
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow

pytestmark = pytest.mark.labelstudio

TEXT = "Story {i}. “Prices will rise,” the minister said on Monday."


@pytest.fixture
def project(tmp_path, ls_client, project_name, monkeypatch):
    """8 pushed articles (listed as pages [1-3] [4-6] [7-8]); articles 0 and 3 annotated as
    QUOTE and pulled. Returns the corpus, the task ids and the annotation ids by article."""
    monkeypatch.setattr(ls_pull, "LISTING_PAGE", 3)
    texts = {f"a{i}": TEXT.format(i=i) for i in range(8)}
    corpus = make_corpus(tmp_path / "corpus", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, create=True))
    tasks = corpus.read("tasks").sort_values("ls_task_id")
    tid = dict(zip(tasks["article_id"], tasks["ls_task_id"], strict=True))
    user = ls_client.create_user(f"{project_name}@example.org", project_name)
    quote = region("r1", texts["a0"], "“Prices will rise,”", "QUOTE")
    aid = {
        a: ls_client.create_annotation(tid[a], [quote], completed_by=user["id"])["id"]
        for a in ("a0", "a3")
    }
    first = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert first["new"] == 2
    # the cursor stays a second behind the server's clock as a listing begins: a pull a second
    # later moves it past the two annotations, as in a project worked on for a while
    time.sleep(1.1)
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    return corpus, tid, aid, texts


def _after_first_page(ls_client, monkeypatch, act):
    """The cheap listing (the one asking for annotation ids) calls `act(n)` once its first page
    was read, n counting the listings so far."""
    real, listings = ls_client.task_pages, []

    def pages(pid, **kw):
        cheap = "annotations_ids" in (kw.get("include") or [])
        for i, page in enumerate(real(pid, **kw)):
            yield page
            if cheap and i == 0:
                listings.append(1)
                act(len(listings))

    monkeypatch.setattr(ls_client, "task_pages", pages)


def _labels(corpus, ls_aid: int) -> list[str]:
    ann = corpus.read("annotations")
    row = ann[(ann["ls_annotation_id"] == ls_aid) & ~ann["superseded"].astype(bool)]
    spans = corpus.read("spans")
    return sorted(spans[spans["annotation_id"].isin(row["annotation_id"])]["label"])


def test_an_edit_during_the_listing_is_pulled_next_time(
    project, ls_client, project_name, monkeypatch
):
    """Article 0 (page 1) is edited after page 1 was read, then article 3 (page 2): the pull
    sees only the second edit. Before, its cursor moved to that edit's time, past the first, and
    no later pull fetched article 0 again."""
    corpus, _, aid, texts = project
    cue = region("r1", texts["a0"], "said", "CUE")

    def edit(n):
        if n == 1:
            ls_client.update_annotation(aid["a0"], result=[cue])
            ls_client.update_annotation(aid["a3"], result=[cue])

    _after_first_page(ls_client, monkeypatch, edit)
    during = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert during["updated"] == 1 and _labels(corpus, aid["a3"]) == ["CUE"]
    assert _labels(corpus, aid["a0"]) == ["QUOTE"]  # not seen yet
    after = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert after["updated"] == 1 and _labels(corpus, aid["a0"]) == ["CUE"]
    again = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert again["updated"] == 0 and again["new"] == 0


def test_a_task_deleted_during_the_listing_deletes_no_annotation(
    project, ls_client, project_name, monkeypatch
):
    """An admin deletes article 1's empty task after page 1 was read: article 3's task moves
    into page 1, already read. Before, the pull took its live annotation as deleted in Label
    Studio (`deleted: 1`). The listing is now read again."""
    corpus, tid, aid, _ = project
    _after_first_page(ls_client, monkeypatch, lambda n: n == 1 and ls_client.delete_task(tid["a1"]))
    got = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert got["deleted"] == 0 and got["tasks_listed"] == 7
    ann = corpus.read("annotations")
    assert ann["deleted_at"].isna().all() and len(ann) == 2
    assert _labels(corpus, aid["a3"]) == ["QUOTE"]


def test_tasks_deleted_during_every_listing_stop_the_pull_with_nothing_stored(
    project, ls_client, project_name, monkeypatch
):
    corpus, tid, _, _ = project
    empty = [tid[a] for a in ("a1", "a2", "a4")]
    _after_first_page(ls_client, monkeypatch, lambda n: ls_client.delete_task(empty[n - 1]))
    before = corpus.read("annotations")
    with pytest.raises(
        ListingChangedError, match=r"added or deleted .* 3 times; nothing was stored"
    ):
        workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert corpus.read("annotations").equals(before)


def test_a_task_deleted_while_most_tasks_are_fetched_stops_the_pull(
    project, ls_client, project_name, monkeypatch
):
    """Fetching most of a project reads its pages whole, by offset, too: a deletion meanwhile
    stops the pull with one line and stores nothing."""
    corpus, tid, _, texts = project
    user = ls_client.create_user(f"{project_name}-2@example.org", project_name + "-2")
    for a in ("a1", "a2"):
        quote = region("r1", texts[a], "“Prices will rise,”", "QUOTE")
        ls_client.create_annotation(tid[a], [quote], completed_by=user["id"])
    real, deleted = ls_client.task_pages, []

    def pages(pid, **kw):
        for i, page in enumerate(real(pid, **kw)):
            yield page
            if "include" not in kw and kw.get("ids") is None and i == 0 and not deleted:
                deleted.append(ls_client.delete_task(tid["a4"]))

    monkeypatch.setattr(ls_client, "task_pages", pages)
    before = corpus.read("annotations")
    with pytest.raises(ListingChangedError, match="while spanbank read them; nothing was stored"):
        workflow.run(ls_pull.pull(corpus, project_name, client=ls_client, full=True, page_size=3))
    assert deleted and corpus.read("annotations").equals(before)
