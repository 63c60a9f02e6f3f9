"""Deterministic synthetic newsroom corpus: articles with quotes, speakers, cues, events and
several annotators' versions with controllable disagreement. For benchmarks and tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

SPEAKERS = [
    "Kremlin spokesperson Dmitry Peskov", "the prime minister", "Finance Minister Ana Lopes",
    "a senior EU official", "the company", "Dr. Zoë Müller", "police", "the mayor of Łódź",
    "UN Secretary-General António Guterres", "analysts", "Reuters", "the ministry",
]
PRONOUNS = ["he", "she", "they"]
CUES = ["said", "told reporters", "added", "noted", "confirmed", "warned", "stressed", "explained"]
CONTENT = [
    "the talks had been constructive and would continue next week",
    "there was no evidence of wrongdoing by any of the officials involved",
    "prices would keep rising until the end of the year 📈",
    "the agreement was a first step toward a lasting ceasefire",
    "the decision would be reviewed by an independent panel",
    "nobody had been informed about the change in advance",
    "the city needed more money for schools and hospitals",
    "the results were better than expected despite the crisis",
]
EVENTS = [("meeting", "contact"), ("phone call", "contact"), ("attack", "conflict"),
          ("election", "election"), ("trial", "legal"), ("flood", "disaster"), ("merger", "economic")]
FILLER = [
    "The announcement came after weeks of speculation in the capital.",
    "Officials have not released further details.",
    "The issue has divided the governing coalition for months.",
    "Markets reacted calmly to the news on Tuesday — for now.",
    "Critics say the plan does not go far enough.",
]
SOURCES = ["reuters", "ap", "afp", "bbc", "dpa", "efe"]


@dataclass
class Disagreement:
    """How annotators depart from the synthetic truth (probabilities per span)."""

    jitter: float = 0.15  # move a boundary by a few characters
    miss: float = 0.08  # leave the span out
    swap: float = 0.03  # give it another label


class _Builder:
    def __init__(self):
        self.parts: list[str] = []
        self.pos = 0
        self.spans: list[tuple[str, int, int, str | None]] = []
        self.relations: list[tuple[int, int, str]] = []

    def add(self, s: str, label: str | None = None, attr: str | None = None) -> int:
        idx = -1
        if label:
            self.spans.append((label, self.pos, self.pos + len(s), attr))
            idx = len(self.spans) - 1
        self.parts.append(s)
        self.pos += len(s)
        return idx

    def text(self) -> str:
        return "".join(self.parts)


def _article(rng: np.random.Generator, paragraphs: int) -> _Builder:
    b = _Builder()
    b.add("Talks resume as leaders meet\n")
    for _ in range(paragraphs):
        kind = rng.integers(0, 5)
        spk = SPEAKERS[rng.integers(len(SPEAKERS))]
        cue = CUES[rng.integers(len(CUES))]
        content = CONTENT[rng.integers(len(CONTENT))]
        if kind == 0:  # “Direct,” speaker said.
            q = b.add(f"“{content[0].upper()}{content[1:]},”", "QUOTE", "direct")
            b.add(" ")
            s = b.add(spk, "SPEAKER")
            b.add(" ")
            c = b.add(cue, "CUE")
            b.add(".")
        elif kind == 1:  # Speaker said that content.
            s = b.add(spk[0].upper() + spk[1:], "SPEAKER")
            b.add(" ")
            c = b.add(cue, "CUE")
            b.add(" that ")
            q = b.add(content, "QUOTE", "indirect")
            b.add(".")
        elif kind == 2:  # “Direct,” he said.
            q = b.add(f"“{content[0].upper()}{content[1:]}.”", "QUOTE", "direct")
            b.add(" ")
            s = b.add(PRONOUNS[rng.integers(3)], "SPEAKER")
            b.add(" ")
            c = b.add("said", "CUE")
            b.add(".")
        elif kind == 3:  # event sentence
            ev, typ = EVENTS[rng.integers(len(EVENTS))]
            b.add("The ")
            b.add(ev, "EVENT", typ)
            filler = FILLER[rng.integers(len(FILLER))]
            b.add(" in the capital drew attention. " + filler)
            b.add("\n")
            continue
        else:
            b.add(FILLER[rng.integers(len(FILLER))] + "\n")
            continue
        b.relations.append((q, s, "said_by"))
        b.relations.append((q, c, "cue"))
        b.add(" " + FILLER[rng.integers(len(FILLER))] + "\n")
    return b


def synth_chunks(
    n: int, seed: int = 0, annotators: int = 0, chunk: int = 10_000,
    disagreement: Disagreement | None = None, paragraphs: tuple[int, int] = (6, 12),
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Yield (articles, spans, relations) frames chunk by chunk, deterministic by seed.

    With `annotators` = 0 the spans are the truth (annotator `truth`); with K > 0 each article
    gets K annotators' versions (`ann1`..`annK`) derived from the truth by `disagreement`.
    Span ids are unique per annotation; `annotation_id` is `<article>-<annotator>`.
    """
    dis = disagreement or Disagreement()
    labels = ["SPEAKER", "QUOTE", "CUE", "EVENT"]
    base = pd.Timestamp("2025-01-01", tz="UTC")
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        rng = np.random.default_rng([seed, lo])
        arts, spans, rels = [], [], []
        who = [f"ann{k + 1}" for k in range(annotators)] or ["truth"]
        for i in range(lo, hi):
            b = _article(rng, int(rng.integers(*paragraphs)))
            text = b.text()
            aid = f"syn{seed}-{i:07d}"
            arts.append((aid, text, SOURCES[i % len(SOURCES)], base + pd.Timedelta(minutes=i)))
            for name in who:
                ann = f"{aid}-{name}"
                kept = {}
                for j, (label, s, e, attr) in enumerate(b.spans):
                    if annotators:
                        r = rng.random(3)
                        if r[0] < dis.miss:
                            continue
                        if r[1] < dis.jitter:
                            s = int(min(max(0, s + rng.integers(-3, 4)), e - 1))
                        if r[2] < dis.swap:
                            label = labels[(labels.index(label) + 1) % 4]
                    kept[j] = f"s{j}"
                    spans.append((ann, f"s{j}", aid, name, label, s, e, text[s:e],
                                  f'{{"type": "{attr}"}}' if attr else None))
                rels += [(ann, kept[a], kept[t], lab) for a, t, lab in b.relations if a in kept and t in kept]
        articles = pd.DataFrame(arts, columns=["article_id", "text", "source", "published_at"])
        articles["title"] = articles["text"].str.split("\n", n=1).str[0]
        yield (
            articles,
            pd.DataFrame(spans, columns=["annotation_id", "span_id", "article_id", "annotator", "label",
                                         "start", "end", "text", "attributes"]),
            pd.DataFrame(rels, columns=["annotation_id", "from_span_id", "to_span_id", "label"]),
        )


def synth_articles(n: int, seed: int = 0) -> pd.DataFrame:
    """Just the articles of a synthetic corpus, as one frame."""
    return pd.concat([a for a, _, _ in synth_chunks(n, seed)], ignore_index=True)
