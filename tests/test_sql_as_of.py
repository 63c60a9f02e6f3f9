"""`spanbank sql --as-of N` reads the corpus as commit N left it: its `commits` and `pins` views
end at N too, and a version a vacuum removed is the one-line error the other commands give."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.corpus.maintenance import compact, pin


def _sql(corpus: Corpus, statement: str, *args):
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "sql", statement, *args])
    return res.exit_code, res.output


def _three_commits(path) -> Corpus:
    corpus = Corpus.init(path)
    for i in (1, 2, 3):
        with corpus.writer() as w:
            w.append("articles", article_rows({f"a{i}": f"Text {i}."}))
    return corpus


def test_commits_and_pins_end_at_the_as_of_commit(tmp_path):
    """Before, `commits` was the whole log (max(commit) 3 at --as-of 1) and `pins` was empty."""
    corpus = _three_commits(tmp_path / "c")
    pin(corpus, 1, "export")
    pin(corpus, 3, "export")
    q = "select (select max(commit) from commits) as newest, (select list(commit order by commit) from pins) as p"
    for as_of, newest, pins in ((1, 1, [1]), (2, 2, [1]), (3, 3, [1, 3])):
        code, out = _sql(corpus, q, "--json", "--as-of", as_of)
        assert code == 0, out
        assert json.loads(out) == [{"newest": newest, "p": pins}], as_of
    code, out = _sql(corpus, q, "--json")
    assert json.loads(out) == [{"newest": 3, "p": [1, 3]}]
    code, out = _sql(corpus, "select count(*) as n from articles", "--json", "--as-of", 2)
    assert json.loads(out) == [{"n": 2}]


def test_a_vacuumed_version_is_a_one_line_error(tmp_path):
    """Before, `sql --as-of` of it printed only a file name: `Error: /.../0000...parquet`."""
    corpus = _three_commits(tmp_path / "c")
    compact(corpus, vacuum=True, keep_days=0)
    code, out = _sql(corpus, "select count(*) from articles", "--as-of", 1)
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1, out
    assert lines[0].startswith(f"Error: {corpus.path / 'articles'}: a data file is not readable (")
