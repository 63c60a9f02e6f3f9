"""Agreement coefficients against published worked examples, plus properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanbank.agreement.coefficients import (
    align_span_arrays,
    align_spans,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    nominal_alpha_from_counts,
    observed_agreement,
    relation_f1,
    span_f1,
    unitizing_alpha,
    unitizing_components,
)
from spanbank.errors import AgreementError, SpanbankError

nan = np.nan

# Krippendorff, K. (2011) "Computing Krippendorff's Alpha-Reliability", Annenberg School
# for Communication, University of Pennsylvania, section C (4 observers x 12 units,
# missing values): nominal alpha = 0.743, interval alpha = 0.849 (ordinal 0.815, ratio 0.797).
KRIPP_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# Wikipedia, "Fleiss' kappa", Worked example: 10 subjects, 14 raters, 5 categories;
# P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
FLEISS_WIKI = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def table_to_ratings(table, cats):
    """Expand a two-rater contingency table (rows rater A, columns rater B) to sequences."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            a += [cats[i]] * n
            b += [cats[j]] * n
    return a, b


# --------------------------------------------------------------------------- worked examples


def test_krippendorff_2011_nominal_and_interval():
    assert krippendorff_alpha(KRIPP_2011, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPP_2011, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(KRIPP_2011, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(KRIPP_2011, "ratio") == pytest.approx(0.797, abs=5e-4)


def test_krippendorff_nominal_strings_and_none():
    words = {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}
    data = [
        [None if isinstance(v, float) and math.isnan(v) else words[v] for v in row]
        for row in KRIPP_2011
    ]
    assert krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)


def test_nominal_alpha_from_counts_matches_krippendorff_2011():
    data = np.array(KRIPP_2011)
    counts = np.stack([(data == v).sum(0) for v in [1, 2, 3, 4, 5]], axis=1)
    assert nominal_alpha_from_counts(counts) == pytest.approx(0.743, abs=5e-4)
    assert nominal_alpha_from_counts(counts) == pytest.approx(
        krippendorff_alpha(KRIPP_2011), abs=1e-12
    )


def test_cohen_kappa_wikipedia_example():
    # Wikipedia, "Cohen's kappa", Simple example: 50 grant proposals, both "Yes" 20,
    # A yes / B no 5, A no / B yes 10, both "No" 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a, b = table_to_ratings([[20, 5], [10, 15]], ["Yes", "No"])
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert observed_agreement(a, b) == pytest.approx(0.7)


def test_fleiss_kappa_wikipedia_example():
    assert fleiss_kappa(FLEISS_WIKI) == pytest.approx(0.210, abs=5e-4)


def test_gwet_ac1_hand_derived_high_agreement_paradox():
    # No published table is reproduced here with certainty, so this case is derived by
    # hand from Gwet (2008) "Computing inter-rater reliability and its variance in the
    # presence of high agreement", Br. J. Math. Stat. Psychol. 61:29-48, eqs. (14)-(15):
    # 125 items, (+,+) = 118, (+,-) = 5, (-,+) = 2, (-,-) = 0.
    #   p_a = 118/125 = 0.944
    #   A: 123 "+", 2 "-"; B: 120 "+", 5 "-"
    #   pi_+ = (123 + 120) / 250 = 0.972, pi_- = 0.028
    #   p_e(AC1) = (0.972*0.028 + 0.028*0.972) / (q - 1 = 1) = 0.054432
    #   AC1 = (0.944 - 0.054432) / (1 - 0.054432) = 0.889568 / 0.945568 = 0.940777
    #   p_e(kappa) = (123*120 + 2*5) / 125^2 = 0.94528
    #   kappa = (0.944 - 0.94528) / (1 - 0.94528) = -0.023392
    a, b = table_to_ratings([[118, 5], [2, 0]], ["+", "-"])
    assert gwet_ac1(a, b) == pytest.approx(0.940777, abs=1e-6)
    assert cohen_kappa(a, b) == pytest.approx(-0.023392, abs=1e-6)


def test_unitizing_alpha_hand_derived():
    # Derived by hand from Krippendorff (1995) "On the reliability of unitizing continuous
    # data", Sociological Methodology 25:47-76 / Krippendorff (2004) Content Analysis 2nd ed.
    # sec. 12.4 (no published number is reproduced here with certainty).
    # Continuum [0, 10), m = 2 coders, one category c. A: unit [2,6) (l=4); B: unit [3,6) (l=3).
    # Observed: the units overlap, delta^2 = (2-3)^2 + (6-6)^2 = 1; neither unit lies inside
    #   a gap of the other coder. Both orders: sum = 2.  cDo = 2 / (m(m-1)L^2) = 2/200 = 0.01
    # Expected: N_c = 2; gaps: A {2, 4}, B {3, 4}.
    #   l=4: (N_c-1)/3 (2*64 - 3*16 + 4) = 28; gaps >= 4: 4, 4 -> 16 * (1 + 1) = 32
    #   l=3: (N_c-1)/3 (2*27 - 3*9 + 3) = 10; gaps >= 3: 4, 3, 4 -> 9 * (2 + 1 + 2) = 45
    #   numerator = (2/L) (28 + 32 + 10 + 45) = 0.2 * 115 = 23
    #   denominator = mL(mL-1) - sum l(l-1) = 20*19 - (12 + 6) = 362
    #   cDe = 23/362 = 0.0635359
    # alpha_U = 1 - 0.01 / 0.0635359 = 0.842609
    units = [("A", "c", 2, 6), ("B", "c", 3, 6)]
    assert unitizing_alpha(units, (0, 10), label="c") == pytest.approx(0.842609, abs=1e-6)
    assert unitizing_alpha(units, (0, 10)) == pytest.approx(0.842609, abs=1e-6)
    # Shifting the continuum changes nothing.
    shifted = [(a, lab, s + 100, e + 100) for a, lab, s, e in units]
    assert unitizing_alpha(shifted, (100, 110)) == pytest.approx(0.842609, abs=1e-6)


def test_unitizing_alpha_unit_inside_gap_hand_derived():
    # Same definitions. Continuum [0, 10); A: unit [2,4); B marks nothing (passed in
    # annotators). Observed: A's unit lies in B's gap [0,10): l^2 = 4, both orders 8;
    #   cDo = 8 / (2*1*100) = 0.04.
    # Expected: N_c = 1 (first term 0); gaps A {2, 6}, B {10}; l = 2 fits: 2 -> 1,
    #   6 -> 5, 10 -> 9: 4 * 15 = 60; numerator 0.2 * 60 = 12; denominator 380 - 2 = 378;
    #   cDe = 12/378 = 0.031746.  alpha_U = 1 - 0.04/0.031746 = -0.26
    got = unitizing_alpha([("A", "c", 2, 4)], (0, 10), annotators=["A", "B"])
    assert got == pytest.approx(1 - 0.04 / (12 / 378), abs=1e-9)


def test_unitizing_alpha_overall_is_ratio_of_means():
    units = [("A", "x", 2, 6), ("B", "x", 3, 6), ("A", "y", 0, 2), ("B", "y", 0, 3)]
    d = {}
    # x as in the hand-derived case: Do = 0.01, De = 23/362.
    # y: A [0,2), B [0,3): delta^2 = 0 + 1 = 1 -> Do = 0.01; N_c = 2;
    #   l=2: 1/3 (16 - 12 + 2) = 2, gaps A {8}, B {7}: 4 * (7 + 6) = 52
    #   l=3: 1/3 (54 - 27 + 3) = 10, gaps: 9 * (6 + 5) = 99
    #   De = 0.2 * (2 + 52 + 10 + 99) / (380 - (2 + 6)) = 32.6 / 372
    d["x"] = (0.01, 23 / 362)
    d["y"] = (0.01, 32.6 / 372)
    want = 1 - (0.01 + 0.01) / 2 / ((23 / 362 + 32.6 / 372) / 2)
    assert unitizing_alpha(units, (0, 10)) == pytest.approx(want, abs=1e-9)
    assert unitizing_alpha(units, (0, 10), label="y") == pytest.approx(
        1 - 0.01 / (32.6 / 372), abs=1e-9
    )


def _segments(units, length):
    """One coder's units (merged where they overlap) and the gaps between them, literally."""
    merged = []
    for s, e in sorted(u for u in units if u[1] > u[0]):
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    gaps, pos = [], 0
    for s, e in merged:
        if s > pos:
            gaps.append((pos, s))
        pos = e
    if pos < length:
        gaps.append((pos, length))
    return [tuple(u) for u in merged], gaps


def _alpha_u_by_loops(articles, label):
    """Krippendorff (2004) sec. 12.4 written as its sums, pair of segments by pair of segments,
    with several articles as one continuum of separate stretches (see `unitizing_components`).
    ``articles``: list of (length, m, units) with units (coder, label, start, end)."""
    big_l = sum(length for length, _, _ in articles)
    delta = pair_l = m_l = 0.0
    all_units, all_gaps = [], []
    for length, m, units in articles:
        segs = [
            _segments([(s, e) for c, lab, s, e in units if c == i and lab == label], length)
            for i in range(m)
        ]
        for i in range(m):
            for j in range(m):
                if i == j:
                    continue
                (ui, gi), (uj, gj) = segs[i], segs[j]
                for bg, eg in ui:
                    for bh, eh in uj:
                        if bg < eh and bh < eg:
                            delta += (bg - bh) ** 2 + (eg - eh) ** 2
                    if any(bh <= bg and eg <= eh for bh, eh in gj):
                        delta += (eg - bg) ** 2
                for bh, eh in uj:
                    if any(bg <= bh and eh <= eg for bg, eg in gi):
                        delta += (eh - bh) ** 2
        for u, g in segs:
            all_units += [e - s for s, e in u]
            all_gaps += [e - s for s, e in g]
        pair_l += m * (m - 1) * length
        m_l += m * length
    d_o = delta / (big_l * pair_l)
    n_c = len(all_units)
    num = sum(
        (n_c - 1) / 3 * (2 * ln**3 - 3 * ln**2 + ln)
        + ln**2 * sum(g - ln + 1 for g in all_gaps if g >= ln)
        for ln in all_units
    )
    den = m_l * (m_l - 1) - sum(ln * (ln - 1) for ln in all_units)
    d_e = 2 / big_l * num / den
    return d_o, d_e


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 30),
            st.integers(2, 4),
            st.lists(
                st.tuples(
                    st.integers(0, 3), st.integers(0, 1), st.integers(0, 30), st.integers(0, 12)
                ),
                max_size=8,
            ),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_unitizing_components_equal_the_formula_summed_by_loops(raw):
    """The vectorised sums against the textbook's, computed one segment pair at a time:
    several articles of different lengths and numbers of coders, overlapping units of one
    coder (merged), coders who marked nothing, units cut at the article's end."""
    articles, rows = [], []
    for a, (length, m, units) in enumerate(raw):
        kept = []
        for c, lab, s, n in units:
            s = min(s, length)
            e = min(s + n, length)
            kept.append((c % m, lab, s, e))
            rows.append((a, c % m, lab, s, e))
        articles.append((length, m, kept))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 5)
    d_o, d_e = unitizing_components(
        *arr.T,
        np.array([length for length, _, _ in articles]),
        np.array([m for _, m, _ in articles]),
        2,
    )
    for lab in (0, 1):
        if not any(e > s for a in articles for _, la, s, e in a[2] if la == lab):
            continue
        want_o, want_e = _alpha_u_by_loops(articles, lab)
        assert d_o[lab] == pytest.approx(want_o, rel=1e-9, abs=1e-12)
        assert d_e[lab] == pytest.approx(want_e, rel=1e-9, abs=1e-12)


def test_unitizing_random_placement_is_near_zero():
    # alpha_U measures agreement beyond chance: coders placing units at random score ~0.
    rng = np.random.default_rng(7)
    vals = []
    for _ in range(60):
        units = []
        for coder in "ABC":
            lens = rng.integers(5, 80, 10)
            cuts = np.sort(rng.integers(0, 2000 - lens.sum() + 1, 10))
            pos = 0
            for g, ln in zip(np.diff(np.concatenate([[0], cuts])), lens, strict=True):
                pos += g
                units.append((coder, "c", int(pos), int(pos + ln)))
                pos += ln
        vals.append(unitizing_alpha(units, (0, 2000)))
    assert abs(np.mean(vals)) < 0.1


# --------------------------------------------------------------------------- span F1


def test_span_f1_exact_and_overlap():
    a = [("QUOTE", 0, 10), ("SPEAKER", 12, 15)]
    b = [("QUOTE", 1, 10), ("SPEAKER", 12, 15), ("CUE", 20, 25)]
    assert span_f1(a, b, "exact") == pytest.approx(2 * 1 / 5)
    assert span_f1(a, b, "overlap", 0.5) == pytest.approx(2 * 2 / 5)
    # labels must agree
    assert span_f1([("QUOTE", 0, 5)], [("SPEAKER", 0, 5)], "overlap") == 0.0


def test_span_f1_threshold_zero_is_any_overlap():
    a = [("Q", 0, 10)]
    b = [("Q", 9, 30)]  # IoU = 1/30
    assert span_f1(a, b, "overlap", 0.5) == 0.0
    assert span_f1(a, b, "overlap", 0.0) == 1.0
    assert span_f1([("Q", 0, 10)], [("Q", 10, 20)], "overlap", 0.0) == 0.0  # touching only


def test_align_spans_one_to_one_greedy_by_iou():
    a = [("Q", 0, 10), ("Q", 0, 4)]
    b = [("Q", 0, 5), ("Q", 0, 9)]
    # IoUs: a0-b1 0.9, a1-b0 0.8, a0-b0 0.5, a1-b1 0.44: greedy takes a0-b1 then a1-b0.
    assert align_spans(a, b, 0.0) == [(0, 1), (1, 0)]
    assert align_spans(a, b, 0.85) == [(0, 1)]
    # duplicates match one-to-one
    assert align_spans([("Q", 1, 2)] * 2, [("Q", 1, 2)], 1.0) == [(0, 0)]


def test_align_span_arrays_groups_do_not_mix():
    ia, ib = align_span_arrays([0, 1], [0, 0], [5, 5], [1, 0], [0, 0], [5, 5], 0.5)
    assert list(zip(ia, ib, strict=True)) == [(0, 1), (1, 0)]


def test_span_f1_undefined_and_bad_input():
    assert math.isnan(span_f1([], []))
    with pytest.raises(AgreementError, match="mode"):
        span_f1([("Q", 0, 1)], [("Q", 0, 1)], mode="fuzzy")
    with pytest.raises(SpanbankError, match="start=5 end=3"):
        span_f1([("Q", 5, 3)], [])
    with pytest.raises(ValueError, match="threshold"):
        align_spans([("Q", 0, 1)], [], 1.5)


def test_relation_f1_end_to_end_and_conditional():
    spans_a = [("QUOTE", 0, 20), ("SPEAKER", 25, 30), ("QUOTE", 40, 60), ("SPEAKER", 70, 75)]
    spans_b = [("QUOTE", 1, 20), ("SPEAKER", 25, 30), ("QUOTE", 40, 60), ("SPEAKER", 90, 95)]
    rel_a = [(0, 1, "said_by"), (2, 3, "said_by")]
    rel_b = [(0, 1, "said_by"), (2, 3, "said_by")]
    # link 1 matches; link 2's speakers do not align -> 2*1/(2+2)
    assert relation_f1(spans_a, rel_a, spans_b, rel_b) == pytest.approx(0.5)
    # conditional: only link 1 has both endpoints aligned on each side -> 1.0
    assert relation_f1(spans_a, rel_a, spans_b, rel_b, conditional=True) == pytest.approx(1.0)
    # a different label does not match
    assert relation_f1(spans_a, [(0, 1, "cue")], spans_b, rel_b[:1]) == 0.0
    assert math.isnan(relation_f1(spans_a, [], spans_b, []))


# --------------------------------------------------------------------------- undefined and bad input


def test_undefined_figures_are_nan():
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # chance agreement 1
    assert math.isnan(gwet_ac1(["a", "a"], ["a", "a"]))  # one category
    assert math.isnan(fleiss_kappa(np.zeros((0, 3))))
    assert math.isnan(fleiss_kappa([[1, 0], [0, 1]]))  # one rater per subject
    assert math.isnan(krippendorff_alpha([[1, 2, 3]]))  # one coder
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))  # one value
    assert math.isnan(krippendorff_alpha([[1, nan], [nan, 2]]))  # no unit coded twice
    assert math.isnan(unitizing_alpha([("A", "c", 0, 3)], (0, 10)))  # one annotator
    assert math.isnan(unitizing_alpha([], (0, 10), annotators=["A", "B"]))  # no units
    assert math.isnan(unitizing_alpha([("A", "c", 0, 3)], (0, 10), label="other", annotators="AB"))


def test_bad_input_raises_clear_errors():
    with pytest.raises(AgreementError, match="equal length"):
        cohen_kappa([1, 2], [1])
    with pytest.raises(AgreementError, match="equal length"):
        gwet_ac1([1], [1, 2])
    with pytest.raises(AgreementError, match="non-negative"):
        fleiss_kappa([[2, -1], [1, 0]])
    with pytest.raises(AgreementError, match="level"):
        krippendorff_alpha(KRIPP_2011, "cardinal")
    with pytest.raises(AgreementError, match="start > end"):
        unitizing_alpha([("A", "c", 5, 3)], (0, 10))
    with pytest.raises(AgreementError, match="outside the continuum"):
        unitizing_alpha([("A", "c", 5, 30)], (0, 10))
    with pytest.raises(AgreementError, match="missing"):
        cohen_kappa([1, None], [1, 2])


# --------------------------------------------------------------------------- properties

labels2 = st.lists(st.sampled_from("abc"), min_size=2, max_size=30)


@settings(max_examples=40, deadline=None)
@given(labels2)
def test_perfect_agreement_gives_one(xs):
    if len(set(xs)) < 2:
        assert math.isnan(cohen_kappa(xs, xs))
        return
    assert cohen_kappa(xs, xs) == pytest.approx(1.0)
    assert gwet_ac1(xs, xs) == pytest.approx(1.0)
    assert krippendorff_alpha([xs, xs, xs]) == pytest.approx(1.0)
    counts = np.array([[3 if x == c else 0 for c in "abc"] for x in xs])
    assert fleiss_kappa(counts) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from("ab")), min_size=1, max_size=30))
def test_two_rater_coefficients_symmetric(pairs):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    for f in (cohen_kappa, gwet_ac1, observed_agreement):
        x, y = f(a, b), f(b, a)
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y)


span = st.tuples(st.sampled_from(["Q", "S"]), st.integers(0, 40), st.integers(0, 15)).map(
    lambda t: (t[0], t[1], t[1] + t[2])
)


@settings(max_examples=60, deadline=None)
@given(st.lists(span, max_size=8), st.lists(span, max_size=8), st.sampled_from([0.0, 0.5, 1.0]))
def test_span_f1_symmetric_and_bounded(a, b, thr):
    x = span_f1(a, b, "overlap", thr)
    y = span_f1(b, a, "overlap", thr)
    if not a and not b:
        assert math.isnan(x) and math.isnan(y)
        return
    assert 0.0 <= x <= 1.0
    assert x == pytest.approx(y)
    if a:
        assert span_f1(a, a, "exact") == 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("AB"), st.sampled_from("xy"), st.integers(0, 50), st.integers(1, 20)
        ),
        min_size=1,
        max_size=10,
    )
)
def test_unitizing_alpha_coder_order_and_perfect_agreement(raw):
    units = [(c, lab, s, s + n) for c, lab, s, n in raw]
    fwd = unitizing_alpha(units, (0, 80), annotators=["A", "B"])
    rev = unitizing_alpha(units[::-1], (0, 80), annotators=["B", "A"])
    assert (math.isnan(fwd) and math.isnan(rev)) or fwd == pytest.approx(rev)
    same = [("A", lab, s, e) for _, lab, s, e in units] + [
        ("B", lab, s, e) for _, lab, s, e in units
    ]
    assert unitizing_alpha(same, (0, 80)) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 1.0, 2.0, nan]), min_size=6, max_size=6),
        min_size=2,
        max_size=4,
    )
)
def test_krippendorff_coder_order_and_fast_path(rows):
    x = krippendorff_alpha(rows)
    y = krippendorff_alpha(rows[::-1])
    assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y)
    data = np.array(rows)
    counts = np.stack([(data == v).sum(0) for v in (0.0, 1.0, 2.0)], axis=1)
    z = nominal_alpha_from_counts(counts)
    assert (math.isnan(x) and math.isnan(z)) or x == pytest.approx(z)


def test_unitizing_alpha_krippendorff_2004_sample_study():
    """Krippendorff (2004), "Measuring the reliability of qualitative text analysis data",
    Quality & Quantity 38: two observers on a continuum 150..450, categories c and k. The
    published figures, as DKPro Statistics' AlphaUnitizedAgreementTest reproduces them
    (unrounded): alpha_c = 0.7285, alpha_k = 1.0, joint alpha = 0.8587."""
    units = [
        (0, "c", 225, 295),
        (0, "c", 370, 400),
        (1, "c", 220, 300),
        (1, "c", 355, 375),
        (1, "c", 400, 420),
        (0, "k", 180, 240),
        (0, "k", 300, 350),
        (1, "k", 180, 240),
        (1, "k", 300, 350),
    ]
    assert unitizing_alpha(units, (150, 450), label="c") == pytest.approx(0.7285, abs=1e-4)
    assert unitizing_alpha(units, (150, 450), label="k") == pytest.approx(1.0)
    assert unitizing_alpha(units, (150, 450)) == pytest.approx(0.8587, abs=1e-4)


# Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed.; the irrCAC package's dataset
# `cont3x3abstractors`: 100 pregnancies classified Ectopic/AIU/NIU by two abstractors. Its
# vignette reports Cohen's kappa = 0.7964094, Gwet's AC1 = 0.8493305, percent agreement 0.89.
ABSTRACTORS = (
    [("Ectopic", "Ectopic")] * 13
    + [("AIU", "AIU")] * 20
    + [("AIU", "NIU")] * 7
    + [("NIU", "AIU")] * 4
    + [("NIU", "NIU")] * 56
)


def test_gwet_ac1_and_cohen_kappa_irrcac_abstractors():
    a, b = zip(*ABSTRACTORS, strict=True)
    assert gwet_ac1(a, b) == pytest.approx(0.8493305, abs=1e-6)
    assert cohen_kappa(a, b) == pytest.approx(0.7964094, abs=1e-6)
