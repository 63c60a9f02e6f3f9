"""Benchmark spanbank.preannotate: articles per second on one core, and F1 on the seed gold.

Usage: python benchmarks/bench_preannotate.py [--n 5000] [--seed 0] [--repeat 3]

The corpus is synthetic and deterministic (by --seed): news-like paragraphs with direct
quotes (curly, straight, guillemets, low-high, some across two paragraphs), indirect
quotes ("X said (that) ...", "..., X said."), "according to", scare quotes, plain prose
and non-ASCII names. Speed is compared with the 500 articles/s goal and with a baseline
that only scans the text once for quote marks (the floor any tagger pays).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from spanbank.preannotate import TAGGER_VERSION, evaluate, preannotate

ROOT = Path(__file__).resolve().parents[1]
GOAL = 500.0

NAMES = [
    "Dmitry Peskov",
    "Emmanuel Macron",
    "Ursula von der Leyen",
    "Olaf Scholz",
    "Ümit Özdağ",
    "Zoë Martínez",
    "Andrzej Duda",
    "Kaja Kallas",
    "Jens Stoltenberg",
    "Viktor Orbán",
    "Li Qiang",
    "Nuño Sánchez",
]
ROLES = [
    "Kremlin spokesperson",
    "French President",
    "Commission President",
    "Chancellor",
    "party leader",
    "Foreign Minister",
    "Prime Minister",
    "NATO Secretary General",
]
NOUNS = [
    "the ministry",
    "the Kremlin",
    "the spokesperson",
    "a senior official",
    "the agency",
    "the foreign minister",
    "Reuters",
    "the state-run outlet",
    "the central bank",
]
PRONOUNS = ["he", "she", "they"]
VERBS = [
    "said",
    "says",
    "added",
    "noted",
    "told reporters",
    "stressed",
    "warned",
    "confirmed",
    "insisted",
    "reiterated",
]
CLAUSES = [
    "the talks had been constructive and would continue next week",
    "there was no agreement on the key points of the draft",
    "the government would review the decision in the coming days",
    "sanctions against the sector would remain in place until further notice",
    "both sides had agreed to exchange prisoners before the winter",
    "the budget deficit would narrow to three percent by next year",
    "the ceasefire was holding in most parts of the region",
]
SENTENCES = [
    "We will not accept any agreement that ignores the situation on the ground",
    "It was a good opportunity to present our positions to each other",
    "The conversation was substantive and lasted more than two hours",
    "Nobody wants another winter like the last one, and we will do everything to avoid it",
    "Our door remains open, but the other side has to make the first move",
    "These are difficult times for the whole continent and we know it",
]
PROSE = [
    "The meeting took place in Brussels on Tuesday amid tight security.",
    "Markets in Frankfurt and Paris rose slightly after the announcement.",
    "The last known conversation between the two leaders took place in September 2022.",
    "So-called “experts” have long predicted a breakthrough that never came.",
    "The summit in Zürich was postponed twice because of the weather.",
    "Prices for gas fell by 4% in the first quarter, official data showed.",
    "Over 1,200 delegates attended the conference, which ended on Friday.",
]
MARKS = [("“", "”"), ("“", "”"), ("“", "”"), ('"', '"'), ("«", "»"), ("„", "“")]


def speaker(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return f"{rng.choice(ROLES)} {rng.choice(NAMES)}"
    if r < 0.7:
        return rng.choice(NAMES).split()[-1]
    return rng.choice(NOUNS)


def paragraph(rng: random.Random) -> str:
    text = _paragraph(rng)
    return text[0].upper() + text[1:]


def _paragraph(rng: random.Random) -> str:
    kind = rng.randrange(8)
    o, c = rng.choice(MARKS)
    s1, s2 = rng.sample(SENTENCES, 2)
    clause = rng.choice(CLAUSES)
    verb = rng.choice(VERBS)
    after = "said" if verb.startswith("told") else verb  # after a quote: "he said", not "he told"
    if kind == 0:
        return f"{o}{s1}. {s2},{c} {rng.choice(PRONOUNS)} {after}."
    if kind == 1:
        return f"{o}{s1},{c} said {rng.choice(NAMES)}."
    if kind == 2:
        return f"{speaker(rng)} {verb}: {o}{s1}.{c}"
    if kind == 3:
        return f"{o}{s1}.\n{o}{s2},{c} {rng.choice(NOUNS)} {after}."
    if kind == 4:
        that = "that " if rng.random() < 0.6 else ""
        return f"{speaker(rng)} {verb} {that}{clause}. {rng.choice(PROSE)}"
    if kind == 5:
        return f"{clause[0].upper()}{clause[1:]}, {rng.choice(NOUNS)} {after}."
    if kind == 6:
        return f"{clause[0].upper()}{clause[1:]}, according to {rng.choice(NOUNS)}."
    return " ".join(rng.sample(PROSE, 3))


def make_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        title = f"{rng.choice(NAMES).split()[-1]} meets {rng.choice(NAMES).split()[-1]} in talks"
        paras = [paragraph(rng) for _ in range(rng.randint(6, 14))]
        docs.append("\n".join([title, *paras, f"By {rng.choice(NAMES)}"]))
    return docs


_BASELINE = re.compile(r"[\"“”„«»]")


def timed(fn, docs, repeat: int) -> float:
    """Best articles/s over `repeat` runs (best-of damps noise from the shared cores)."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for d in docs:
            fn(d)
        best = max(best, len(docs) / (time.perf_counter() - t0))
    return best


def seed_scores() -> dict:
    with open(ROOT / "seeds" / "000_2e13a8ea3bc18025.txt", encoding="utf-8", newline="") as fh:
        text = fh.read()
    gold = json.loads(
        (ROOT / "tests" / "data" / "000_2e13a8ea3bc18025.gold.json").read_text("utf-8")
    )
    out = preannotate(text)
    spans = [s for s in gold["spans"] if s["label"] != "EVENT"]
    return evaluate(out["spans"], spans, out["relations"], gold["relations"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    docs = make_corpus(args.n, args.seed)
    chars = sum(len(d) for d in docs)
    preannotate(docs[0])  # warm-up
    rate = timed(preannotate, docs, args.repeat)
    base = timed(_BASELINE.findall, docs, args.repeat)
    sample = docs[:500]
    spans = sum(len(preannotate(d)["spans"]) for d in sample)

    print(
        f"{TAGGER_VERSION}: {args.n} synthetic articles, {chars / args.n:.0f} chars avg, "
        f"{spans / len(sample):.1f} spans/article"
    )
    print(
        f"preannotate           {rate:10.0f} articles/s  ({rate / GOAL:.1f}x the {GOAL:.0f}/s goal)"
    )
    print(
        f"baseline (mark scan)  {base:10.0f} articles/s  (preannotate costs {base / rate:.0f}x a scan)"
    )
    rep = seed_scores()
    print("seed gold (000_2e13a8ea3bc18025):")
    for key in ("QUOTE", "QUOTE:direct", "QUOTE:indirect", "SPEAKER", "CUE", "said_by", "cue"):
        e, o = rep["exact"].get(key), rep["overlap"].get(key)
        if e:
            print(f"  {key:15s} exact F1 {e['f1']:.3f}   overlap F1 {o['f1']:.3f}")


if __name__ == "__main__":
    main()
