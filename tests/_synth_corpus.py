"""A small synthetic corpus (spanbank.synth truth annotations) written through the store's API."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spanbank.corpus import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.synth import synth_chunks


def synth_corpus(path: Path, n: int, seed: int = 0) -> Corpus:
    corpus = Corpus.init(path)
    now = pd.Timestamp("2025-06-01", tz="UTC")
    with corpus.writer() as w:
        for arts, spans, rels in synth_chunks(n, seed, 0, chunk=max(n, 1)):
            ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates(
                "annotation_id"
            )
            ann = ann.assign(
                project="synth",
                origin="import",
                created_at=now,
                updated_at=now,
                version=1,
                cancelled=False,
                superseded=False,
            )
            tables = {
                "articles": arts.assign(language="en", origin="synth", ingested_at=now),
                "spans": spans.drop(columns="annotator"),
                "relations": rels,
                "annotations": ann,
            }
            for name, df in tables.items():  # children first, annotations last
                w.append(name, df.reindex(columns=TABLES[name].names))
    return corpus
