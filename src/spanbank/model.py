"""A spaCy span model (span_finder + spancat) trained from the corpus's gold, and its predictions."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from spanbank.errors import SpanbankError

CAND = "cand"  # doc.spans key of span_finder's candidates
KEY = "sc"  # doc.spans key of spancat's labelled spans
CARD = "card.json"
_QMARKS = "\"“”„«»'‘’"
_CUE_GAP = 150  # characters between a quote and its cue, at most
_SPEAKER_GAP = 60  # characters between a cue and its speaker, at most


class NotAModel(SpanbankError):
    """A directory that holds no spanbank model."""


def split_articles(ids: list[str], holdout: float, seed: int) -> tuple[set, set]:
    """(train ids, held-out ids): a seeded shuffle by article."""
    order = sorted(set(ids))
    random.Random(seed).shuffle(order)
    n = round(len(order) * holdout)
    return set(order[n:]), set(order[:n])


def _doc(nlp, text: str, spans: list[dict], labels: set, key: str):
    doc = nlp.make_doc(text)
    out = []
    for s in spans:
        if s["label"] not in labels:
            continue
        sp = doc.char_span(s["start"], s["end"], label=s["label"], alignment_mode="expand")
        if sp is not None:
            out.append(sp)
    doc.spans[key] = out
    return doc


def _example(nlp, text: str, spans: list[dict], labels: set, rng: random.Random):
    """A training Example; the predicted doc's candidates are the gold spans plus near misses,
    so spancat learns from the first step what span_finder learns alongside."""
    from spacy.training import Example

    ref = _doc(nlp, text, spans, labels, KEY)
    ref.spans[CAND] = list(ref.spans[KEY])
    pred = nlp.make_doc(text)
    n = len(pred)
    cands = {(s.start, s.end) for s in ref.spans[KEY]}
    for s, e in list(cands):
        for d in (-2, -1, 1, 2):
            if 0 <= s + d < e <= n:
                cands.add((s + d, e))
            if s < e + d <= n:
                cands.add((s, e + d))
    for _ in range(max(3, len(cands) // 2)):
        if n < 2:
            break
        s = rng.randrange(n - 1)
        cands.add((s, min(n, s + rng.randint(1, 12))))
    pred.spans[CAND] = [pred[s:e] for s, e in sorted(cands)]
    return Example(pred, ref)


def build_pipeline(lang: str, labels: list[str], width: int = 64, depth: int = 2):
    """A blank pipeline: span_finder proposes spans, spancat labels them (each its own tok2vec)."""
    import spacy

    nlp = spacy.blank(lang)
    t2v = {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "width": width,
        "depth": depth,
        "embed_size": 2000,
        "window_size": 1,
        "maxout_pieces": 3,
        "subword_features": True,
        "pretrained_vectors": None,
    }
    nlp.add_pipe(
        "span_finder",
        config={
            "spans_key": CAND,
            "max_length": None,
            "threshold": 0.3,
            "model": {
                "@architectures": "spacy.SpanFinder.v1",
                "tok2vec": t2v,
                "scorer": {"@layers": "spacy.LinearLogistic.v1", "nO": 2},
            },
        },
    )
    sc = nlp.add_pipe(
        "spancat",
        config={
            "spans_key": KEY,
            "threshold": 0.5,
            "suggester": {"@misc": "spacy.preset_spans_suggester.v1", "spans_key": CAND},
            "model": {
                "@architectures": "spacy.SpanCategorizer.v1",
                "tok2vec": t2v,
                "reducer": {"@layers": "spacy.mean_max_reducer.v1", "hidden_size": 128},
                "scorer": {"@layers": "spacy.LinearLogistic.v1"},
            },
        },
    )
    for lab in labels:
        sc.add_label(lab)
    return nlp


def train(
    items: list[tuple],
    out: Path,
    labels: list[str],
    lang: str = "en",
    seed: int = 0,
    holdout: float = 0.1,
    epochs: int = 10,
    progress=None,
) -> dict:
    """Train on items (article_id, text, spans, relations) outside the held-out split; save the
    pipeline and a model card in `out`; returns the card."""
    from spacy.util import fix_random_seed, minibatch

    if not items:
        raise SpanbankError("no gold to train on; pull or import annotations first")
    fix_random_seed(seed)
    rng = random.Random(seed)
    train_ids, held = split_articles([it[0] for it in items], holdout, seed)
    nlp = build_pipeline(lang, labels)
    lab = set(labels)
    exs = [_example(nlp, it[1], it[2], lab, rng) for it in items if it[0] in train_ids]
    t0 = time.perf_counter()
    opt = nlp.initialize(lambda: exs)
    for epoch in range(epochs):
        rng.shuffle(exs)
        losses: dict = {}
        for batch in minibatch(exs, size=8):
            nlp.update(batch, sgd=opt, losses=losses, drop=0.1)
        if progress:
            progress(epoch + 1, epochs, losses)
    seconds = time.perf_counter() - t0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(out / "pipeline")
    card = {
        "kind": "spanbank-spancat-1",
        "labels": labels,
        "lang": lang,
        "seed": seed,
        "epochs": epochs,
        "train_articles": len(train_ids),
        "heldout_articles": sorted(held),
        "train_seconds": round(seconds, 1),
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return card


def check(path: str | Path) -> Path:
    """`path` as a Path; NotAModel when it holds no model."""
    path = Path(path)
    if not (path / CARD).is_file() or not (path / "pipeline").is_dir():
        raise NotAModel(
            f"{path} is not a spanbank model (no {CARD}); train one with spanbank train"
        )
    return path


def load(path: str | Path):
    """(pipeline, card) from a model directory; NotAModel when it is not one."""
    import spacy

    path = check(path)
    return spacy.load(path / "pipeline"), json.loads((path / CARD).read_text())


def _gap(a: dict, b: dict) -> int:
    return max(0, max(a["start"], b["start"]) - min(a["end"], b["end"]))


def link(spans: list[dict]) -> list[dict]:
    """Rules over predicted spans: a quote's cue is the nearest CUE; its speaker the SPEAKER
    nearest that cue (or the quote, when it has no cue)."""
    cues = [s for s in spans if s["label"] == "CUE"]
    speakers = [s for s in spans if s["label"] == "SPEAKER"]
    rels = []
    for q in (s for s in spans if s["label"] == "QUOTE"):
        cue = min(cues, key=lambda c: _gap(q, c), default=None)
        if cue is not None and _gap(q, cue) > _CUE_GAP:
            cue = None
        anchor, limit = (cue, _SPEAKER_GAP) if cue else (q, _CUE_GAP)
        spk = min(speakers, key=lambda s: _gap(anchor, s), default=None)
        if spk is not None and _gap(anchor, spk) <= limit:
            rels.append(
                {"from_span_id": q["span_id"], "to_span_id": spk["span_id"], "label": "said_by"}
            )
        if cue is not None:
            rels.append(
                {"from_span_id": q["span_id"], "to_span_id": cue["span_id"], "label": "cue"}
            )
    return rels


def _result(doc) -> dict:
    spans = []
    scores = doc.spans[KEY].attrs.get("scores")
    for i, sp in enumerate(doc.spans[KEY]):
        s = {
            "span_id": f"m{i + 1}",
            "label": sp.label_,
            "start": sp.start_char,
            "end": sp.end_char,
            "text": sp.text,
            "score": float(scores[i]) if scores is not None else 1.0,
            "attributes": {},
            "fragments": None,
        }
        if sp.label_ == "QUOTE":
            s["attributes"] = {"type": "direct" if sp.text[:1] in _QMARKS else "indirect"}
        spans.append(s)
    spans = _suppress(spans)
    spans.sort(key=lambda s: (s["start"], s["end"], s["label"]))
    return {"spans": spans, "relations": link(spans)}


def _suppress(spans: list[dict]) -> list[dict]:
    """Per label, keep the best-scored of spans that overlap (spancat scores every candidate)."""
    kept: list[dict] = []
    for s in sorted(spans, key=lambda s: -s["score"]):
        if not any(
            k["label"] == s["label"]
            and _gap(k, s) == 0
            and k["start"] < s["end"]
            and s["start"] < k["end"]
            for k in kept
        ):
            kept.append(s)
    return kept


def predict(nlp, texts, batch_size: int = 32) -> list[dict]:
    """{spans, relations} per text, as the rule tagger returns them."""
    return [_result(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]


def uncertainty(result: dict) -> float:
    """Summed binary entropy of the span scores: high when the model hesitates often."""
    import math

    h = 0.0
    for s in result["spans"]:
        p = min(max(s["score"], 1e-6), 1 - 1e-6)
        h -= p * math.log(p) + (1 - p) * math.log(1 - p)
    return h


_LOADED: dict = {}


def tagger(model_dir: str | None):
    """text -> {spans, relations}: the rule tagger (None or "rules") or a model, loaded once per process."""
    if model_dir in (None, "rules"):
        from spanbank.preannotate import preannotate

        return preannotate
    if model_dir not in _LOADED:
        _LOADED[model_dir] = load(model_dir)[0]
    nlp = _LOADED[model_dir]
    return lambda text: predict(nlp, [text])[0]
