"""Find and repair what server restarts left in a corpus: one Label Studio annotation stored twice.

Before servers had a stable identity, a server that came back on another port looked new, and
a pull stored every annotation again under a second server tag (and a second pseudonym).
Copies are found from the annotations alone: the same project, article, Label Studio
annotation id and creation stamp (to the microsecond) under two tags. `--fix` marks all but
one copy superseded; nothing is deleted.
"""

from __future__ import annotations

import pandas as pd

from spanbank.corpus import Corpus
from spanbank.labelstudio.identity import server_records

KEY = ["project", "article_id", "ls_annotation_id", "created_at", "origin"]
SHOW = [
    "annotation_id",
    "kept",
    "project",
    "article_id",
    "annotator",
    "kept_annotator",
    "ls_url",
    "pulled_at",
]


def _tags(annotation_ids: pd.Series) -> pd.Series:
    """The server tag inside pulled annotation ids (`ls-<tag>-...`); NaN for others."""
    return annotation_ids.astype("string").str.extract(r"^ls-([0-9a-f]+)-\d+-\d+-v\d+$")[0]


def find_duplicates(corpus: Corpus, ann: pd.DataFrame | None = None) -> pd.DataFrame:
    """Current (not superseded) copies of one Label Studio annotation under more than one server tag.

    One row per copy to supersede (columns `SHOW`): `kept` is the copy that stays, the one at
    a server the corpus knows now (else the latest pulled), and with it its pseudonym.
    """
    ann = corpus.read("annotations") if ann is None else ann
    current = ann[~ann["superseded"].fillna(False).astype(bool)].copy()
    current["_tag"] = _tags(current["annotation_id"])
    current = current.dropna(subset=["_tag", "ls_annotation_id", "created_at"])
    if current.empty:
        return pd.DataFrame(columns=SHOW)
    spread = current.groupby(KEY, dropna=False)["_tag"].transform("nunique")
    dup = current[spread > 1].copy()
    if dup.empty:
        return pd.DataFrame(columns=SHOW)
    urls = set(server_records(corpus)["ls_url"].dropna())
    dup["ls_url"] = dup["ls_url"] if "ls_url" in dup else None
    dup["_known"] = dup["ls_url"].isin(urls)
    dup = dup.sort_values(["_known", "pulled_at"], ascending=False, kind="stable")
    first = dup.groupby(KEY, dropna=False)[["annotation_id", "annotator"]].transform("first")
    dup["kept"], dup["kept_annotator"] = first["annotation_id"], first["annotator"]
    copies = dup[dup["annotation_id"] != dup["kept"]]
    return (
        copies[SHOW].sort_values(["project", "article_id", "annotation_id"]).reset_index(drop=True)
    )


def doctor(corpus: Corpus, fix: bool = False, wait: bool | float = False) -> dict:
    """What `spanbank doctor` reports: duplicate annotations (superseded when `fix`), and the
    pseudonyms the copies show to be one person."""
    corpus.require()
    if not fix:
        copies = find_duplicates(corpus)
    else:
        with corpus.writer(wait) as writer:
            ann = corpus.read("annotations")
            copies = find_duplicates(corpus, ann)
            if len(copies):
                hit = ann["annotation_id"].isin(set(copies["annotation_id"]))
                writer.upsert("annotations", ann[hit].assign(superseded=True), "annotation_id")
    same = copies.dropna(subset=["annotator", "kept_annotator"])
    same = same[same["annotator"] != same["kept_annotator"]]
    pairs = sorted(set(zip(same["annotator"], same["kept_annotator"], strict=True)))
    return {
        "duplicates": len(copies),
        "superseded": len(copies) if fix else 0,
        "copies": copies.assign(pulled_at=copies["pulled_at"].astype(str)).to_dict("records"),
        "same_annotator": [{"copy": a, "kept": b} for a, b in pairs],
    }
