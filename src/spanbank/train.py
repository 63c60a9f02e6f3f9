"""`spanbank train`: choose the training articles and labels from a corpus, then train a model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from spanbank import model
from spanbank.corpus.store import Corpus
from spanbank.errors import SpanbankError
from spanbank.preannotate import language_code
from spanbank.progress import Event
from spanbank.tagger_eval import gold_items

DEFAULT_LABELS = ("QUOTE", "SPEAKER", "CUE")
EPOCHS = 8


def train_from_corpus(
    corpus: Corpus,
    out: str | Path,
    labels: list[str] | None = None,
    gold: str = "auto",
    seed: int = 0,
    holdout: float = 0.1,
    epochs: int = EPOCHS,
    progress=None,
    **shape,
) -> dict:
    """Train on the gold layer (else `gold`, an annotator or import layer); returns the card.
    `shape`: the CNN's width and depth (model.train's defaults otherwise)."""
    corpus = corpus.frozen()  # one state to learn from, named by its commit in the card
    known = set(corpus.schema.labels)
    asked = labels is not None
    labels = list(dict.fromkeys(labels)) if asked else [x for x in DEFAULT_LABELS if x in known]
    if any(not x.strip() for x in labels):
        raise SpanbankError("labels: an empty label; name labels separated by commas")
    bad = [x for x in labels if x not in known]
    if bad:
        raise SpanbankError(
            f"labels not in the schema: {', '.join(bad)} (known: {', '.join(sorted(known))})"
        )
    items = gold_items(corpus, gold)
    labels = _learnable(labels, items, asked)
    arts = corpus.read("articles", columns=["article_id", "language"])
    gold_ids = {it[0] for it in items}
    lang_of = {
        aid: lang
        for aid, lang in zip(arts["article_id"], arts["language"], strict=True)
        if aid in gold_ids
    }
    langs = Counter(language_code(lang) for lang in lang_of.values())
    lang = langs.most_common(1)[0][0] if langs else "en"

    def tick(epoch, total, losses):
        if progress:
            progress(Event("train", epoch, total))

    card = model.train(
        items,
        Path(out),
        labels,
        lang=lang,
        seed=seed,
        holdout=holdout,
        epochs=epochs,
        progress=tick,
        data={"corpus_commit": corpus.commit, "gold": gold, "articles": len(items)},
        languages=lang_of,
        **shape,
    )
    return card


def _learnable(labels: list[str], items: list[tuple], asked: bool) -> list[str]:
    """The labels the gold has spans of: a label asked for by name with none is an error (a model
    of it learns nothing, and trained silently); a default label with none is left out."""
    have = {s["label"] for it in items for s in it[2]}
    none = [x for x in labels if x not in have]
    if none and asked:
        raise SpanbankError(
            f"the gold has no span labelled {', '.join(none)}: nothing to learn; "
            "leave it out of --labels"
        )
    kept = [x for x in labels if x in have]
    if not kept:
        raise SpanbankError(
            f"the gold has no span labelled {', '.join(labels)}: nothing to learn; "
            "name labels it has with --labels"
        )
    return kept
