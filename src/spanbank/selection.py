"""Which not-yet-pushed articles go first: at random, oldest first, or where the model is least sure."""

from __future__ import annotations

import pandas as pd

from spanbank.errors import SpanbankError

MODES = ("random", "oldest", "uncertain")


def order_articles(
    corpus, fresh: pd.DataFrame, mode: str, seed: int, model_dir: str | None, eng=None
) -> pd.DataFrame:
    """`fresh` (rows with article_id) reordered by `mode`; uncertain needs a model directory and
    tags the articles in parts on `eng` (a spanbank.parallel.Engine; None: predict.tag_in_parts's)."""
    return rank_articles(corpus, fresh, mode, seed, model_dir, eng)[0]


def rank_articles(
    corpus,
    fresh: pd.DataFrame,
    mode: str,
    seed: int,
    model_dir: str | None,
    eng=None,
    keep: int | None = 0,
) -> tuple[pd.DataFrame, dict]:
    """order_articles, and for uncertain the model's tagging (article_id -> as tag_articles) of
    the first `keep` articles in that order (all when None): what push's predictions reuse."""
    if mode not in MODES:
        raise SpanbankError(f"--select {mode!r}: choose one of {', '.join(MODES)}")
    if len(fresh) == 0 or mode == "random":
        return fresh.sample(frac=1.0, random_state=seed), {}
    if mode == "oldest":
        meta = corpus.read("articles", columns=["article_id", "published_at"]).set_index(
            "article_id"
        )
        when = meta["published_at"].reindex(fresh["article_id"]).to_numpy()
        return fresh.iloc[pd.Series(when).argsort(kind="stable").to_numpy()], {}
    if model_dir is None:
        raise SpanbankError("--select uncertain needs --preannotate model:DIR (the model to ask)")
    from spanbank.corpus.articles import attach_rows
    from spanbank.predict import uncertain_first

    rows = attach_rows(corpus, fresh)
    langs = rows["language"].tolist() if "language" in rows else [None] * len(rows)
    order, kept = uncertain_first(rows["text"].tolist(), langs, model_dir, eng, keep)
    ids = fresh["article_id"].to_numpy()
    return fresh.iloc[order], {ids[pos]: tagged for pos, tagged in kept.items()}
