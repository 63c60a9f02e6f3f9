"""The corpus: typed Parquet tables (`store`, `tables`), which annotations count (`annotations`),
article reads (`articles`) and loading articles in (`ingest`, `brat`)."""

from spanbank.corpus.store import Corpus

__all__ = ["Corpus"]
