"""docs/SECURITY.md 13.5: a URL's user-info is never stored or printed, by `server move` or in
the commit log (hunt D, finding 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import make_corpus
from spanbank.corpus.commits import command_line
from spanbank.labelstudio import identity
from spanbank.labelstudio.client import LabelStudioClient
from test_versions import _spanbank

PASSWORD = "Pa55(word)"
SECRET_URL = f"https://alice:{PASSWORD}@labels.example.org/"


@pytest.mark.parametrize(
    ("arg", "masked"),
    [
        ("http://alice:Secret(1)@host", "http://***@host"),
        ("http://alice:pa=ss@host", "http://***@host"),
        ("http://alice:p:ss@host", "http://***@host"),
        ("http://alice:Pa55word;x@host:8080/ls", "http://***@host:8080/ls"),
        ("--url=https://alice:pa/ss@host", "--url=https://***@host"),
        ("http://host:8080/x", "http://host:8080/x"),
        ("https://ghp_token@github.com/x", "https://***@github.com/x"),
        # a space in the password; two URLs in one argument: kept whole (hunt I, finding 4)
        ("http://user:pass word@ls.example:8080", "http://***@ls.example:8080"),
        ("http://a:b@h1 and https://c:d@h2/x", "http://***@h1 and https://***@h2/x"),
    ],
)
def test_the_command_line_masks_a_urls_user_info(arg, masked):
    """Only an e-mail rule caught URL passwords, by accident: `Secret(1)` was kept whole and
    `pa=ss` became `pa=***`. Now the user-info goes, and is no e-mail to pseudonymise."""
    assert command_line(["spanbank", "pull", arg]) == f"spanbank pull {masked}"
    assert command_line(["spanbank", arg], pseudonym=lambda e: "ann-1") == f"spanbank {masked}"


def test_a_token_before_an_at_sign_in_the_path_is_still_user_info():
    """`http://TOKEN@host/x@y` was kept whole: the rule looked at the text up to the last "@",
    which held a "/" (hunt I, finding 4). The authority ends at the first "/", "?" or "#"."""
    for arg, masked in (
        ("http://TOKEN@ls.example/x@y", "http://***@ls.example/***"),
        ("http://TOKEN@ls.example/?next=a@b", "http://***@ls.example/?next=***"),
    ):
        assert command_line(["spanbank", "pull", arg]) == f"spanbank pull {masked}"


def test_an_at_sign_in_a_urls_path_is_no_user_info():
    """`s3://bucket/key@v1` lost its bucket to the user-info rule (`key@v1` still reads as an
    e-mail, as in any argument)."""
    assert command_line(["spanbank", "s3://bucket/key@v1/f"]) == "spanbank s3://bucket/***/f"


def _files_holding(root: Path, secret: str) -> list[str]:
    """Files under `root` whose bytes, or decoded Parquet cells, hold `secret`."""
    hits = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        text = f.read_bytes().decode("utf-8", "replace")
        if f.suffix == ".parquet":
            text += str(pq.read_table(f).to_pylist())
        if secret in text:
            hits.append(str(f.relative_to(root)))
    return hits


def _corpus_with_a_server_at(path: Path, url: str):
    corpus = make_corpus(path, {"a1": "The minister said the plan works."})
    now = pd.Timestamp.now(tz="UTC")
    task = dict(project="news", ls_url=url, ls_project_id=1, article_id="a1", ls_task_id=1)
    server = dict(server_id="f" * 16, ls_url=url, tag="ffffff", basis="server:x", org_id=1)
    with corpus.writer() as w:
        w.append("tasks", [{**task, "batch_id": "b", "pushed_at": now, "schema_version": "v"}])
        identity._save_servers(
            w,
            pd.DataFrame(
                [{**server, "org_created_at": "t", "first_seen_at": now, "moved_at": None}]
            ).assign(moved_from=None),
        )
    return corpus


def test_server_move_stores_and_prints_no_credentials(tmp_path):
    """`server move OLD https://alice:PW@host` stored and printed the password (tasks, servers,
    the commit log). Now no file under the corpus and no output holds it, and the stored URL is
    the one push and pull store for that server."""
    corpus = _corpus_with_a_server_at(tmp_path / "c", "http://127.0.0.1:8080")
    c = ["--corpus", corpus.path]
    moved = _spanbank(*c, "server", "move", "http://127.0.0.1:8080", SECRET_URL)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("moved http://127.0.0.1:8080 -> https://labels.example.org ")
    stored = LabelStudioClient(SECRET_URL, "0" * 40).url
    assert set(corpus.read("tasks")["ls_url"]) == {stored} == {"https://labels.example.org"}
    assert set(identity.server_records(corpus)["ls_url"]) == {stored}
    # back again, typed with the credentials; then a URL the corpus does not know
    back = _spanbank(*c, "server", "move", SECRET_URL, "http://127.0.0.1:8090", "--json")
    assert back.returncode == 0, back.stderr
    assert set(corpus.read("tasks")["ls_url"]) == {"http://127.0.0.1:8090"}
    assert set(identity.server_records(corpus)["moved_from"]) == {stored}
    unknown = _spanbank(*c, "server", "move", f"http://bob:{PASSWORD}@nowhere", SECRET_URL)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(
        "Error: the corpus has no records of a server at http://nowhere"
    )
    log = _spanbank(*c, "log")
    assert "server move http://127.0.0.1:8080 https://***@labels.example.org" in log.stdout
    outputs = [r.stdout + r.stderr for r in (moved, back, unknown, log)]
    assert not [o for o in outputs if PASSWORD in o or "alice" in o or "bob" in o], outputs
    assert _files_holding(corpus.path, PASSWORD) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:xyzzy/plugh@127.0.0.1:9",  # the error said "Invalid port: 'xyzzy'"
        "http://alice:xyzzy?plugh@127.0.0.1:9",
        "http://alice:xyzzy#plugh@127.0.0.1:9",
        "http://alice:xyzzy plugh@127.0.0.1:9",  # parsed, but the text rule stopped at the space
        "alice:xyzzy@127.0.0.1:9",  # no scheme: "not an http(s) URL" showed it whole
        "ftp://alice:xyzzy@127.0.0.1:9",
    ],
)
def test_a_urls_password_reaches_no_message_however_it_is_written(tmp_path, url):
    corpus = make_corpus(tmp_path / "c", {"a1": "The minister said the plan works."})
    env = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": "0" * 40}
    out = _spanbank("--corpus", corpus.path, "push", "--project", "news", env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "Label Studio" in out.stderr and "127.0.0.1:9" in out.stderr, out.stderr
    assert not {"alice", "xyzzy", "plugh"} & set(re.findall(r"\w+", out.stderr)), out.stderr


def test_the_client_drops_user_info_up_to_the_authoritys_last_at_sign():
    assert LabelStudioClient("http://u:p@ss word@h:9/x@y?z=@", "0" * 40).url == "http://h:9/x@y?z=@"
    assert LabelStudioClient("HTTP://@h:9/", "0" * 40).url == "HTTP://h:9"
    assert LabelStudioClient("http://h:9/a@b", "0" * 40).url == "http://h:9/a@b"


def test_an_e_mail_left_in_old_annotations_is_exported_as_its_keyed_pseudonym(tmp_path):
    """A corpus from before pull stored pseudonyms only names an annotator by e-mail, in
    `annotator` and inside `annotation_id`: the export wrote the id verbatim and the annotator
    as `annotator-` + sha256(e-mail), which a list of candidate addresses reverses (hunt F,
    finding 5). Both now carry the pseudonym brat ingest gives that e-mail, under the corpus's
    key, made by the first export that needs it: exports agree (a key per export made each
    differ: hunt I, finding 2)."""
    from spanbank.corpus.ingest import ingest_paths
    from spanbank.export import export_dataset
    from spanbank.export.jsonl import read_jsonl
    from spanbank.pseudonyms import pseudonym, stored_key

    email = "carol.old@corp.example"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "d1.txt").write_text('The mayor said "we will build it".\n')
    (tmp_path / "b" / "d1.ann").write_text("T1\tCUE 10 14\tsaid\n")
    corpus = make_corpus(tmp_path / "c", {})
    ingest_paths(corpus, [tmp_path / "b"], fmt="brat", annotator="olduser")
    ann, spans = corpus.read("annotations"), corpus.read("spans")
    for df, cols in ((ann, ("annotator", "annotation_id")), (spans, ("annotation_id",))):
        for c in cols:
            df[c] = df[c].str.replace("olduser", email)
    with corpus.writer() as w:
        w.replace("annotations", ann)
        w.replace("spans", spans)
    assert stored_key(corpus.path) is None
    export_dataset(corpus, ["jsonl"], tmp_path / "e", split="train=1")
    first = (tmp_path / "e" / "jsonl" / "train.jsonl").read_bytes()
    (doc,) = read_jsonl(tmp_path / "e" / "jsonl" / "train.jsonl")
    expected = pseudonym(stored_key(corpus.path), "brat", email)
    assert doc["meta"]["annotator"] == expected
    (stored_id,) = ann["annotation_id"]
    assert doc["meta"]["annotation_id"] == stored_id.replace(email, expected)
    assert _files_holding(tmp_path / "e", "carol") == []
    export_dataset(corpus, ["jsonl"], tmp_path / "e", split="train=1")
    assert (tmp_path / "e" / "jsonl" / "train.jsonl").read_bytes() == first


def test_an_annotation_id_that_merely_holds_an_at_sign_is_exported_as_it_is():
    """`import-press@v2.1-alice-…` (a brat file named press@v2.1) became a pseudonym in the
    export (hunt I, finding 1): only an e-mail annotator's address is replaced."""
    from spanbank.export.docs import exported_annotation_id, exported_annotator

    key = b"k" * 32
    assert exported_annotation_id("import-press@v2.1-alice-3034", "alice", key) == (
        "import-press@v2.1-alice-3034"
    )
    assert exported_annotator("alice", key) == "alice"
    assert exported_annotator("bob@x.org", key).startswith("ann-")


@pytest.mark.parametrize("status", [400, 404, 409])
def test_a_4xx_that_echoes_the_key_or_a_url_password_shows_neither(status):
    """The server's reason for a 4xx was shown verbatim: a key it quoted back, or the password
    of an ml-backend URL Label Studio's 400 quoted, reached the one-line error (hunt F, 1)."""
    from faultproxy import FaultProxy
    from spanbank.errors import LabelStudioError

    key = "0123456789abcdef0123456789abcdef01234567"
    with FaultProxy("http://127.0.0.1:9", plan=lambda m, p, n: f"echo:{status}") as proxy:
        client = LabelStudioClient(proxy.url, key)
        # a space in the password stopped the text rule (hunt I, finding 7)
        for password in (PASSWORD, "my secret"):
            with pytest.raises(LabelStudioError) as err:
                client.request(
                    "POST", "/api/ml", json_body={"url": f"http://ml:{password}@host:9090"}
                )
            message = str(err.value)
            assert f"({status}): " in message and "rejected Token ***" in message, message
            assert key not in message and password not in message, message
            assert "ml:" not in message and "secret" not in message, message


def test_a_personal_access_token_with_an_unreadable_expiry_is_one_line():
    """The SDK reads a PAT's `exp` while the client is built: a string or a huge number raised
    TypeError / OverflowError, a 58-line traceback (hunt F, 7)."""
    import base64
    import json as json_

    from spanbank.errors import AuthError

    for exp in ("soon", 1e300):
        payload = base64.urlsafe_b64encode(json_.dumps({"exp": exp}).encode()).decode().rstrip("=")
        token = f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl"
        with pytest.raises(AuthError, match="expiry cannot be read") as err:
            LabelStudioClient("http://127.0.0.1:9", token)
        assert payload not in str(err.value)


def test_a_host_no_name_server_holds_is_a_malformed_url_not_a_traceback():
    """`xn--.com` passed the check and every command died with idna's IDNAError (hunt I, 9)."""
    from spanbank.errors import LabelStudioError

    for url, why in (
        ("http://xn--a.example:8080", "Codepoint U+0080"),
        ("http://exa mple.com:8080", "no host is named 'exa%20mple.com'"),
        ("http://user:secret@xn--.com", "user name or password"),
    ):
        with pytest.raises(LabelStudioError, match="is malformed") as err:
            LabelStudioClient(url, "0" * 40)
        assert why in str(err.value) and "secret" not in str(err.value)
