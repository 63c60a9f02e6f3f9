"""Server and project identity against real Label Studio servers: restarts, moves, two servers,
typos, deleted projects, and `doctor` repairing what restarts did before servers had identities."""

from __future__ import annotations

import shutil
import uuid

import pandas as pd
import pytest
from click.testing import CliRunner

from _helpers import region
from conftest import make_corpus
from spanbank.cli import cli
from spanbank.doctor import doctor
from spanbank.errors import ProjectMissingError
from spanbank.labelstudio import identity, server, workflow
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio.client import LabelStudioClient

pytestmark = pytest.mark.labelstudio


def _texts(n: int, tag: str = "") -> dict[str, str]:
    return {
        f"a{i:03d}": f"Story {i}{tag}. “Prices will rise by {i} percent,” the minister said on Monday."
        for i in range(n)
    }


def _users(client, n=2):
    tag = uuid.uuid4().hex[:6]
    return [client.create_user(f"id{i}-{tag}@example.org", f"id{i}{tag}") for i in range(n)]


def _task_ids(corpus, project, url) -> dict[str, int]:
    t = corpus.read("tasks")
    t = t[(t["project"] == project) & (t["ls_url"] == url)]
    return dict(zip(t["article_id"], t["ls_task_id"], strict=True))


def _annotate(client, corpus, project, users, texts, n_articles):
    """Each user annotates the first `n_articles` (the second user leaves out the cue: agreement < 1)."""
    tids = _task_ids(corpus, project, client.url)
    for aid in list(texts)[:n_articles]:
        text = texts[aid]
        for k, u in enumerate(users):
            result = [region("q", text, text[text.index("“") : text.index("”") + 1], "QUOTE")]
            if k == 0:
                result.append(region("c", text, "said", "CUE"))
            client.create_annotation(tids[aid], result, completed_by=u["id"])


def _pull(corpus, project, client):
    return workflow.run(ls_pull.pull(corpus, project, client=client))


def _alias(url: str) -> str:
    """The same server under another host name: what a restart on a new URL looks like to a pull."""
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    """A second local Label Studio of our own (its own data, its own port), stopped at the end."""
    data_dir = tmp_path_factory.mktemp("ls2")
    server.start(data_dir=data_dir)
    try:
        yield data_dir
    finally:
        server.stop(data_dir)


def _client_of(data_dir) -> LabelStudioClient:
    info = server.status(data_dir)
    return LabelStudioClient(info.url, server.read_env_file(info.env_file)[server.ENV_KEY])


# ---------------------------------------------------------------------------- 14.1 identity
def test_restart_on_new_port_pulls_nothing_again(second_server, tmp_path):
    """Stop the server, start it on another port: the pull follows it; 0 new annotations, 0 new annotators."""
    before = _client_of(second_server)
    texts = _texts(4)
    corpus = make_corpus(tmp_path / "c", texts)
    project = f"restart-{uuid.uuid4().hex[:6]}"
    workflow.run(ls_push.push_batch(corpus, project, client=before, overlap=2))
    users = _users(before)
    _annotate(before, corpus, project, users, texts, 3)
    assert _pull(corpus, project, before)["new"] == 6
    ann_before, who_before = corpus.read("annotations"), corpus.read("annotators")

    server.stop(second_server)
    port = int(before.url.rsplit(":", 1)[1]) + 1
    while not _port_free(port):
        port += 1
    server.start(data_dir=second_server, port=port)
    after = _client_of(second_server)
    assert after.url != before.url

    again = _pull(corpus, project, after)
    assert (again["new"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert again["moved_from"] == before.url
    ann = corpus.read("annotations")
    assert sorted(ann["annotation_id"]) == sorted(ann_before["annotation_id"])
    assert len(corpus.read("annotators")) == len(who_before)
    for name in ("tasks", "annotations", "annotators"):
        assert set(corpus.read(name)["ls_url"]) == {after.url}, name
    # work done after the move carries the annotator's old pseudonym
    tids = _task_ids(corpus, project, after.url)
    text = texts["a003"]
    after.create_annotation(
        tids["a003"], [region("c", text, "said", "CUE")], completed_by=users[0]["id"]
    )
    third = _pull(corpus, project, after)
    assert third["new"] == 1 and "moved_from" not in third
    ann = corpus.read("annotations")
    assert set(ann["annotator"]) == set(ann_before["annotator"])
    assert len(corpus.read("annotators")) == len(who_before)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_same_title_on_two_servers_files_each_annotation_under_its_article(
    second_server, ls_client, tmp_path
):
    """Two servers, one project title, overlapping task ids: each annotation lands on its own server's article."""
    other = _client_of(second_server)
    texts = _texts(6)
    corpus = make_corpus(tmp_path / "c", texts)
    project = f"twin-{uuid.uuid4().hex[:6]}"
    a = workflow.run(ls_push.push_batch(corpus, project, client=ls_client))
    a_ids = sorted(_task_ids(corpus, project, ls_client.url).values())
    # bring the other server's next task id to the first one used here, so only the server
    # (not the task id) tells the two projects' tasks apart
    filler = other.create_project(
        f"filler-{uuid.uuid4().hex[:6]}", "<View><Text name='t' value='$t'/></View>"
    )
    next_id = other.import_tasks(filler["id"], [{"data": {"t": "x"}}])[0] + 1
    while next_id < a_ids[0]:
        k = min(5000, a_ids[0] - next_id)
        next_id = other.import_tasks(filler["id"], [{"data": {"t": "x"}}] * k)[-1] + 1
    # the other server gets the articles in another order: a003..a005 first, then a000..a002
    workflow.run(ls_push.push_batch(corpus, project, client=other, ids=["a003", "a004", "a005"]))
    workflow.run(ls_push.push_batch(corpus, project, client=other))
    b_ids = _task_ids(corpus, project, other.url)
    assert set(b_ids.values()) & set(a_ids), "the two servers' task ids should overlap"
    assert a["pushed"] == 6 and len(b_ids) == 6
    for client in (ls_client, other):
        for aid, tid in _task_ids(corpus, project, client.url).items():
            client.create_annotation(tid, [region("c", texts[aid], "said", "CUE")])
    assert _pull(corpus, project, ls_client)["new"] == 6
    assert _pull(corpus, project, other)["new"] == 6
    ann = corpus.read("annotations")
    for client in (ls_client, other):
        mine = ann[ann["ls_url"] == client.url]
        on_server = {t: a for a, t in _task_ids(corpus, project, client.url).items()}
        assert len(mine) == 6
        assert (mine["ls_task_id"].map(on_server) == mine["article_id"]).all()
    assert corpus.read("rejects").empty
    servers = identity.server_records(corpus)
    assert len(servers) == 2 and servers["tag"].is_unique


def test_same_server_under_another_host_name_is_followed(
    ls_client, ls_conn, tmp_path, project_name
):
    texts = _texts(3)
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    _annotate(ls_client, corpus, project_name, _users(ls_client), texts, 2)
    assert _pull(corpus, project_name, ls_client)["new"] == 4
    alias = LabelStudioClient(_alias(ls_conn[0]), ls_conn[1])
    again = _pull(corpus, project_name, alias)
    assert again["new"] == 0 and again["moved_from"] == ls_client.url
    pushed = workflow.run(ls_push.push_batch(corpus, project_name, client=alias))
    assert (
        pushed["pushed"] == 0
        and pushed["skipped"] == {"already pushed": 3}
        and pushed["reconciled"] == 0
    )


def _make_legacy(corpus, url):
    """Turn a corpus into what spanbank stored before servers had identities: URL tags, URL pseudonyms."""
    key = ls_pull.pseudonym_key(corpus)
    tag = identity.server_records(corpus)["tag"].iloc[0]
    old = identity.url_tag(url)
    who = corpus.read("annotators")
    rename = dict(
        zip(
            who["annotator"],
            [ls_pull.pseudonym(key, url, u) for u in who["ls_user_id"]],
            strict=True,
        )
    )
    with corpus.writer() as w:
        for name in ("annotations", "spans", "relations", "rejects"):
            df = corpus.read(name)
            df["annotation_id"] = df["annotation_id"].str.replace(
                f"ls-{tag}-", f"ls-{old}-", regex=False
            )
            if name == "annotations":
                df["annotator"] = df["annotator"].map(rename)
            w.replace(name, df)
        w.replace("annotators", who.assign(annotator=who["annotator"].map(rename)))
    shutil.rmtree(corpus.table_path(identity.SERVERS_TABLE))
    # as such a corpus's log was: its last commit names no servers table (a table it named and
    # that is gone is a loss, which readers and writers refuse)
    corpus._record_commit("ok", "(a corpus from before the servers table)")


@pytest.mark.parametrize("where", ["same URL", "another URL"])
def test_corpus_from_before_identities_keeps_its_ids(
    ls_client, ls_conn, tmp_path, project_name, where
):
    """Annotation ids and pseudonyms stored under the old URL-based tag are recognised: no duplicates."""
    texts = _texts(3)
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    users = _users(ls_client)
    _annotate(ls_client, corpus, project_name, users, texts, 2)
    _pull(corpus, project_name, ls_client)
    _make_legacy(corpus, ls_client.url)
    legacy = corpus.read("annotations")
    client = ls_client if where == "same URL" else LabelStudioClient(_alias(ls_conn[0]), ls_conn[1])
    text = texts["a002"]
    tid = _task_ids(corpus, project_name, ls_client.url)["a002"]
    ls_client.create_annotation(
        tid, [region("c", text, "said", "CUE")], completed_by=users[1]["id"]
    )
    out = _pull(corpus, project_name, client)
    assert out["new"] == 1 and out.get("moved_from") == (
        None if where == "same URL" else ls_client.url
    )
    ann = corpus.read("annotations")
    assert set(legacy["annotation_id"]) < set(ann["annotation_id"])
    assert ann["annotation_id"].str.startswith(f"ls-{identity.url_tag(ls_client.url)}-").all()
    assert set(ann["annotator"]) == set(legacy["annotator"])
    assert doctor(corpus)["duplicates"] == 0


def test_server_move_command(tmp_path):
    corpus = make_corpus(tmp_path / "c", _texts(1))
    now = pd.Timestamp.now(tz="UTC")
    with corpus.writer() as w:
        w.append(
            "tasks",
            [
                {
                    "project": "news",
                    "ls_url": "http://old:8080",
                    "ls_project_id": 1,
                    "article_id": "a000",
                    "ls_task_id": 1,
                    "batch_id": "b",
                    "pushed_at": now,
                    "schema_version": "news-v1",
                }
            ],
        )
        w.append(
            "task_plans",
            pd.DataFrame(
                [{"project": "news", "ls_url": "http://old:8080", "article_id": "a000",
                  "ls_task_id": None, "batch_id": None, "overlap": 2, "honeypot": False,
                  "honeypot_gold": None, "planned_at": now}]
            ),
        )  # fmt: skip
        w.append(
            "push_batches",
            pd.DataFrame(
                [{"project": "news", "ls_url": "http://old:8080", "batch_id": "b",
                  "article_id": "a000", "picked_at": now}]
            ),
        )  # fmt: skip
    run = CliRunner().invoke
    out = run(
        cli,
        [
            "--corpus",
            str(corpus.path),
            "server",
            "move",
            "http://old:8080/",
            "https://new.example.org",
        ],
    )
    assert out.exit_code == 0, out.output
    assert set(corpus.read("tasks")["ls_url"]) == {"https://new.example.org"}
    # hunt L, 13: a plan and a picked batch kept the old URL, so an interrupted one was lost
    for name in ("task_plans", "push_batches"):
        assert set(corpus.read(name)["ls_url"]) == {"https://new.example.org"}, name
    out = run(cli, ["--corpus", str(corpus.path), "server", "move", "http://old:8081", "http://x"])
    assert out.exit_code == 1 and out.output.strip().count("\n") == 0
    assert (
        "no records of a server at http://old:8081; did you mean https://new.example.org?"
        not in out.output
    )
    assert "no records of a server at http://old:8081" in out.output


# ---------------------------------------------------------------------------- 14.2 doctor
def _duplicate_as_old_spanbank_did(corpus, new_url):
    """Store every annotation again as a pull before server identities did after a restart at `new_url`:
    under the new URL's tag and pseudonyms (spans and relations copied)."""
    key = ls_pull.pseudonym_key(corpus)
    tag = identity.server_records(corpus)["tag"].iloc[0]
    new_tag = identity.url_tag(new_url)
    who = corpus.read("annotators")
    user_of = dict(zip(who["annotator"], who["ls_user_id"], strict=True))
    ann = corpus.read("annotations")
    copy = ann.assign(
        annotation_id=ann["annotation_id"].str.replace(f"ls-{tag}-", f"ls-{new_tag}-", regex=False),
        annotator=[ls_pull.pseudonym(key, new_url, user_of[a]) for a in ann["annotator"]],
        ls_url=new_url,
        pulled_at=ann["pulled_at"] + pd.Timedelta(seconds=5),
    )
    with corpus.writer() as w:
        w.replace("annotations", pd.concat([ann, copy], ignore_index=True))
        for name in ("spans", "relations"):
            df = corpus.read(name)
            dup = df.assign(
                annotation_id=df["annotation_id"].str.replace(
                    f"ls-{tag}-", f"ls-{new_tag}-", regex=False
                )
            )
            w.replace(name, pd.concat([df, dup], ignore_index=True))
    return len(ann)


def _agreement(corpus, project):
    from spanbank.agreement.report import agreement_report

    report = agreement_report(corpus, project=project, bootstrap=0)
    return {k: v["value"] for k, v in report["summary"].items()}


def test_doctor_fix_restores_agreement(ls_client, tmp_path, project_name):
    texts = _texts(4)
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    _annotate(ls_client, corpus, project_name, _users(ls_client), texts, 4)
    _pull(corpus, project_name, ls_client)
    clean = _agreement(corpus, project_name)
    n = _duplicate_as_old_spanbank_did(corpus, _alias(ls_client.url))
    assert _agreement(corpus, project_name) != clean  # each annotator now also agrees with herself
    spans = len(corpus.read("spans"))

    runner = CliRunner()
    shown = runner.invoke(cli, ["--corpus", str(corpus.path), "doctor"])
    assert (
        shown.exit_code == 0
        and f"{n} annotation copies" in shown.output
        and "doctor --fix" in shown.output
    )
    found = doctor(corpus)
    assert (
        found["duplicates"] == n and found["superseded"] == 0 and len(found["same_annotator"]) == 2
    )
    # the copies under the server's current URL stay; the stray ones go
    assert all(
        c["kept"].startswith(f"ls-{identity.server_records(corpus)['tag'].iloc[0]}-")
        for c in found["copies"]
    )

    fixed = runner.invoke(cli, ["--corpus", str(corpus.path), "doctor", "--fix"])
    assert fixed.exit_code == 0 and f"superseded {n} copies" in fixed.output
    assert _agreement(corpus, project_name) == clean
    assert (
        len(corpus.read("annotations")) == 2 * n and len(corpus.read("spans")) == spans
    )  # nothing deleted
    assert doctor(corpus)["duplicates"] == 0
    assert _pull(corpus, project_name, ls_client)["new"] == 0


# ---------------------------------------------------------------------------- 14.3 project names
def test_unknown_project_suggests_nearest_names(ls_conn, tmp_path, project_name):
    texts = _texts(2)
    corpus = make_corpus(tmp_path / "c", texts)
    env = {"LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}
    runner = CliRunner()
    base = ["--corpus", str(corpus.path)]
    no = runner.invoke(cli, [*base, "push", "--project", project_name], env=env)
    assert no.exit_code == 1 and "pass --create" in no.output and no.output.strip().count("\n") == 0
    ok = runner.invoke(
        cli, [*base, "push", "--project", project_name, "--create", "--json"], env=env
    )
    assert ok.exit_code == 0, ok.output
    typo = project_name[:-1] + ("x" if project_name[-1] != "x" else "y")
    for args in (
        ["pull", "--project", typo],
        ["agree", "--project", typo],
        ["adjudicate", "--project", typo],
        ["export", "--format", "jsonl", "--project", typo, "--out", str(tmp_path / "out")],
    ):
        out = runner.invoke(cli, [*base, *args], env=env)
        assert out.exit_code == 1, (args, out.output)
        assert out.output.strip().count("\n") == 0, out.output
        assert f"did you mean {project_name}" in out.output, out.output


def test_deleted_project_detected_and_repushable(ls_client, tmp_path, project_name):
    texts = _texts(3)
    corpus = make_corpus(tmp_path / "c", texts)
    first = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    _annotate(ls_client, corpus, project_name, _users(ls_client, 1), texts, 1)
    assert _pull(corpus, project_name, ls_client)["new"] == 1
    ls_client.request("DELETE", f"api/projects/{first['ls_project_id']}/")

    with pytest.raises(
        ProjectMissingError, match="is gone from .*nothing pulled.*--repush-missing"
    ):
        _pull(corpus, project_name, ls_client)
    with pytest.raises(ProjectMissingError, match="is gone from"):
        workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, create=False))
    made = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    assert made["project_recreated"] and made["missing_from_server"] == 3 and made["pushed"] == 0
    assert "--repush-missing" in made["hint"]
    again = workflow.run(
        ls_push.push_batch(corpus, project_name, client=ls_client, repush_missing=True)
    )
    assert again["pushed"] == 3 and "project_recreated" not in again
    assert workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))["skipped"] == {
        "already pushed": 3
    }
    pulled = _pull(corpus, project_name, ls_client)
    assert pulled["deleted"] == 0 and "project_recreated" not in pulled
    assert len(corpus.latest_annotations(project_name)) == 1  # the deleted project's work is kept


def test_recreated_project_pull_says_so(ls_client, tmp_path, project_name):
    """Deleted and made again in Label Studio under the same title: pull says so, keeps earlier work."""
    texts = _texts(2)
    corpus = make_corpus(tmp_path / "c", texts)
    first = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    _annotate(ls_client, corpus, project_name, _users(ls_client, 1), texts, 2)
    assert _pull(corpus, project_name, ls_client)["new"] == 2
    ls_client.request("DELETE", f"api/projects/{first['ls_project_id']}/")
    ls_client.create_project(project_name, corpus.schema.label_config())
    out = _pull(corpus, project_name, ls_client)
    assert "was id" in out["project_recreated"] and out["deleted"] == 0 and out["new"] == 0
    assert len(corpus.latest_annotations(project_name)) == 2
    cli_out = CliRunner().invoke(
        cli, ["--corpus", str(corpus.path), "adjudicate", "--project", project_name]
    )
    assert cli_out.exit_code == 0, cli_out.output


def test_an_annotation_stored_on_another_task_stops_the_pull(ls_client, tmp_path, project_name):
    """Two servers made from one data dir (a copy) share their identity and their annotation
    ids: a pull from each in turn stored one server's annotation of article 2 as a new version
    of the other's annotation of article 1 (hunt H, finding 8). An annotation never changes
    task, so one stored on another task stops the pull, nothing stored."""
    from spanbank.errors import SpanbankError

    texts = _texts(2)
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    _annotate(ls_client, corpus, project_name, _users(ls_client, 1), texts, 1)
    assert _pull(corpus, project_name, ls_client)["new"] == 1
    tids = _task_ids(corpus, project_name, ls_client.url)
    ann = corpus.read("annotations")  # what the copy's pull left: that id on the other task
    ann["ls_task_id"] = tids["a001"]
    with corpus.writer() as w:
        w.replace("annotations", ann)
    before = corpus.read("annotations")
    with pytest.raises(SpanbankError, match=r"but the corpus holds it on task \d+: two servers"):
        _pull(corpus, project_name, ls_client)
    pd.testing.assert_frame_equal(corpus.read("annotations"), before)
