"""How good the rule-based pre-annotator is on the corpus's own gold (or any annotator's work)."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

from spanbank.agreement.coefficients import prf
from spanbank.corpus.articles import texts_of
from spanbank.corpus.store import Corpus
from spanbank.errors import SpanbankError
from spanbank.gold import gold_rows
from spanbank.parallel import engine
from spanbank.preannotate import MODES, TAGGER_VERSION, evaluate
from spanbank.schema import parse_attributes

BATCH = 200  # articles per part sent to a worker


def typed_quotes(text: str, spans: list[dict]) -> list[dict]:
    """Spans whose QUOTEs all carry a type: one without gets it from its text (quote marks)."""
    from spanbank.model import quote_type

    out = []
    for s in spans:
        attrs = s.get("attributes") or {}
        if s["label"] == "QUOTE" and not attrs.get("type"):
            s = {**s, "attributes": {**attrs, "type": quote_type(text[s["start"] : s["end"]])}}
        out.append(s)
    return out


def by_span(spans: list[dict], relations: list[dict]) -> tuple[list[dict], list[dict]]:
    """One annotation's spans keyed by the span itself (label, fragments), with ids of their own,
    and its relations renamed to match: `evaluate` keys spans by span_id, so two spans sharing an
    id (a brat file repeating a T id) counted once. A span given twice is one span; a relation
    naming a shared id is kept for every span of that id."""
    from spanbank.spans import fragment_list

    new_id: dict[tuple, str] = {}
    named: dict = defaultdict(list)  # old id -> the new ids of the spans it names
    out = []
    for s in spans:
        frags = tuple(fragment_list(s["start"], s["end"], s.get("fragments")))
        key = (s["label"], frags)
        if key not in new_id:
            new_id[key] = f"s{len(new_id)}"
            out.append({**s, "span_id": new_id[key]})
        old = s.get("span_id", s.get("id"))
        if new_id[key] not in named[old]:
            named[old].append(new_id[key])
    rels = []
    for r in relations:
        a, b = r.get("from_span_id", r.get("from")), r.get("to_span_id", r.get("to"))
        for x in named.get(a) or [a]:
            for y in named.get(b) or [b]:
                rels.append({"from_span_id": x, "to_span_id": y, "label": r["label"]})
    return out, rels


def count_part(preds: list[dict], part: list[tuple]) -> dict:
    """tp / predicted / gold per mode and key, summed over (text, gold spans, gold relations)."""
    totals: dict = {mode: {} for mode in MODES}
    for pred, (text, gold_spans, gold_rels) in zip(preds, part, strict=True):
        pred_spans, pred_rels = by_span(pred["spans"], pred["relations"])
        gold_spans, gold_rels = by_span(gold_spans, gold_rels)
        res = evaluate(
            typed_quotes(text, pred_spans),
            typed_quotes(text, gold_spans),
            pred_rels,
            gold_rels,
        )
        for mode, per in res.items():
            for key, v in per.items():
                t = totals[mode].setdefault(key, [0, 0, 0])
                t[0] += v["tp"]
                t[1] += v["n_pred"]
                t[2] += v["n_gold"]
    return totals


def score_items(preds: list[dict], items: list[tuple]) -> dict:
    """P/R/F1 per mode and key of predictions against items (article_id, text, spans, relations)."""
    totals = count_part(preds, [it[1:] for it in items])
    return {mode: {key: prf(*t) for key, t in sorted(per.items())} for mode, per in totals.items()}


def _score_part(part: list[tuple], model_dir: str | None = None) -> dict:
    """Tag each (text, gold spans, gold relations, language) and count it against its gold; an
    article the tagger has no rules (or model) for counts with no predictions."""
    from spanbank.predict import tag_articles

    tagged = tag_articles([it[0] for it in part], [it[3] for it in part], model_dir)
    return count_part([t for t, _ in tagged], [it[:3] for it in part])


def gold_items(corpus: Corpus, gold: str = "auto", project: str | None = None) -> list[tuple]:
    """Every gold article as (article_id, text, gold spans, gold relations), in table order."""
    rows = gold_rows(corpus, gold=gold, project=project)
    chosen = rows.annotations
    if chosen.empty:
        raise SpanbankError(
            "no annotated article to evaluate against; pull or import annotations first"
        )
    spans, rels = rows.spans.to_pandas(), rows.relations.to_pandas()
    arts = texts_of(corpus, chosen["article_id"])
    missing = sorted(set(chosen["article_id"]) - set(arts))
    if missing:
        raise SpanbankError(
            f"annotated article(s) {', '.join(missing[:5])} are not in the articles table; "
            "ingest them first"
        )
    spans_by = {k: g for k, g in spans.groupby("annotation_id")}
    rels_by = {k: g for k, g in rels.groupby("annotation_id")}
    items = []
    for ann_id, article_id in zip(chosen["annotation_id"], chosen["article_id"], strict=True):
        g = spans_by.get(ann_id)
        gold_spans = (
            []
            if g is None
            else [
                {
                    "span_id": r.span_id,
                    "label": r.label,
                    "start": int(r.start),
                    "end": int(r.end),
                    "attributes": parse_attributes(r.attributes),
                    "fragments": getattr(r, "fragments", None),
                }
                for r in g.itertuples()
            ]
        )
        r = rels_by.get(ann_id)
        gold_rels = (
            []
            if r is None
            else [
                {"from_span_id": x.from_span_id, "to_span_id": x.to_span_id, "label": x.label}
                for x in r.itertuples()
            ]
        )
        items.append((article_id, arts[article_id], gold_spans, gold_rels))
    return items


def evaluate_tagger(
    corpus: Corpus,
    project: str | None = None,
    gold: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    model_dir: str | None = None,
    heldout_only: bool = True,
) -> dict:
    """Exact and overlap P/R/F1 per label and per relation, summed over every article with gold;
    the articles are tagged and scored on the engine, in parts of BATCH. A model is scored on
    its held-out articles in its language, as its card's heldout_scores are: the others are
    named in "left_out" with the reason."""
    items = gold_items(corpus, gold, project)
    langs = corpus.read("articles", columns=["article_id", "language"])
    lang_of = dict(zip(langs["article_id"], langs["language"], strict=True))
    left_out: dict = {}
    if model_dir not in (None, "rules"):
        items, left_out = _model_items(items, lang_of, model_dir, heldout_only)
    items = [(*it[1:], lang_of.get(it[0])) for it in items]
    chosen = items
    totals: dict = {mode: defaultdict(lambda: [0, 0, 0]) for mode in MODES}
    parts = (items[i : i + BATCH] for i in range(0, len(items), BATCH))
    from spanbank.predict import for_workers

    with engine(workers, scheduler) as eng:
        score = functools.partial(_score_part, model_dir=for_workers(model_dir))
        for part in eng.map(score, parts, total=-(-len(items) // BATCH)):
            for mode, per in part.items():
                for key, (tp, n_pred, n_gold) in per.items():
                    t = totals[mode][key]
                    t[0] += tp
                    t[1] += n_pred
                    t[2] += n_gold

    out = {
        "tagger": TAGGER_VERSION if model_dir in (None, "rules") else f"model:{model_dir}",
        "gold": gold,
        "articles": len(chosen),
        **({"left_out": left_out} if model_dir not in (None, "rules") else {}),
        **{mode: {} for mode in MODES},
    }
    for mode, per in totals.items():
        for key, (tp, n_pred, n_gold) in sorted(per.items()):
            out[mode][key] = prf(tp, n_pred, n_gold)
    return out


def _model_items(
    items: list[tuple], lang_of: dict, model_dir: str, heldout_only: bool
) -> tuple[list[tuple], dict]:
    """The gold items a model is scored on (its held-out ones when `heldout_only`), less those in
    a language it does not tag, and {article_id: why} for those; an error when none is left."""
    from spanbank.model import card, heldout_left_out

    found = card(Path(model_dir))
    model_lang = found.get("lang")
    if heldout_only:
        held = found.get("heldout_articles") or []
        if not held:
            raise SpanbankError(
                f"model {model_dir} has no held-out articles (trained with --holdout 0): "
                "nothing to score it on"
            )
        ids = set(held)
        items = [it for it in items if it[0] in ids]
        if not items:
            raise SpanbankError(
                f"none of model {model_dir}'s {len(held)} held-out article(s) has gold in "
                "this corpus: nothing to score it on"
            )
    left_out = heldout_left_out([it[0] for it in items], lang_of, model_lang)
    items = [it for it in items if it[0] not in left_out]
    if not items and left_out:
        raise SpanbankError(
            f"every article model {model_dir} would be scored on is left out "
            f"({sorted(set(left_out.values()))[0]}): nothing to score it on"
        )
    return items, left_out
