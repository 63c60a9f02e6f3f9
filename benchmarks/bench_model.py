"""Train the span model on a corpus, score it and the rules on the same held-out articles.

Usage: python benchmarks/bench_model.py CORPUS OUT [--epochs N] [--seed S] [--width W --depth D]
       python benchmarks/bench_model.py CORPUS OUT --reuse   (score the model already in OUT)
Prints IoU >= 0.5 F1 per label and link type (quotes direct and indirect apart), train time
and prediction speed on one core, as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from spanbank import model
from spanbank.corpus.store import Corpus
from spanbank.preannotate import preannotate
from spanbank.tagger_eval import gold_items, score_items
from spanbank.train import EPOCHS

KEYS = ("QUOTE", "QUOTE:direct", "QUOTE:indirect", "SPEAKER", "CUE", "said_by", "cue")


def score(preds, held) -> dict:
    """IoU >= 0.5 P/R/F1 per key over the held-out items (article_id, text, spans, relations)."""
    per = score_items(preds, held)["overlap"]
    return {k: per[k] for k in KEYS if k in per}


def links_on_gold(held) -> dict:
    """Exact F1 of the link rules given the gold spans: the ceiling a better link scorer could lift."""
    preds = []
    for _, _, spans, _ in held:
        spans = [s for s in spans if s["label"] in ("QUOTE", "SPEAKER", "CUE")]
        preds.append({"spans": spans, "relations": model.link(spans)})
    per = score_items(preds, held)["exact"]
    return {k: round(per[k]["f1"], 3) for k in ("said_by", "cue") if k in per}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=model.WIDTH)
    ap.add_argument("--depth", type=int, default=model.DEPTH)
    ap.add_argument("--reuse", action="store_true", help="score the model in OUT, do not train")
    a = ap.parse_args()
    corpus = Corpus(a.corpus).frozen()
    items = gold_items(corpus)
    card = (
        model.load(a.out)[1]
        if a.reuse
        else model.train(
            items,
            a.out,
            ["QUOTE", "SPEAKER", "CUE"],
            seed=a.seed,
            epochs=a.epochs,
            progress=lambda e, n, losses: print(f"epoch {e}/{n} {losses}", flush=True),
            data={"corpus_commit": corpus.commit, "articles": len(items)},
            width=a.width,
            depth=a.depth,
        )
    )
    held_ids = set(card["heldout_articles"])
    held = [it for it in items if it[0] in held_ids]
    nlp, _ = model.load(a.out)
    texts = [it[1] for it in held]
    t0 = time.perf_counter()
    preds = model.predict(nlp, texts)
    secs = time.perf_counter() - t0
    t0 = time.perf_counter()
    rules = [preannotate(t) for t in texts]
    rule_secs = time.perf_counter() - t0
    f1 = {"model": score(preds, held), "rules": score(rules, held)}
    out = {
        "heldout_articles": len(held),
        "train_articles": card["train_articles"],
        "epochs": card["epochs"],
        "width": card.get("width", model.WIDTH),
        "depth": card.get("depth", model.DEPTH),
        "train_seconds": card["train_seconds"],
        "predict_articles_per_s": round(len(held) / secs, 1),
        "rules_articles_per_s": round(len(held) / rule_secs, 1),
        "f1": {k: {w: round(f1[w][k]["f1"], 3) for w in f1 if k in f1[w]} for k in KEYS},
        "link_rules_on_gold_spans": links_on_gold(held),
        "model": f1["model"],
        "rules": f1["rules"],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
