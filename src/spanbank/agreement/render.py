"""Render an agreement report: a terminal table, JSON, CSV, and one self-contained HTML page showing
where annotators disagree."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter

import numpy as np

from spanbank.agreement.report import CATEGORY_RULE
from spanbank.csvsafe import csv_text
from spanbank.errors import AgreementError

e = html.escape

# Plain-language meaning of each figure and what range is good (the page's "How to read").
EXPLAIN = [
    (
        "token_alpha (headline)",
        "Every word gets one value per annotator: none, or the label of the innermost span "
        "covering it. Krippendorff's α compares how often annotators give a word the same value "
        "with how often they would by chance, given how common each value is, and allows an "
        "annotator to skip an article. 1 is perfect agreement, 0 is chance level, below 0 is "
        "systematic disagreement. Krippendorff recommends relying on data with α ≥ 0.800 and "
        "drawing only tentative conclusions between 0.667 and 0.800. This is the token-level "
        "figure attribution corpora publish.",
    ),
    (
        "token_alpha_labelled",
        "The same α over only the words at least one annotator labelled: how well annotators "
        "agree on what a marked stretch is, leaving out the many words everybody left alone. "
        "It is lower than token_alpha by construction; read it on the same scale.",
    ),
    (
        "token_fleiss_kappa, token_ac1",
        "Two other chance-corrected coefficients over the same word values, for any number of "
        "annotators per article. Fleiss' κ: 0.61–0.80 is usually called substantial, above "
        "0.80 almost perfect. Gwet's AC1 is less pulled down when one value (none) dominates, "
        "so it is usually higher than κ and α on sparse annotations; a large gap between AC1 "
        "and α says agreement rests on the rare labelled words.",
    ),
    (
        "span_f1_exact / span_f1_overlap / span_f1_any",
        "Of the spans two annotators marked, the share they both marked with the same label: "
        "with identical boundaries (exact), overlapping by at least the IoU threshold, or "
        "overlapping at all. 1 means the same spans; no chance correction. Exact F1 is usually "
        "much lower than overlap F1 because annotators differ on quote marks and punctuation; "
        "an overlap F1 above about 0.8 is good for quotes and speakers.",
    ),
    (
        "attribution_f1, attribution_f1_full",
        "Attributions as units: a quote with its speaker and cue. attribution_f1 counts two "
        "annotators' quotes as the same when they overlap enough (exact: same boundaries); "
        "attribution_f1_full also needs the linked speakers and cues to match. The gap between "
        "them is disagreement on who said it and how it was introduced.",
    ),
    (
        "relation_f1",
        "Links (quote → speaker, quote → cue) that both annotators drew between matching "
        "spans; the conditional figure counts only links whose two ends both annotators marked, "
        "so it measures linking alone.",
    ),
    (
        "alpha_u",
        "Krippendorff's unitizing α over character offsets: how far apart the stretches "
        "annotators marked are, boundaries included, against chance placement. Same scale as α.",
    ),
    (
        "alpha, alpha_no_o (per label table)",
        "Each label as its own yes/no layer per word (a word inside a speaker inside a quote is "
        "in both). Useful to see which label is hard; the pooled figure counts a word once per "
        "label, so compare token_alpha, not this, with published figures. -O keeps the words "
        "someone labelled with any label.",
    ),
    (
        "Cohen's κ (pairs)",
        "Two annotators at a time over the word values: which pairs agree, which one differs "
        "from everybody (a row of low values).",
    ),
]

NAN = float("nan")
PALETTE = ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;line-height:1.4;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}
.headline{font-size:1.3em;background:#f4f7fb;border-left:4px solid #1f77b4;padding:.6em 1em}
dl dt{font-weight:600;margin-top:.6em}dl dd{margin-left:1.5em}
.view{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}
.sent{margin:.6em 0;border-top:1px dashed #ddd;padding-top:.4em}
.sent table{margin:.2em 0;width:100%}.sent td{text-align:left;vertical-align:top;border:none;padding:.1em .4em}
.sent td.who{white-space:nowrap;width:10em;color:#555;font-size:.9em}
.t{border-radius:3px;padding:0 1px}.d{outline:2px solid #e00;outline-offset:-1px}
.legend span{margin-right:1em;padding:0 .3em;border-radius:3px}
.conf td.hi{font-weight:600}.muted{color:#777;font-size:.9em}
"""


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _table(header, rows, cls="") -> str:
    h = "".join(f"<th>{e(str(x))}</th>" for x in header)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def heatmap_png(names: list[str], values: dict, title: str) -> str:
    """A symmetric annotator x annotator heatmap as a base64 PNG; labels are literal text."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise AgreementError(
            "the HTML report needs matplotlib: pip install 'spanbank[plot]'"
        ) from err

    n = len(names)
    m = np.full((n, n), np.nan)
    for (a, b), v in values.items():
        if a in names and b in names:
            i, j = names.index(a), names.index(b)
            m[i, j] = m[j, i] = v
    side = max(4.0, 1.6 + 0.7 * n)
    # names are data, never maths or TeX: "$x$" in a name must print as typed
    with plt.rc_context({"text.usetex": False}):
        fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=110)
        low = min(0.0, float(np.nanmin(m))) if np.isfinite(m).any() else 0.0
        im = ax.imshow(m, vmin=low, vmax=1, cmap="viridis")
        fs = 11 if n <= 6 else 9
        ax.set_xticks(range(n), names, rotation=35, ha="right", fontsize=fs, parse_math=False)
        ax.set_yticks(range(n), names, fontsize=fs, parse_math=False)
        for i in range(n):
            for j in range(n):
                if np.isfinite(m[i, j]):
                    dark = (m[i, j] - low) / ((1 - low) or 1) < 0.6
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=fs + 1,
                        color="white" if dark else "black",
                        parse_math=False,
                    )
                elif i == j:
                    ax.text(j, i, "—", ha="center", va="center", fontsize=fs, color="#999")
        ax.set_title(title, fontsize=12, parse_math=False)
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _sentences(text: str, tokens: list) -> list[tuple[int, int]]:
    """Token index ranges of sentences: end after . ! ? or where a line break follows."""
    out, first = [], 0
    for k, (s, t) in enumerate(tokens):
        nxt = tokens[k + 1][0] if k + 1 < len(tokens) else len(text)
        if text[s:t] in (".", "!", "?") or "\n" in text[t:nxt] or k + 1 == len(tokens):
            out.append((first, k + 1))
            first = k + 1
    return out


def _majority(column: list[int]) -> int | None:
    """The value most annotators gave a token, None on a tie."""
    top = Counter(column).most_common(2)
    return None if len(top) > 1 and top[0][1] == top[1][1] else top[0][0]


def _sentence_row(text, tokens, lo, hi, values, majority, categories) -> str:
    parts = []
    for k in range(lo, hi):
        s, t = tokens[k]
        gap = text[tokens[k - 1][1] : s] if k > lo else ""
        v = values[k]
        cls = f"t c{v}" + (" d" if v != majority[k] else "")
        tip = categories[v] if v >= 0 else "not annotated"
        parts.append(f'{e(gap)}<span class="{cls}" title="{e(tip)}">{e(text[s:t])}</span>')
    return "".join(parts)


def _attribution_list(text, attrs) -> str:
    if not attrs:
        return '<span class="muted">no quotes</span>'

    def clip(se):
        s, t = se
        frag = text[s:t]
        return e(frag if len(frag) <= 80 else frag[:77] + "…")

    items = []
    for a in attrs:
        who = ", ".join(clip(x) for x in a["speakers"]) or "—"
        cue = ", ".join(clip(x) for x in a["cues"]) or "—"
        items.append(f"<li>«{clip(a['quote'])}» <b>speaker</b> {who} <b>cue</b> {cue}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _view(row: dict, view: dict, show, max_sentences: int = 15) -> str:
    """One least-agreed article: every sentence with a disagreement, one line per annotator."""
    text, tokens, cats = view["text"], view["tokens"], view["categories"]
    values = view["values"]
    who = [show(w) for w in view["annotators"]]
    majority = [_majority([vals[k] for vals in values]) for k in range(len(tokens))]
    blocks, hidden = [], 0
    for lo, hi in _sentences(text, tokens):
        if all(len({vals[k] for vals in values}) == 1 for k in range(lo, hi)):
            continue
        if len(blocks) >= max_sentences:
            hidden += 1
            continue
        lines = "".join(
            f'<tr><td class="who">{e(w)}</td><td>'
            f"{_sentence_row(text, tokens, lo, hi, vals, majority, cats)}</td></tr>"
            for w, vals in zip(who, values, strict=True)
        )
        blocks.append(f'<div class="sent"><table>{lines}</table></div>')
    if hidden:
        blocks.append(f'<p class="muted">{hidden} more sentences with disagreements not shown.</p>')
    if not blocks:
        blocks.append('<p class="muted">No token-level disagreement.</p>')
    attrs = "".join(
        f"<h4>{e(w)}</h4>{_attribution_list(text, a)}"
        for w, a in zip(who, view["attributions"], strict=True)
    )
    link = f' <a href="{e(row["link"])}">open in Label Studio</a>' if row.get("link") else ""
    return (
        f'<div class="view"><h3>{e(row["article_id"])}{link}</h3>'
        f'<p class="muted">token α {_fmt(row.get("token_alpha"))}, span F1 (IoU) '
        f"{_fmt(row['span_f1_overlap'])}, annotators: {e(', '.join(who))}</p>"
        + "".join(blocks)
        + f"<details><summary>Attributions per annotator</summary>{attrs}</details></div>"
    )


def _confusion(tc: dict) -> str:
    cats = tc["categories"]
    conf = np.asarray(tc["confusion"], dtype=float)
    rows = []
    for i, c in enumerate(cats):
        tot = conf[i].sum()
        cells = []
        for j in range(len(cats)):
            share = conf[i, j] / tot if tot else 0.0
            shade = f"background:rgba(214,39,40,{min(0.85, share * 2):.2f})" if i != j else ""
            cls = ' class="hi"' if i != j and share >= 0.1 else ""
            cells.append(
                f'<span{cls} style="{shade}">{int(conf[i, j])} '
                f'<span class="muted">({share:.0%})</span></span>'
            )
        rows.append([f"<b>{e(c)}</b>"] + cells)
    return _table(["one annotator ↓ / other →", *cats], rows, "conf")


def _throughput_html(t: dict | None, show) -> str:
    """Per-annotator throughput section (empty when no annotation has a lead time)."""
    if not t or not t["annotations"]:
        return ""
    rows = [
        [
            e(show(a)),
            str(r["annotations"]),
            _fmt(r["seconds"] / 3600, 2),
            _fmt(r["articles_per_hour"], 1),
            _fmt(r["seconds_per_span"], 1),
            _fmt(r["seconds_per_annotation"]["p50"], 0),
        ]
        for a, r in t["per_annotator"].items()
    ]
    header = ["annotator", "annotations", "hours", "articles/hour", "s/span", "median s/article"]
    return (
        "<h2>Throughput</h2><p>From Label Studio's lead time of each live annotation; "
        f"{_fmt(t['hours'], 2)} hours in all.</p>" + _table(header, rows)
    )


def _honeypot_html(scores: list[dict] | None, show) -> str:
    """Per-annotator scores against the known gold of honeypot tasks (empty when none)."""
    if not scores:
        return ""
    header, rows = _honeypot_rows(scores, show)
    return (
        "<h2>Against honeypot gold</h2><p>Articles with known gold mixed into the batch "
        "(push --honeypots); 95% bootstrap CIs over articles.</p>"
        + _table(header, [[e(c) for c in r] for r in rows])
    )


def render_html(report: dict, names: dict | None = None) -> str:
    """The page: headline, how to read, tables, confusion, heatmaps, gold, least-agreed articles."""
    names = names or {}

    def show(p: str) -> str:
        return f"{names[p]} ({p})" if p in names and names[p] else p

    cov, summ = report["coverage"], report["summary"]
    people = [show(n) for n in cov["annotators"]]
    head = summ.get("token_alpha", {})
    ci = (
        ""
        if math.isnan(head.get("ci_low", math.nan))
        else (f" (95% CI {_fmt(head['ci_low'])}–{_fmt(head['ci_high'])})")
    )
    summary = _table(
        ["measure", "value", "95% CI"],
        [
            [
                e(k),
                _fmt(v["value"]),
                "" if math.isnan(v["ci_low"]) else f"{_fmt(v['ci_low'])} – {_fmt(v['ci_high'])}",
            ]
            for k, v in summ.items()
        ],
    )
    explain = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in EXPLAIN)
    labels = _table(
        ["label"] + [h for h, _ in LABEL_COLUMNS],
        [
            [e(str(r["label"]))] + [_fmt(r.get(k)) for _, k in LABEL_COLUMNS]
            for r in report["labels"]
        ],
    )
    micro = [r for r in report["pairs"] if r["label"] == "micro"]
    att_pairs = report.get("attributions", {}).get("pairs", [])
    heat = []
    for rows, key, title in (
        (micro, "token_cohen_kappa", "token Cohen's κ (categories)"),
        (micro, "span_f1_overlap", f"span F1 (IoU ≥ {report['selection']['iou']})"),
        (att_pairs, "attribution_f1_full", "attribution F1 (quote, speaker, cue)"),
    ):
        vals = {
            (show(r["annotator_a"]), show(r["annotator_b"])): r.get(key, math.nan) for r in rows
        }
        if not vals:
            continue
        png = heatmap_png(people, vals, title)
        heat.append(f'<figure><img alt="{e(title)}" src="data:image/png;base64,{png}"></figure>')
    pair_table = _table(
        ["pair", "articles", "token κ", "token AC1", "span F1 IoU", "attribution F1", "full"],
        [
            [
                e(f"{show(r['annotator_a'])} / {show(r['annotator_b'])}"),
                r["articles"],
                _fmt(r.get("token_cohen_kappa")),
                _fmt(r.get("token_ac1")),
                _fmt(r["span_f1_overlap"]),
                _fmt(
                    next(
                        (
                            a["attribution_f1"]
                            for a in att_pairs
                            if (a["annotator_a"], a["annotator_b"])
                            == (r["annotator_a"], r["annotator_b"])
                        ),
                        None,
                    )
                ),
                _fmt(
                    next(
                        (
                            a["attribution_f1_full"]
                            for a in att_pairs
                            if (a["annotator_a"], a["annotator_b"])
                            == (r["annotator_a"], r["annotator_b"])
                        ),
                        None,
                    )
                ),
            ]
            for r in micro
        ],
    )
    tc = report.get("token_categories")
    palette = {
        i: PALETTE[(i - 1) % len(PALETTE)] for i in range(1, len(tc["categories"]) if tc else 1)
    }
    style = STYLE + "".join(
        f".c{i}{{background:{c}33;border-bottom:2px solid {c}}}" for i, c in palette.items()
    )
    legend = (
        "".join(f'<span class="c{i}">{e(c)}</span>' for i, c in enumerate(tc["categories"]) if i)
        if tc
        else ""
    )
    gold = report.get("gold") or []
    gold_html = (
        _table(
            [
                "annotator",
                "articles",
                "precision",
                "recall",
                "F1",
                "precision exact",
                "recall exact",
            ],
            [
                [
                    e(show(g["annotator"])),
                    g["articles"],
                    _fmt(g["precision"]),
                    _fmt(g["recall"]),
                    _fmt(g["f1"]),
                    _fmt(g["precision_exact"]),
                    _fmt(g["recall_exact"]),
                ]
                for g in gold
            ],
        )
        if gold
        else "<p>No adjudicated gold in this selection.</p>"
    )
    views = report.get("_views") or []
    lowest = report["lowest_articles"]
    view_html = "".join(_view(r, v, show) for r, v in zip(lowest, views, strict=False))
    lowest_table = _table(
        ["article", "annotators", "token α", "F1 IoU", "F1 exact", "alpha_U"],
        [
            [
                f'<a href="{e(r["link"])}">{e(r["article_id"])}</a>'
                if r["link"]
                else e(r["article_id"]),
                e(", ".join(show(a) for a in r["annotators"])),
                _fmt(r.get("token_alpha")),
                _fmt(r["span_f1_overlap"]),
                _fmt(r["span_f1_exact"]),
                _fmt(r["alpha_u"]),
            ]
            for r in lowest
        ],
    )
    rel = report["relations"]["overall"]
    notes = "".join(f"<li>{e(n)}</li>" for n in report.get("notes", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spanbank agreement report</title>
<style>{style}</style></head><body>
<h1>Agreement report</h1>
<p>{cov["articles_with_2plus"]} articles with two or more annotators ({cov["annotations"]} annotations by
{len(people)} annotators: {e(", ".join(people))}); {cov["tokens"]} tokens.</p>
<p class="headline">Token agreement (Krippendorff's α over word categories):
<b>{_fmt(head.get("value"))}</b>{ci}</p>
<p class="muted">Categories: {e(tc["rule"]) if tc else ""}.</p>
<h2>Summary</h2>{summary}
<h2>How to read these figures</h2><dl>{explain}</dl>
<h2>Which label did the other annotator give?</h2>
<p>Every word, every pair of annotators who both annotated its article: a row is one annotator's
value, a column the other's (counted both ways). Off-diagonal cells are disagreements; red marks
where a label is often confused.</p>{_confusion(tc) if tc else ""}
<h2>Per label</h2>{labels}
<h2>Annotator pairs</h2>{pair_table}{"".join(heat)}
<h2>Against adjudicated gold</h2>{gold_html}
<h2>Relations</h2><p>F1 {_fmt(rel["relation_f1"])}; conditional on matched endpoints
{_fmt(rel["relation_f1_conditional"])} ({rel["links"]} links).</p>
{_throughput_html(report.get("throughput"), show)}
{_honeypot_html(report.get("honeypots"), show)}
<h2>Lowest-agreement articles</h2>{lowest_table}
<h2>Where they disagree</h2>
<p>Each least-agreed article: the sentences where annotators gave some word different values, one
line per annotator. Colour is the label; a red outline marks a word where this annotator differs
from the majority (all differing words when there is no majority).</p>
<p class="legend">{legend}</p>
{view_html or '<p class="muted">Article text not included.</p>'}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


# --------------------------------------------------------------------------- table, JSON, CSV, HTML


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)
    ]
    line = "  ".join(
        h.ljust(w) if k == 0 else h.rjust(w)
        for k, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


LABEL_COLUMNS = [
    ("F1 exact", "span_f1_exact"),
    ("F1 IoU", "span_f1_overlap"),
    ("F1 any", "span_f1_any"),
    ("alpha", "alpha"),
    ("alpha-O", "alpha_no_o"),
    ("Fleiss", "fleiss_kappa"),
    ("AC1", "ac1"),
    ("obs", "observed"),
    ("alpha_U", "alpha_u"),
    ("units", "units"),
]
PAIR_COLUMNS = [
    ("token kappa", "token_cohen_kappa"),
    ("F1 exact", "span_f1_exact"),
    ("F1 IoU", "span_f1_overlap"),
    ("kappa", "cohen_kappa"),
    ("kappa-O", "cohen_kappa_no_o"),
    ("AC1", "ac1"),
    ("obs", "observed"),
    ("rel F1", "relation_f1"),
]


def render_table(report: dict) -> str:
    """The report as readable text tables (summary, labels, annotator pairs, lowest articles)."""
    cov, sel = report["coverage"], report["selection"]
    out = [
        f"Agreement on {cov['articles_with_2plus']} articles with 2+ annotators "
        f"({cov['annotations']} annotations, {len(cov['annotators'])} annotators, "
        f"{cov['tokens']} tokens; IoU >= {sel['iou']})",
        "",
    ]
    out.insert(
        1, f"Headline: token_alpha, Krippendorff's alpha over token categories ({CATEGORY_RULE})"
    )
    srows = []
    for k, v in report["summary"].items():
        ci = "" if math.isnan(v["ci_low"]) else f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}]"
        srows.append([k, _fmt(v["value"]), ci])
    out += [_grid(["measure", "value", "95% CI"], srows), ""]
    out.append(
        "Per label (token measures over binary layers, label vs O: alpha, Fleiss, AC1, obs; "
        "-O = tokens someone labelled with any label)"
    )
    out.append(
        _grid(
            ["label"] + [h for h, _ in LABEL_COLUMNS],
            [[r["label"]] + [_fmt(r.get(k)) for _, k in LABEL_COLUMNS] for r in report["labels"]],
        )
    )
    out += ["", "Per annotator pair (micro over labels)"]
    prow = [
        [f"{r['annotator_a']} / {r['annotator_b']}", str(r["articles"])]
        + [_fmt(r.get(k, NAN)) for _, k in PAIR_COLUMNS]
        for r in report["pairs"]
        if r["label"] == "micro"
    ]
    out.append(_grid(["pair", "articles"] + [h for h, _ in PAIR_COLUMNS], prow))
    rel = report["relations"]["overall"]
    out += [
        "",
        f"Relations: F1 {_fmt(rel['relation_f1'])}, conditional on matched endpoints "
        f"{_fmt(rel['relation_f1_conditional'])} ({rel['links']} links)",
    ]
    att = report.get("attributions", {}).get("overall")
    if att:
        out.append(
            f"Attributions ({att['attributions']} quotes compared): quote F1 "
            f"{_fmt(att['attribution_f1'])} (exact {_fmt(att['attribution_f1_exact'])}); "
            f"with speaker and cue {_fmt(att['attribution_f1_full'])} "
            f"(exact {_fmt(att['attribution_f1_full_exact'])})"
        )
    if report["lowest_articles"]:
        out += ["", "Lowest-agreement articles"]
        out.append(
            _grid(
                ["article", "token alpha", "F1 IoU", "alpha_U", "link"],
                [
                    [
                        r["article_id"],
                        _fmt(r["token_alpha"]),
                        _fmt(r["span_f1_overlap"]),
                        _fmt(r["alpha_u"]),
                        r["link"] or "-",
                    ]
                    for r in report["lowest_articles"]
                ],
            )
        )
    if report.get("honeypots"):
        out += ["", "Against honeypot gold (95% CI)", _grid(*_honeypot_rows(report["honeypots"]))]
    for n in report.get("notes", []):
        out.append(f"note: {n}")
    return "\n".join(out) + "\n"


def _honeypot_rows(scores: list[dict], show=str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-annotator honeypot scores (value [low, high])."""

    def cell(v: dict) -> str:
        ci = "" if math.isnan(v["ci_low"]) else f" [{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}]"
        return _fmt(v["value"]) + ci

    keys = ("span_f1", "span_f1_exact", "token_alpha")
    rows = [
        [show(r["annotator"]), str(r["articles"])]
        + [str(r.get(k, 0)) for k in ("gold_remade", "gold_gone")]
        + [cell(r[k]) for k in keys]
        for r in scores
    ]
    header = ["annotator", "honeypots", "gold re-made since push", "not scored: gold gone"]
    return header + ["span F1 (IoU)", "span F1 exact", "token alpha"], rows


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(report: dict) -> str:
    """The report as JSON; NaN (undefined) becomes null."""
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    return json.dumps(_jsonable(public), indent=2, ensure_ascii=False)


def _csv_rows(report: dict):
    skip = {"label", "annotator_a", "annotator_b", "articles"}
    for k, v in report["summary"].items():
        yield ["summary", "", "", "", k, v["value"], v["ci_low"], v["ci_high"]]
    for r in report["labels"]:
        for k, v in r.items():
            if k not in skip:
                yield ["label", r["label"], "", "", k, v, "", ""]
    for r in report["pairs"]:
        for k, v in r.items():
            if k not in skip:
                yield ["pair", r["label"], r["annotator_a"], r["annotator_b"], k, v, "", ""]
    for r in [{"label": "all", **report["relations"]["overall"]}] + report["relations"]["by_label"]:
        for k, v in r.items():
            if k != "label":
                yield ["relation", r["label"], "", "", k, v, "", ""]
    att = report.get("attributions")
    if att:
        for k, v in att["overall"].items():
            yield ["attribution", "all", "", "", k, v, "", ""]
        for r in att["pairs"]:
            for k, v in r.items():
                if k not in ("annotator_a", "annotator_b", "articles"):
                    yield ["attribution", "all", r["annotator_a"], r["annotator_b"], k, v, "", ""]


def to_csv(report: dict) -> str:
    """The report as CSV, one row per scope/label/pair/measure (undefined = empty, formulas neutralised)."""
    header = [
        "scope",
        "label",
        "annotator_a",
        "annotator_b",
        "measure",
        "value",
        "ci_low",
        "ci_high",
    ]
    return csv_text(header, _csv_rows(report))


def to_html(report: dict, names: dict | None = None) -> str:
    """A self-contained HTML page (see :func:`render_html`).

    ``names``: pseudonym -> name to show beside it (``agree --show-names``, local use only).
    """
    return render_html(report, names)
