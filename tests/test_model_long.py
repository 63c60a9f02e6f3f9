"""Articles longer than spaCy's nlp.max_length (hunt G, finding 3): `train`, `preannotate
--model` and ml-backend stopped with spaCy's E088 traceback on a 1,050,088-character article.
The limit (1M characters) is lowered here so the texts stay small."""

from spanbank import model
from spanbank.tagger_eval import gold_items
from test_tagger_eval import _seed_corpus


def test_texts_over_max_length_train_and_predict_as_any_other(tmp_path, monkeypatch):
    items = gold_items(_seed_corpus(tmp_path))
    text = items[0][1]
    real = model.build_pipeline

    def short(*args, **kwargs):  # a pipeline whose max_length the seed article exceeds
        nlp = real(*args, **kwargs)
        nlp.max_length = len(text) // 3
        return nlp

    monkeypatch.setattr(model, "build_pipeline", short)
    card = model.train(items, tmp_path / "m", ["QUOTE", "CUE"], holdout=0, epochs=1, width=8)
    monkeypatch.undo()
    assert card["train_articles"] == 1
    nlp, _ = model.load(tmp_path / "m")
    want = model.predict(nlp, [text])
    nlp.max_length = len(text) // 3
    assert model.predict(nlp, [text, text[:50]]) == [*want, *model.predict(nlp, [text[:50]])]
