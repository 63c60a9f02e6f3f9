"""Annotator pseudonyms keep one person one name: when Label Studio's user list fails during a
pull, and when the corpus's key file is missing."""

from __future__ import annotations

import pytest

from _helpers import region
from conftest import make_corpus
from spanbank import pseudonyms
from spanbank.annotators import list_annotators, resolve_annotators
from spanbank.errors import CorpusError, LabelStudioError
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow

TEXT = "Story {i}. “Prices will rise,” the minister said on Monday."


@pytest.mark.labelstudio
def test_emails_missed_by_a_pull_are_filled_by_a_later_one(
    tmp_path, ls_client, project_name, monkeypatch
):
    """The user list fails during the first pull: the pseudonym is stored without its e-mail.
    Before, no later pull asked again, and `annotators` (all e-mails missing) was a traceback."""
    texts = {f"a{i}": TEXT.format(i=i) for i in range(2)}
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    tid = dict(zip(*corpus.read("tasks")[["article_id", "ls_task_id"]].T.values, strict=True))
    email = f"{project_name}@example.org"
    user = ls_client.create_user(email, project_name)
    ls_client.create_annotation(
        tid["a0"],
        [region("q", texts["a0"], "“Prices will rise,”", "QUOTE")],
        completed_by=user["id"],
    )

    def refused():
        raise LabelStudioError("Label Studio answered 503 on GET api/users/")

    monkeypatch.setattr(ls_client, "list_users", refused)
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    (row,) = list_annotators(corpus, show_emails=True)
    assert row["email"] is None and row["annotations"] == 1
    with pytest.raises(Exception, match="no annotator"):
        resolve_annotators(corpus, [email])
    monkeypatch.undo()

    ls_client.create_annotation(
        tid["a1"],
        [region("q", texts["a1"], "“Prices will rise,”", "QUOTE")],
        completed_by=user["id"],
    )
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    (row,) = list_annotators(corpus, show_emails=True)
    assert row["email"] == email and row["annotations"] == 2
    assert resolve_annotators(corpus, [email]) == [row["annotator"]]
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client, full=True))
    assert len(corpus.read("annotators")) == 2  # the row without, the row with; no more


def test_a_missing_key_is_not_made_again_once_pseudonyms_exist(tmp_path):
    """A copy that left the dot file behind: a new key would give the same people new
    pseudonyms (one person counted as two). Before, it was made again without a word."""
    corpus = make_corpus(tmp_path / "c", {"a0": TEXT.format(i=0)})
    key = ls_pull.pseudonym_key(corpus)  # a fresh corpus makes its key
    assert ls_pull.pseudonym_key(corpus) == key
    with corpus.writer() as w:
        person = ls_pull.pseudonym(key, "http://ls", 7)
        w.append(
            "annotators",
            [{"annotator": person, "ls_url": "http://ls", "ls_user_id": 7, "email": None}],
        )
    (corpus.path / pseudonyms.KEY_FILE).unlink()
    with pytest.raises(CorpusError, match=r"\.pseudonym_key is missing, yet 1 annotator"):
        ls_pull.pseudonym_key(corpus)
    assert not (corpus.path / pseudonyms.KEY_FILE).exists()
