"""Token agreement over mutually exclusive categories, checked against an independent computation.

The independent side reads brat files with a few lines of its own (regex tokens, innermost
span per token, NaN where an annotator did not annotate the article) and asks the
`krippendorff` package for alpha; it never imports spanbank's agreement code. The spanbank
side ingests the same files into a real corpus and runs the report.
"""

import math
import random
import re
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from spanbank.agreement.coefficients import fleiss_kappa, gwet_ac1, multi_rater_agreement
from spanbank.agreement.report import agreement_report
from spanbank.corpus import Corpus
from spanbank.corpus.ingest import ingest_paths

ROOT = Path(__file__).resolve().parents[1]
POLNEAR = (
    next(
        (
            p
            for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared")
            if (p / "data/polnear-train").is_dir()
        ),
        ROOT.parent / "shared",
    )
    / "data"
    / "polnear-train"
)
BRAT_LABELS = {"Source": "SPEAKER", "Cue": "CUE", "Content": "QUOTE"}
TOKEN = re.compile(r"\w+|[^\w\s]")
T_LINE = re.compile(r"^(T\d+)\t(\S+) ([\d ;]+)\t", re.M)


# --------------------------------------------------------------------------- independent side


def brat_spans(ann: str) -> list[tuple[str, int, int]]:
    """(label, start, end) of every fragment of the Source/Cue/Content T lines."""
    out = []
    for _, kind, offs in T_LINE.findall(ann):
        if kind in BRAT_LABELS:
            for frag in offs.split(";"):
                s, e = frag.split()
                out.append((BRAT_LABELS[kind], int(s), int(e)))
    return out


def category_row(text: str, spans, labels: list[str]) -> list[float]:
    """Per token: 0 = none, else 1 + index of the label of the shortest covering span."""
    row = []
    for m in TOKEN.finditer(text):
        cover = [(e - s, labels.index(lab)) for lab, s, e in spans if s < m.end() and m.start() < e]
        row.append(min(cover)[1] + 1 if cover else 0)
    return row


def independent_alpha(folder: Path) -> float:
    """Krippendorff's alpha (krippendorff package) over the (annotator x token) category matrix."""
    texts = {p.stem: p.read_text("utf-8") for p in sorted(folder.glob("*.txt"))}
    anns = {}
    for p in sorted(folder.glob("*.ann")):
        art, _, who = p.stem.rpartition("_")
        anns[art, who] = brat_spans(p.read_text("utf-8"))
    labels = sorted({lab for spans in anns.values() for lab, _, _ in spans})
    coders = sorted({who for _, who in anns})
    columns = []
    for art, text in texts.items():
        n_tok = sum(1 for _ in TOKEN.finditer(text))
        block = np.full((len(coders), n_tok), np.nan)
        for c, who in enumerate(coders):
            if (art, who) in anns:
                block[c] = category_row(text, anns[art, who], labels)
        if (~np.isnan(block[:, 0] if n_tok else np.array([]))).sum() >= 2:
            columns.append(block)
    return krippendorff.alpha(reliability_data=np.hstack(columns), level_of_measurement="nominal")


# --------------------------------------------------------------------------- perturbation


def _tokens(text):
    return [(m.start(), m.end()) for m in TOKEN.finditer(text)]


def perturb(ann: str, text: str, rng: random.Random, rate: float = 0.3) -> str:
    """Another annotator's version: boundaries moved by a token, spans missed, labels swapped."""
    toks = _tokens(text)
    starts = [s for s, _ in toks]
    ends = [e for _, e in toks]
    dropped, out = set(), []
    for line in ann.split("\n"):
        m = T_LINE.match(line + "\t") if line.startswith("T") else None
        if m is None or m.group(2) not in BRAT_LABELS or ";" in m.group(3):
            out.append(line)
            continue
        ident, kind = m.group(1), m.group(2)
        s, e = (int(x) for x in m.group(3).split())
        roll = rng.random()
        if roll < rate / 3:
            dropped.add(ident)
            continue
        if roll < 2 * rate / 3:
            i = max(0, starts.index(s) + rng.choice([-1, 1])) if s in starts else None
            j = ends.index(e) + rng.choice([-1, 1]) if e in ends else None
            ok = i is not None and j is not None and 0 <= j < len(ends) and starts[i] < ends[j]
            if ok and "\n" not in text[starts[i] : ends[j]]:  # a .ann line cannot hold one
                s, e = starts[i], ends[j]
        elif roll < rate:
            kind = rng.choice([k for k in BRAT_LABELS if k != kind])
        out.append(f"{ident}\t{kind} {s} {e}\t{text[s:e]}")
    # events lose the arguments that named a dropped span (brat would refuse a dangling one)
    fixed = []
    for line in out:
        if line.startswith("E"):
            ident, _, args = line.partition("\t")
            trigger, *roles = args.split()
            roles = [r for r in roles if r.split(":")[-1] not in dropped]
            if not roles:
                continue
            line = f"{ident}\t{' '.join([trigger, *roles])}"
        fixed.append(line)
    return "\n".join(fixed)


def report_alpha(tmp_path: Path, folder: Path) -> dict:
    corpus = Corpus.init(tmp_path / "corpus")
    ingest_paths(corpus, [folder], fmt="brat")
    return agreement_report(corpus, bootstrap=0)


# --------------------------------------------------------------------------- generated fixture

ARTICLES = [
    'Smith said: "We will win the vote, Jones told me." The mayor disagreed on Tuesday.',
    "Rain fell. Jones told reporters it was fine, according to officials in the city.",
    "Nobody spoke. The council met and voted, and the minutes say nothing more.",
]
# (label, start, end) per article; QUOTE 0 contains a SPEAKER (Jones) and a CUE (told)


def _at(k: int, label: str, words: str, nth: int = 0) -> tuple[str, int, int]:
    text = ARTICLES[k]
    start = -1
    for _ in range(nth + 1):
        start = text.index(words, start + 1)
    return (label, start, start + len(words))


# (label, start, end) per article; the quote of article 0 contains a speaker and a cue
GOLD = [
    [
        _at(0, "Source", "Smith"),
        _at(0, "Cue", "said"),
        _at(0, "Content", '"We will win the vote, Jones told me."'),
        _at(0, "Source", "Jones"),
        _at(0, "Cue", "told"),
    ],
    [
        _at(1, "Source", "Jones"),
        _at(1, "Cue", "told"),
        _at(1, "Content", "it was fine"),
        _at(1, "Source", "officials"),
    ],
    [],
]


def write_fixture(folder: Path, seed: int = 0) -> None:
    """3 articles, 3 annotators: the gold, and two perturbed copies; b skips the last article."""
    folder.mkdir()
    rng = random.Random(seed)
    for k, (text, spans) in enumerate(zip(ARTICLES, GOLD, strict=True)):
        (folder / f"art{k}.txt").write_text(text, encoding="utf-8")
        ann = "\n".join(
            f"T{i + 1}\t{lab} {s} {e}\t{text[s:e]}" for i, (lab, s, e) in enumerate(spans)
        )
        (folder / f"art{k}_a.ann").write_text(ann + "\n", encoding="utf-8")
        for who in ("b", "c"):
            if who == "b" and k == 2:
                continue
            (folder / f"art{k}_{who}.ann").write_text(
                perturb(ann, text, rng, 0.6) + "\n", encoding="utf-8"
            )


def test_headline_alpha_matches_krippendorff_package_on_generated_brat(tmp_path):
    folder = tmp_path / "brat"
    write_fixture(folder)
    rep = report_alpha(tmp_path, folder)
    expected = independent_alpha(folder)
    assert rep["summary"]["token_alpha"]["value"] == pytest.approx(expected, abs=1e-9)
    assert rep["coverage"]["raters_per_article"] == {"2": 1, "3": 2}  # b skipped art2
    tc = rep["token_categories"]
    assert tc["categories"] == ["none", "CUE", "QUOTE", "SPEAKER"]
    assert tc["token_alpha"] == rep["summary"]["token_alpha"]["value"]


def test_nested_speaker_takes_the_innermost_category(tmp_path):
    folder = tmp_path / "brat"
    folder.mkdir()
    text = ARTICLES[0]
    (folder / "n.txt").write_text(text, encoding="utf-8")
    # a marks Jones (inside the quote) as a speaker, b does not: only those tokens differ
    _, qs, qe = GOLD[0][2]
    _, ss, se = GOLD[0][3]
    quote = f"T1\tContent {qs} {qe}\t{text[qs:qe]}\n"
    (folder / "n_a.ann").write_text(quote + f"T2\tSource {ss} {se}\tJones\n", encoding="utf-8")
    (folder / "n_b.ann").write_text(quote, encoding="utf-8")
    rep = report_alpha(tmp_path, folder)
    conf = np.array(rep["token_categories"]["confusion"])
    cats = rep["token_categories"]["categories"]
    q, s = cats.index("QUOTE"), cats.index("SPEAKER")
    assert conf[q, s] == conf[s, q] == 1  # the one token "Jones": SPEAKER for a, QUOTE for b
    assert np.trace(conf) == conf.sum() - 2
    assert rep["summary"]["token_alpha"]["value"] == pytest.approx(independent_alpha(folder))


def test_labelled_only_figure_can_be_positive(tmp_path):
    """The old per-label "-O" figures could never be positive; the categorical one can."""
    folder = tmp_path / "brat"
    write_fixture(folder, seed=5)
    rep = report_alpha(tmp_path, folder)
    assert rep["summary"]["token_alpha_labelled"]["value"] > 0
    assert rep["summary"]["alpha_no_o"]["value"] > 0
    for r in rep["labels"]:
        assert math.isnan(r["alpha_no_o"]) or r["alpha_no_o"] > -1


@pytest.mark.skipif(not POLNEAR.is_dir(), reason="../shared/data/polnear-train is not present")
def test_headline_alpha_matches_krippendorff_package_on_polnear(tmp_path):
    folder = tmp_path / "brat"
    folder.mkdir()
    rng = random.Random(13)
    names = sorted((POLNEAR / "attributions").glob("*.ann"))[:12]
    for k, ann_file in enumerate(names):
        art, _, who = ann_file.stem.rpartition("_")
        text = (POLNEAR / "text" / f"{art}.txt").read_text("utf-8")
        ann = ann_file.read_text("utf-8")
        (folder / f"{art}.txt").write_text(text, encoding="utf-8")
        (folder / f"{art}_{who}.ann").write_text(ann, encoding="utf-8")
        for extra in ("p1", "p2")[: 1 + k % 2]:  # 2 or 3 annotators: a varying number
            (folder / f"{art}_{extra}.ann").write_text(perturb(ann, text, rng), encoding="utf-8")
    rep = report_alpha(tmp_path, folder)
    expected = independent_alpha(folder)
    got = rep["summary"]["token_alpha"]["value"]
    assert got == pytest.approx(expected, abs=1e-9)
    assert 0.3 < got < 0.95  # perturbed, so imperfect, but far from chance


# --------------------------------------------------------------------------- varying raters


def test_fleiss_with_two_raters_is_scotts_pi():
    a = list("aabbbcacab")
    b = list("abbbccacbb")
    counts = [[(x == c) + (y == c) for c in "abc"] for x, y in zip(a, b, strict=True)]
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    p = {c: (a.count(c) + b.count(c)) / (2 * len(a)) for c in "abc"}
    p_e = sum(v * v for v in p.values())
    assert fleiss_kappa(counts) == pytest.approx((p_o - p_e) / (1 - p_e))
    assert multi_rater_agreement(counts)["ac1"] == pytest.approx(gwet_ac1(a, b, categories="abc"))


def test_varying_raters_hand_derived():
    # Gwet (2014) with missing ratings: subject 1 has 3 raters, subject 2 two, subject 3 two.
    counts = [[3, 0], [1, 1], [0, 2]]
    p_a = (1 + 0 + 1) / 3
    pi = np.array([(1 + 0.5 + 0) / 3, (0 + 0.5 + 1) / 3])
    pe = (pi * pi).sum()
    assert fleiss_kappa(counts) == pytest.approx((p_a - pe) / (1 - pe))
    pe_g = (pi * (1 - pi)).sum() / 1
    assert multi_rater_agreement(counts)["ac1"] == pytest.approx((p_a - pe_g) / (1 - pe_g))
    data = [[0, 0, 1], [0, 1, 1], [0, np.nan, np.nan]]  # coders x subjects
    assert multi_rater_agreement(counts)["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    )
