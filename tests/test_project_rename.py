"""A project renamed in Label Studio is the same project: pull and push say so and change
nothing. Before, both called it gone ("deleted in Label Studio?"), and the advice they printed
(`push --create --repush-missing`) made a second project and pushed every article again."""

from __future__ import annotations

import pytest

from conftest import make_corpus
from spanbank.errors import ProjectRenamedError
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow

pytestmark = pytest.mark.labelstudio


def test_a_renamed_project_is_named_not_made_again(tmp_path, ls_client, project_name):
    corpus = make_corpus(
        tmp_path / "c", {f"a{i}": f"Story {i}. “Yes,” she said." for i in range(3)}
    )
    pid = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))["ls_project_id"]
    ls_client.request("PATCH", f"api/projects/{pid}/", json_body={"title": project_name + "-x"})
    said = f"is titled '{project_name}-x' on .* now; rename it back to '{project_name}'"
    with pytest.raises(ProjectRenamedError, match=said):
        workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    with pytest.raises(ProjectRenamedError, match=said):
        workflow.run(
            ls_push.push_batch(
                corpus, project_name, client=ls_client, create=True, repush_missing=True
            )
        )
    assert ls_client.find_project(project_name) is None  # no second project
    assert len(corpus.read("tasks")) == 3
    ls_client.request("PATCH", f"api/projects/{pid}/", json_body={"title": project_name})
    assert (
        workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))["ls_project_id"] == pid
    )
