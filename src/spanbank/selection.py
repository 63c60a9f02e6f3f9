"""Which not-yet-pushed articles go first: at random, oldest first, or where the model is least sure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spanbank.errors import SpanbankError

MODES = ("random", "oldest", "uncertain")


def order_articles(
    corpus, fresh: pd.DataFrame, mode: str, seed: int, model_dir: str | None, eng=None
) -> pd.DataFrame:
    """`fresh` (rows with article_id) reordered by `mode`; uncertain needs a model directory and
    tags the articles in parts on `eng` (a spanbank.parallel.Engine; None: predict.tag_in_parts's)."""
    if mode not in MODES:
        raise SpanbankError(f"--select {mode!r}: choose one of {', '.join(MODES)}")
    if len(fresh) == 0 or mode == "random":
        return fresh.sample(frac=1.0, random_state=seed)
    if mode == "oldest":
        meta = corpus.read("articles", columns=["article_id", "published_at"]).set_index(
            "article_id"
        )
        when = meta["published_at"].reindex(fresh["article_id"]).to_numpy()
        return fresh.iloc[pd.Series(when).argsort(kind="stable").to_numpy()]
    if model_dir is None:
        raise SpanbankError("--select uncertain needs --preannotate model:DIR (the model to ask)")
    from spanbank.corpus.articles import attach_rows
    from spanbank.predict import uncertainties

    rows = attach_rows(corpus, fresh)
    langs = rows["language"].tolist() if "language" in rows else [None] * len(rows)
    # articles in another language than the model's score -1: they go last
    scores = np.array(uncertainties(rows["text"].tolist(), langs, model_dir, eng))
    return fresh.iloc[np.argsort(-scores, kind="stable")]
