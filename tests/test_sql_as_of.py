"""`spanbank sql --as-of N` reads the corpus as commit N left it: a version a vacuum removed is
the one-line error the other commands give."""

from __future__ import annotations

from click.testing import CliRunner

from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.corpus.maintenance import compact


def _sql(corpus: Corpus, statement: str, *args):
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "sql", statement, *args])
    return res.exit_code, res.output


def _three_commits(path) -> Corpus:
    corpus = Corpus.init(path)
    for i in (1, 2, 3):
        with corpus.writer() as w:
            w.append("articles", article_rows({f"a{i}": f"Text {i}."}))
    return corpus


def test_a_vacuumed_version_is_a_one_line_error(tmp_path):
    """Before, `sql --as-of` of it printed only a file name: `Error: /.../0000...parquet`."""
    corpus = _three_commits(tmp_path / "c")
    compact(corpus, vacuum=True, keep_days=0)
    code, out = _sql(corpus, "select count(*) from articles", "--as-of", 1)
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1, out
    assert lines[0].startswith(f"Error: {corpus.path / 'articles'}: a data file is not readable (")
