"""`preannotate --out` under a path whose folder is a file (hunt G, finding 12f): the error
was "File exists: afile"; it now names the file that stands where a folder should be."""

from click.testing import CliRunner

from spanbank.cli import cli
from test_tagger_eval import _seed_corpus


def test_out_under_a_file_names_it(tmp_path):
    corpus = _seed_corpus(tmp_path)
    (tmp_path / "afile").write_text("x\n")
    for out in (tmp_path / "afile" / "p.parquet", tmp_path / "afile" / "sub" / "p.jsonl"):
        res = CliRunner().invoke(
            cli, ["--corpus", str(corpus.path), "preannotate", "--out", str(out)]
        )
        assert (res.exit_code, res.output) == (
            1,
            f"Error: --out {out}: {tmp_path / 'afile'} is a file, not a folder\n",
        )
    assert (tmp_path / "afile").read_text() == "x\n"
