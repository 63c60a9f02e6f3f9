"""Simulate active learning on a corpus's gold: grow the training set by uncertainty vs at random.

Usage: python scripts/learning_curve.py CORPUS [--seed-size 80 --step 80 --rounds 3 --epochs 6]
Both strategies start from the same random seed set and are scored on the same held-out
articles (bench_model.py's split). Writes docs/learning_curve.png and prints the points as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_model import score  # noqa: E402

from spanbank import model  # noqa: E402
from spanbank.corpus.store import Corpus  # noqa: E402
from spanbank.tagger_eval import gold_items  # noqa: E402

LABELS = ["QUOTE", "SPEAKER", "CUE"]
SHOWN = ("QUOTE", "SPEAKER", "CUE", "said_by")


def run(items, test, strategy, a, tmp) -> list[dict]:
    """Train on a growing set chosen by `strategy`; one point per round."""
    pool = list(items)
    random.Random(a.seed).shuffle(pool)
    chosen, pool = pool[: a.seed_size], pool[a.seed_size :]
    points = []
    for r in range(a.rounds + 1):
        out = Path(tmp) / f"{strategy}{r}"
        model.train(chosen, out, LABELS, seed=a.seed, holdout=0, epochs=a.epochs)
        nlp, _ = model.load(out)
        f1 = score(model.predict(nlp, [t[1] for t in test]), test)
        point = {
            "articles": len(chosen),
            "characters": sum(len(t[1]) for t in chosen),
            **{k: round(f1[k]["f1"], 3) for k in SHOWN if k in f1},
        }
        points.append(point)
        print(strategy, json.dumps(point), flush=True)
        if r == a.rounds:
            break
        if strategy == "uncertain":
            h = [model.uncertainty(p) for p in model.predict(nlp, [t[1] for t in pool])]
            order = sorted(range(len(pool)), key=lambda i: -h[i])
            pool = [pool[i] for i in order]
        chosen, pool = chosen + pool[: a.step], pool[a.step :]
    return points


def plot(curves: dict, n_test: int, path: Path) -> None:
    """QUOTE F1 against annotated articles and against annotated characters (effort)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, x, name in zip(
        axes,
        ("articles", "characters"),
        ("annotated articles", "annotated characters"),
        strict=True,
    ):
        for strategy, pts in curves.items():
            ax.plot([p[x] for p in pts], [p["QUOTE"] for p in pts], marker="o", label=strategy)
        ax.set_xlabel(name)
        ax.legend()
    axes[0].set_ylabel(f"QUOTE F1 (IoU >= 0.5, {n_test} held-out articles)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    for k, v in (("--seed-size", 80), ("--step", 80), ("--rounds", 3), ("--epochs", 6)):
        ap.add_argument(k, type=int, default=v)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--from-json", help="re-draw the figure from a run's printed JSON")
    a = ap.parse_args()
    items = gold_items(Corpus(a.corpus))
    _, held = model.split_articles([it[0] for it in items], a.holdout, a.seed)
    test = [it for it in items if it[0] in held]
    train = [it for it in items if it[0] not in held]
    if a.from_json:
        curves = json.loads(Path(a.from_json).read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            curves = {s: run(train, test, s, a, tmp) for s in ("random", "uncertain")}
        print(json.dumps(curves))
    plot(curves, len(test), Path(__file__).resolve().parents[1] / "docs" / "learning_curve.png")


if __name__ == "__main__":
    main()
