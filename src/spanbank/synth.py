"""Deterministic synthetic newsroom corpus: articles with quotes, speakers, cues, events and
several annotators' versions with controllable disagreement. For benchmarks and tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

SPEAKERS = [
    "Kremlin spokesperson Dmitry Peskov",
    "the prime minister",
    "Finance Minister Ana Lopes",
    "a senior EU official",
    "the company",
    "Dr. Zoë Müller",
    "police",
    "the mayor of Łódź",
    "UN Secretary-General António Guterres",
    "analysts",
    "Reuters",
    "the ministry",
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
EVENTS = [
    ("meeting", "contact"),
    ("phone call", "contact"),
    ("attack", "conflict"),
    ("election", "election"),
    ("trial", "legal"),
    ("flood", "disaster"),
    ("merger", "economic"),
]
FILLER = [
    "The announcement came after weeks of speculation in the capital.",
    "Officials have not released further details.",
    "The issue has divided the governing coalition for months.",
    "Markets reacted calmly to the news on Tuesday — for now.",
    "Critics say the plan does not go far enough.",
]
TITLES = [
    "Talks resume as leaders meet\n",
    "Ceasefire holds in the north — for now\n",
    "Łódź council approves budget after long night\n",
    "Markets rally as inflation eases 📉\n",
    "Minister resigns over procurement row\n",
    "Floods cut off villages in the south\n",
]
SOURCES = ["reuters", "ap", "afp", "bbc", "dpa", "efe"]
LABELS = ["SPEAKER", "QUOTE", "CUE", "EVENT"]
KINDS = 5  # paragraph kinds: direct quote, indirect quote, pronoun quote, event, filler


@dataclass
class Disagreement:
    """How annotators depart from the synthetic truth (probabilities per span)."""

    jitter: float = 0.15  # move a boundary by a few characters
    miss: float = 0.08  # leave the span out
    swap: float = 0.03  # give it another label


class _Builder:
    """One paragraph variant: its text, spans (label, start, end, attr) and relations."""

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


def _paragraphs(kind: int) -> Iterator[_Builder]:
    """Every paragraph variant of one kind (the cross product of its word lists)."""
    for content in CONTENT if kind in (0, 1, 2) else [None]:
        who = SPEAKERS if kind in (0, 1) else PRONOUNS if kind == 2 else [None]
        for spk in who:
            for cue in CUES if kind in (0, 1) else ["said"]:
                for ev, typ in EVENTS if kind == 3 else [(None, None)]:
                    for filler in FILLER:
                        b = _Builder()
                        if kind in (0, 2):  # “Direct,” speaker said. / “Direct.” he said.
                            q = b.add(
                                f"“{content[0].upper()}{content[1:]}{',' if kind == 0 else '.'}”",
                                "QUOTE",
                                "direct",
                            )
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
                        elif kind == 3:  # event sentence
                            b.add("The ")
                            b.add(ev, "EVENT", typ)
                            b.add(" in the capital drew attention. " + filler + "\n")
                            yield b
                            continue
                        else:
                            b.add(filler + "\n")
                            yield b
                            continue
                        b.relations.append((q, s, "said_by"))
                        b.relations.append((q, c, "cue"))
                        b.add(" " + filler + "\n")
                        yield b


@lru_cache(maxsize=1)
def _variants() -> dict:
    """All paragraph variants, flattened into arrays (CSR for their spans and relations)."""
    text, kind_off, kind_n = [], [], []
    sp_ptr, rel_ptr = [0], [0]
    sp_label, sp_start, sp_end, sp_attr, sp_text = [], [], [], [], []
    rel_from, rel_to, rel_label = [], [], []
    for kind in range(KINDS):
        kind_off.append(len(text))
        for b in _paragraphs(kind):
            t = b.text()
            text.append(t)
            for label, s, e, attr in b.spans:
                sp_label.append(LABELS.index(label))
                sp_start.append(s)
                sp_end.append(e)
                sp_attr.append(f'{{"type": "{attr}"}}' if attr else None)
                sp_text.append(t[s:e])
            for a, z, lab in b.relations:
                rel_from.append(a)
                rel_to.append(z)
                rel_label.append(lab)
            sp_ptr.append(len(sp_label))
            rel_ptr.append(len(rel_from))
        kind_n.append(len(text) - kind_off[-1])
    arr = np.asarray
    return {
        "text": np.array(text, dtype=object),
        "len": arr([len(t) for t in text]),
        "kind_off": arr(kind_off),
        "kind_n": arr(kind_n),
        "sp_ptr": arr(sp_ptr),
        "sp_label": arr(sp_label),
        "sp_start": arr(sp_start),
        "sp_end": arr(sp_end),
        "sp_attr": np.array(sp_attr, dtype=object),
        "sp_text": np.array(sp_text, dtype=object),
        "rel_ptr": arr(rel_ptr),
        "rel_from": arr(rel_from),
        "rel_to": arr(rel_to),
        "rel_label": np.array(rel_label, dtype=object),
    }


def _gather(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows -> (flat indices of their items, count per row)."""
    cnt = ptr[rows + 1] - ptr[rows]
    total = int(cnt.sum())
    first = np.repeat(ptr[rows], cnt)
    within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return first + within, cnt


_SPAN_IDS = np.array([f"s{j}" for j in range(512)], dtype=object)


def synth_chunks(
    n: int,
    seed: int = 0,
    annotators: int = 0,
    chunk: int = 10_000,
    disagreement: Disagreement | None = None,
    paragraphs: tuple[int, int] = (6, 12),
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Yield (articles, spans, relations) frames chunk by chunk, deterministic by seed and chunk.

    Articles are titles plus 6-11 paragraphs drawn from templates (direct and indirect quotes
    with speakers and cues, events, filler), with non-ASCII and astral characters in a share
    of them. With `annotators` = 0 the spans are the truth (annotator `truth`); with K > 0
    each article gets K annotators' versions (`ann1`..`annK`) derived from the truth by
    `disagreement` (boundary jitter, missed spans, label swaps). Span ids are unique per
    annotation; `annotation_id` is `<article>-<annotator>`. Vectorised per chunk: a million
    articles take well under a minute.
    """
    dis = disagreement or Disagreement()
    v = _variants()
    base = np.datetime64("2025-01-01T00:00:00", "us")
    labels = np.array(LABELS, dtype=object)
    who = [f"ann{k + 1}" for k in range(annotators)] or ["truth"]
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        rng = np.random.default_rng([seed, lo])
        npar = rng.integers(*paragraphs, size=m)
        title = rng.integers(len(TITLES), size=m)
        n_par = int(npar.sum())
        kind = rng.integers(KINDS, size=n_par)
        vid = v["kind_off"][kind] + (rng.random(n_par) * v["kind_n"][kind]).astype(np.int64)
        art_of_par = np.repeat(np.arange(m), npar)
        par_first = np.cumsum(npar) - npar  # index of each article's first paragraph
        title_len = np.array([len(t) for t in TITLES])[title]
        plen = v["len"][vid]
        csum = np.cumsum(plen) - plen
        par_off = csum - csum[par_first][art_of_par] + title_len[art_of_par]
        pieces = v["text"][vid].tolist()
        titles = [TITLES[t] for t in title.tolist()]
        bounds = np.append(par_first, n_par).tolist()
        texts = ["".join([titles[a], *pieces[bounds[a] : bounds[a + 1]]]) for a in range(m)]
        ids = np.array([f"syn{seed}-{i:07d}" for i in range(lo, hi)], dtype=object)
        articles = pd.DataFrame(
            {
                "article_id": ids,
                "text": texts,
                "source": np.array(SOURCES, dtype=object)[np.arange(lo, hi) % len(SOURCES)],
                "published_at": pd.to_datetime(
                    base + np.arange(lo, hi).astype("timedelta64[m]"), utc=True
                ),
                "title": [t[:-1] for t in titles],
            }
        )
        # truth spans, numbered per article in text order
        sidx, scnt = _gather(v["sp_ptr"], vid)
        s_par = np.repeat(np.arange(n_par), scnt)
        s_art = art_of_par[s_par]
        s_start = v["sp_start"][sidx] + par_off[s_par]
        s_end = v["sp_end"][sidx] + par_off[s_par]
        per_art = np.bincount(s_art, minlength=m)
        s_num = np.arange(len(sidx)) - np.repeat(np.cumsum(per_art) - per_art, per_art)
        par_span0 = np.cumsum(scnt) - scnt  # global index of each paragraph's first span
        ridx, rcnt = _gather(v["rel_ptr"], vid)
        r_par = np.repeat(np.arange(n_par), rcnt)
        r_from = par_span0[r_par] + v["rel_from"][ridx]  # global span indices
        r_to = par_span0[r_par] + v["rel_to"][ridx]
        span_frames, rel_frames = [], []
        for name in who:
            start, label, text = s_start, v["sp_label"][sidx], v["sp_text"][sidx]
            keep = np.ones(len(sidx), bool)
            if annotators:
                r = rng.random((len(sidx), 3))
                shift = rng.integers(-3, 4, size=len(sidx))
                keep = r[:, 0] >= dis.miss
                moved = r[:, 1] < dis.jitter
                start = np.where(
                    moved, np.minimum(np.maximum(0, s_start + shift), s_end - 1), s_start
                )
                label = np.where(r[:, 2] < dis.swap, (label + 1) % len(LABELS), label)
                changed = np.flatnonzero(start != s_start)
                if len(changed):
                    text = text.copy()
                    text[changed] = [
                        texts[a][s:e]
                        for a, s, e in zip(
                            s_art[changed].tolist(),
                            start[changed].tolist(),
                            s_end[changed].tolist(),
                            strict=True,
                        )
                    ]
            ann = np.char.add(ids.astype(str), f"-{name}").astype(object)
            k = np.flatnonzero(keep)
            span_frames.append(
                pd.DataFrame(
                    {
                        "annotation_id": ann[s_art[k]],
                        "span_id": _SPAN_IDS[s_num[k]],
                        "article_id": ids[s_art[k]],
                        "annotator": name,
                        "label": labels[label[k]],
                        "start": start[k],
                        "end": s_end[k],
                        "text": text[k],
                        "attributes": v["sp_attr"][sidx[k]],
                    }
                )
            )
            rk = np.flatnonzero(keep[r_from] & keep[r_to])
            rel_frames.append(
                pd.DataFrame(
                    {
                        "annotation_id": ann[s_art[r_from[rk]]],
                        "from_span_id": _SPAN_IDS[s_num[r_from[rk]]],
                        "to_span_id": _SPAN_IDS[s_num[r_to[rk]]],
                        "label": v["rel_label"][ridx[rk]],
                    }
                )
            )
        spans = pd.concat(span_frames, ignore_index=True)
        rels = pd.concat(rel_frames, ignore_index=True)
        if annotators > 1:  # one annotation's rows together, as a reader of the table expects
            spans = spans.sort_values(["article_id", "annotator"], kind="stable", ignore_index=True)
            rels = rels.sort_values("annotation_id", kind="stable", ignore_index=True)
        yield articles, spans, rels
