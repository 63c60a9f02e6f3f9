"""A worker refuses parts when its spanbank code or libraries differ from the driver's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import spanbank
from spanbank.errors import SpanbankError
from spanbank.fingerprint import CODE, LIBRARIES, check_same, code_digest, fingerprint


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "spanbank"
    shutil.copytree(Path(spanbank.__file__).parent, root, ignore=shutil.ignore_patterns("*.pyc"))
    return root


def test_the_digest_follows_modules_and_data_not_other_files(tree):
    before = code_digest(tree)
    assert before == code_digest(Path(spanbank.__file__).parent)  # a copy of the same files
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    (tree / ".preannotate.py.swp").write_bytes(b"an editor's")
    (tree / "notes.orig").write_text("not a module")
    assert code_digest(tree) == before
    lexicon = tree / "data" / "lexicons" / "en.txt"
    lexicon.write_text(lexicon.read_text() + "\n")
    assert code_digest(tree) != before
    lexicon.write_text(lexicon.read_text()[:-1])
    assert code_digest(tree) == before
    (tree / "export" / "jsonl.py").rename(tree / "export" / "jsonl2.py")  # same bytes, moved
    assert code_digest(tree) != before


def test_the_fingerprint_names_code_runtime_and_libraries():
    fp = fingerprint()
    assert fp[CODE] == code_digest(Path(spanbank.__file__).parent)
    assert set(LIBRARIES) <= fp.keys() and {"python", "unicode", "zlib"} <= fp.keys()
    import pyarrow
    import spacy

    assert fp["pyarrow"] == pyarrow.__version__ and fp["spacy"] == spacy.__version__


def test_a_different_fingerprint_is_refused_in_one_line():
    check_same(dict(fingerprint()))
    driver = dict(fingerprint()) | {"spacy": "3.0.0", "zlib": "9.9"}
    with pytest.raises(SpanbankError) as err:
        check_same(driver, "the Dask worker at tcp://10.0.0.7:4000")
    said = str(err.value)
    assert "\n" not in said and said.startswith("the Dask worker at tcp://10.0.0.7:4000 runs other")
    assert f"spacy {fingerprint()['spacy']} (driver: 3.0.0)" in said
    assert f"zlib {fingerprint()['zlib']} (driver: 9.9)" in said and CODE not in said
    with pytest.raises(SpanbankError, match=r"deltalake [0-9.]+ \(driver: none\)"):
        check_same(dict(fingerprint()) | {"deltalake": "none"})  # absent where the driver runs
