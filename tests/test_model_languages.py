"""`train` on a language spaCy has no class for (hunt G, finding 13): it stopped with a 58-line
ImportError traceback (E048); the model now uses spaCy's multi-language `xx` pipeline and says so."""

import pytest
import spacy

from spanbank import model
from spanbank.predict import model_language
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus


@pytest.mark.parametrize("lang", ["sw", "und"])
def test_a_language_spacy_lacks_trains_on_the_multi_language_pipeline(tmp_path, lang):
    items = gold_items(_seed_corpus(tmp_path))
    card = model.train(items, tmp_path / "m", ["QUOTE"], lang=lang, holdout=0, epochs=1, width=8)
    assert (card["lang"], card["pipeline_lang"]) == (lang, "xx")
    nlp, found = model.load(tmp_path / "m")
    assert nlp.lang == "xx" and found["pipeline_lang"] == "xx"
    assert model_language(str(tmp_path / "m")) == lang  # it tags articles in `lang`
    assert len(model.predict(nlp, [items[0][1]])) == 1
    assert (
        model.train(items, tmp_path / "e", ["QUOTE"], holdout=0, epochs=1, width=8)["pipeline_lang"]
        == "en"
    )


def test_a_language_whose_tokenizer_lacks_a_package_is_a_one_line_error(tmp_path):
    try:
        spacy.blank("ja")
    except ImportError:
        pass
    else:
        pytest.skip("SudachiPy is installed here")
    items = gold_items(_seed_corpus(tmp_path))
    with pytest.raises(
        model.SpanbankError,
        match=r"^spaCy's tokenizer for language 'ja' needs a "
        r"package that is not installed: Japanese support requires SudachiPy[^\n]*$",
    ):
        model.train(items, tmp_path / "m", ["QUOTE"], lang="ja", holdout=0, epochs=1)
    assert not (tmp_path / "m").exists()
