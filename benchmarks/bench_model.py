"""Train the span model on a corpus, score it and the rules on the same held-out articles.

Usage: python benchmarks/bench_model.py CORPUS OUT [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from spanbank import model
from spanbank.agreement.coefficients import prf
from spanbank.corpus.store import Corpus
from spanbank.preannotate import evaluate, preannotate
from spanbank.tagger_eval import gold_items

KEYS = ("QUOTE", "QUOTE:direct", "QUOTE:indirect", "SPEAKER", "CUE", "said_by", "cue")


def score(preds, held) -> dict:
    """IoU >= 0.5 P/R/F1 per key, summed over the held-out articles."""
    tot = defaultdict(lambda: [0, 0, 0])
    for p, (_, _, gs, gr) in zip(preds, held, strict=True):
        for k, v in evaluate(p["spans"], gs, p["relations"], gr)["overlap"].items():
            t = tot[k]
            t[0], t[1], t[2] = t[0] + v["tp"], t[1] + v["n_pred"], t[2] + v["n_gold"]
    return {k: prf(*tot[k]) for k in KEYS if k in tot}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    items = gold_items(Corpus(a.corpus))
    card = model.train(
        items,
        a.out,
        ["QUOTE", "SPEAKER", "CUE"],
        seed=a.seed,
        epochs=a.epochs,
        progress=lambda e, n, losses: print(f"epoch {e}/{n} {losses}", flush=True),
    )
    held_ids = set(card["heldout_articles"])
    held = [it for it in items if it[0] in held_ids]
    nlp, _ = model.load(a.out)
    texts = [it[1] for it in held]
    t0 = time.perf_counter()
    preds = model.predict(nlp, texts)
    secs = time.perf_counter() - t0
    rules = [preannotate(t) for t in texts]
    out = {
        "heldout_articles": len(held),
        "train_seconds": card["train_seconds"],
        "predict_articles_per_s": round(len(held) / secs, 1),
        "model": score(preds, held),
        "rules": score(rules, held),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
