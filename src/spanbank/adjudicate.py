"""Adjudication: several annotators' spans of an article -> one gold annotation plus its conflicts.

How it decides (the same for one article or a frame of many):

1. **Groups.** Each pair of annotators' spans is aligned one-to-one with
   :func:`spanbank.agreement.coefficients.align_span_arrays` (same label, IoU >= 0.5, greedy by IoU);
   aligned spans are joined transitively into groups across all annotators. A span one
   annotator drew twice alike (label, offsets, fragments) is aligned once and its copies
   join its group, so they count once (a ``merge`` conflict). A group has
   one label; its *support* is the number of distinct annotators with a span in it.
2. **Which groups survive** (n = annotators of the article, k = ``min_votes``, default
   ``n // 2 + 1``, i.e. more than half):

   - ``majority``: support >= k;
   - ``union``: every group;
   - ``intersection``: support == n;
   - ``prefer:ANNOTATOR``: that annotator wins every conflict they took part in: each
     group holding one of their spans survives with their boundaries and attributes;
     groups only others drew survive by majority (support >= k). Their relations win the
     same way. An article they did not annotate is adjudicated by majority.
3. **Boundaries.** The (start, end) drawn by most annotators of the group; a tie goes to
   the earliest start, then the longest span, and is reported as a ``tie`` conflict. A
   discontinuous span (``fragments``) is one unit: it aligns over its fragments' characters
   and its whole fragment set is one boundary vote, so annotators who drew the same
   fragments agree exactly.
4. **Attributes.** Per key, the value most of the group's annotators gave (an annotator
   without the key votes for "no value"); a tie goes to a real value over none, then to
   the smallest value, and is reported as a ``tie``.
5. **Relations.** An annotator's relation votes for (group of its source, group of its
   target, label). It survives when both endpoint groups survive and, for ``majority``,
   support >= k; ``intersection``: support == n; ``union``: always.

Conflict kinds (``detail`` is JSON naming annotators by their pseudonyms):
``missing`` (a group not every annotator drew; ``kept`` says whether it survived),
``min_votes`` (a group every annotator drew, dropped because ``min_votes`` is more than the
article's annotators; it and any dropped ``missing`` group of such an article name
``min_votes`` and ``annotators``; a ``min_votes`` above every article's annotators is an error),
``boundary`` (offsets differ, clear winner), ``attribute`` (values differ, clear winner),
``tie`` (a tied boundary or attribute vote, ``on`` says which), ``label`` (two groups of
different labels at the same place, IoU >= 0.5, drawn by different annotators),
``merge`` (one annotator has several spans in one group, joined through others' spans or
drawn twice alike; their spans count once, one gold span results and their relations point at it),
``relation`` (a relation not every annotator drew). Boundary, attribute and tie
conflicts are only reported for surviving groups.

Gold span ids are ``g1``, ``g2``, ... per article, numbering all groups (dropped ones too)
by position, so a conflict's ``group_id`` is the ``span_id`` of the gold span it concerns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from spanbank.agreement.coefficients import align_span_arrays
from spanbank.errors import AdjudicationError
from spanbank.spans import fragment_list, fragments_cell, is_missing

__all__ = [
    "CONFLICT_COLUMNS",
    "GOLD_RELATION_COLUMNS",
    "GOLD_SPAN_COLUMNS",
    "IOU",
    "STRATEGIES",
    "adjudicate",
    "adjudicate_article",
    "fragment_key",
    "parse_strategy",
]

IOU = 0.5
STRATEGIES = ("majority", "union", "intersection", "prefer:ANNOTATOR")
GOLD_SPAN_COLUMNS = [
    "article_id",
    "span_id",
    "label",
    "start",
    "end",
    "fragments",
    "attributes",
    "votes",
]
GOLD_RELATION_COLUMNS = ["article_id", "from_span_id", "to_span_id", "label", "votes"]
CONFLICT_COLUMNS = ["article_id", "group_id", "kind", "detail"]

_SPAN_IN = ["article_id", "annotator", "span_id", "label", "start", "end"]
_REL_IN = ["article_id", "annotator", "from_span_id", "to_span_id", "label"]


def parse_strategy(strategy: str) -> tuple[str, str | None]:
    """``"majority"`` -> ("majority", None); ``"prefer:ann"`` -> ("prefer", "ann")."""
    if strategy in ("majority", "union", "intersection"):
        return strategy, None
    if isinstance(strategy, str) and strategy.startswith("prefer:") and strategy[7:].strip():
        return "prefer", strategy[7:].strip()
    raise AdjudicationError(
        f"unknown strategy {strategy!r}; use majority, union, intersection or prefer:ANNOTATOR"
    )


def adjudicate_article(
    spans,
    relations,
    strategy: str,
    min_votes: int | None = None,
    annotators=None,
    article_id: str | None = None,
):
    """Adjudicate one article's annotations; returns (gold_spans, gold_relations, conflicts).

    ``spans``: rows (DataFrame or dicts) with annotator, span_id, label, start, end and
    optionally attributes (dict or JSON string); ``relations``: rows with annotator,
    from_span_id, to_span_id, label (may be empty). ``annotators``: everyone who
    annotated the article, including people who drew nothing (default: those appearing
    in the rows); rows of other annotators are ignored. ``strategy``: ``majority``,
    ``union``, ``intersection`` or ``prefer:ANNOTATOR``; ``min_votes``: support a group
    needs under majority (default more than half). Returned frames: see
    :data:`GOLD_SPAN_COLUMNS` (attributes as dicts), :data:`GOLD_RELATION_COLUMNS`,
    :data:`CONFLICT_COLUMNS`; rules in the module docstring.
    """
    sp = _frame(spans, _SPAN_IN[1:], "spans")
    rel = _frame(relations, _REL_IN[1:], "relations")
    if article_id is None:
        ids = (
            pd.concat(
                [
                    sp.get("article_id", pd.Series(dtype=object)),
                    rel.get("article_id", pd.Series(dtype=object)),
                ]
            )
            .dropna()
            .unique()
        )
        if len(ids) > 1:
            raise AdjudicationError(
                f"adjudicate_article got rows of {len(ids)} articles; use adjudicate() for many"
            )
        article_id = ids[0] if len(ids) else None
    key = "" if article_id is None else article_id
    sp = sp.assign(article_id=key)
    rel = rel.assign(article_id=key)
    roster = None if annotators is None else {key: list(annotators)}
    gold, links, conflicts = adjudicate(sp, rel, strategy, min_votes=min_votes, annotators=roster)
    if article_id is None:
        for df in (gold, links, conflicts):
            df["article_id"] = None
    return gold, links, conflicts


def adjudicate(spans, relations, strategy: str, min_votes: int | None = None, annotators=None):
    """Adjudicate many articles at once; returns (gold_spans, gold_relations, conflicts).

    As :func:`adjudicate_article`, with an ``article_id`` column in both inputs.
    ``annotators``: who annotated each article — a mapping article_id -> list of
    annotators, or a DataFrame with article_id and annotator columns (default: the
    annotators appearing in each article's rows).
    """
    mode, preferred = parse_strategy(strategy)
    if min_votes is not None and (int(min_votes) != min_votes or min_votes < 1):
        raise AdjudicationError(f"min_votes must be a whole number >= 1, got {min_votes!r}")
    sp = _frame(spans, _SPAN_IN, "spans")
    rel = _frame(relations, _REL_IN, "relations")
    roster = _roster(annotators, sp, rel)
    _check_min_votes(min_votes, roster["n"])
    if annotators is not None:
        sp = sp.merge(roster[["article_id", "annotator"]], on=["article_id", "annotator"])
        rel = rel.merge(roster[["article_id", "annotator"]], on=["article_id", "annotator"])
    if sp.empty:
        return _empty(GOLD_SPAN_COLUMNS), _empty(GOLD_RELATION_COLUMNS), _empty(CONFLICT_COLUMNS)

    sp["start"] = sp["start"].astype(np.int64)
    sp["end"] = sp["end"].astype(np.int64)
    sp["fkey"] = [fragment_key(f) for f in sp["fragments"]]
    sp = sp.sort_values(
        ["article_id", "annotator", "start", "end", "label", "span_id"], kind="stable"
    ).reset_index(drop=True)
    sp = sp.merge(roster, on=["article_id", "annotator"], how="left", validate="many_to_one")

    sp["comp"] = _components(len(sp), *_edges(sp))
    groups = _groups(sp, roster, mode, preferred, min_votes)
    attrs, attr_conflicts = _attributes(sp, groups, preferred)
    groups["attributes"] = groups.index.map(lambda c: attrs.get(c, {}))

    gold = groups[groups["kept"]].reset_index(drop=True)
    gold = gold.rename(columns={"gid": "span_id", "cs": "start", "ce": "end", "support": "votes"})
    gold["fragments"] = [_fragments_of(k) for k in gold["cf"]]
    gold = gold[GOLD_SPAN_COLUMNS]

    everyone = {a: set(x) for a, x in roster.groupby("article_id")["annotator"]}
    links, rel_conflicts = _relations(sp, rel, groups, mode, preferred, everyone)
    conflicts = pd.concat(
        [
            _span_conflicts(sp, groups, everyone),
            attr_conflicts,
            _label_conflicts(groups),
            rel_conflicts,
        ],
        ignore_index=True,
    )
    if conflicts.empty:
        conflicts = _empty(CONFLICT_COLUMNS)
    else:
        conflicts = conflicts.sort_values(["article_id", "_order", "kind"], kind="stable")
        conflicts = conflicts[CONFLICT_COLUMNS].reset_index(drop=True)
    return gold, links, conflicts


# --------------------------------------------------------------------------- input


def _frame(rows, cols: list[str], who: str) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        df = rows.copy()
    else:
        rows = list(rows) if rows is not None else []
        df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AdjudicationError(f"{who} rows lack column(s) {', '.join(missing)}")
    if who == "spans":
        for col in ("attributes", "fragments"):
            if col not in df.columns:
                df[col] = None
    return df.reset_index(drop=True)


def _roster(annotators, sp: pd.DataFrame, rel: pd.DataFrame) -> pd.DataFrame:
    """article_id, annotator, slot (0..n-1 by name), n: who annotated each article."""
    if annotators is None:
        pairs = pd.concat([sp[["article_id", "annotator"]], rel[["article_id", "annotator"]]])
    elif isinstance(annotators, pd.DataFrame):
        pairs = annotators[["article_id", "annotator"]]
    elif isinstance(annotators, Mapping):
        pairs = pd.DataFrame(
            [(a, x) for a, xs in annotators.items() for x in xs],
            columns=["article_id", "annotator"],
        )
    else:
        raise AdjudicationError("annotators must be a mapping article_id -> list or a DataFrame")
    if pairs["annotator"].isna().any() or pairs["article_id"].isna().any():
        raise AdjudicationError("every row needs an article_id and an annotator")
    pairs = pairs.drop_duplicates().sort_values(["article_id", "annotator"]).reset_index(drop=True)
    pairs["slot"] = pairs.groupby("article_id").cumcount()
    pairs["n"] = pairs.groupby("article_id")["annotator"].transform("size")
    return pairs


def _check_min_votes(min_votes, n: pd.Series) -> None:
    """Refuse a min_votes no article can reach (each article's n given): it would keep no span."""
    if min_votes is None or n.empty or min_votes <= n.max():
        return
    have = f"{n.max()}" if n.min() == n.max() else f"{n.min()} to {n.max()}"
    raise AdjudicationError(
        f"min_votes {min_votes} is more than the annotators of any article here "
        f"(they have {have}), so no span could be kept; use at most {n.max()}"
    )


def _attrs(value) -> dict:
    # Kept local (corpus.parse_attributes is the store's twin): this module stays pure.
    if value is None or (isinstance(value, float) and value != value):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        raise AdjudicationError(
            f"span attributes are not a dict or JSON object: {value!r}"
        ) from None
    if not isinstance(parsed, dict):
        raise AdjudicationError(f"span attributes are not a JSON object: {value!r}")
    return parsed


def fragment_key(fragments) -> str:
    """A span's fragment set as one comparable value: "" when contiguous, else "s-e;s-e"."""
    if is_missing(fragments):
        return ""
    return ";".join(f"{s}-{e}" for s, e in fragment_list(0, 0, fragments))


def _fragments_of(fkey: str):
    """The `fragments` cell for a key made by :func:`_fkey` (None when contiguous)."""
    if not fkey:
        return None
    return fragments_cell([tuple(int(x) for x in p.split("-")) for p in fkey.split(";")])


def _drawn(start: int, end: int, fkey: str) -> list:
    """How a conflict shows one drawn span: [start, end], or its fragments' [start, end]s."""
    if not fkey:
        return [int(start), int(end)]
    return [[f["start"], f["end"]] for f in _fragments_of(fkey)]


def _empty(cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def _decode(value):
    """An attribute value voted on as JSON text back to itself; None/NaN = no value."""
    return (
        None
        if value is None or (isinstance(value, float) and value != value)
        else json.loads(value)
    )


def _js(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------- groups


def _edges(sp: pd.DataFrame):
    """Edges joining spans into groups: alignment between annotators' distinct spans, and each
    copy of a span one annotator drew twice to its first copy (aligned apart, a copy became a
    group of its own: a second gold span, reported as not drawn by the others)."""
    same = ["article_id", "annotator", "label", "start", "end", "fkey"]
    rows = np.arange(len(sp))
    first = sp.assign(i=rows).groupby(same, sort=False, dropna=False)["i"].transform("first")
    distinct = rows[first.to_numpy() == rows]
    u, v = _align_all(sp.iloc[distinct])
    return np.concatenate([distinct[u], rows]), np.concatenate([distinct[v], first.to_numpy()])


def _align_all(sp: pd.DataFrame):
    """Edges (i, j) between aligned spans of every pair of annotator slots, all articles at once."""
    code = sp.groupby(["article_id", "label"], sort=False).ngroup().to_numpy()
    slot = sp["slot"].to_numpy()
    start, end = sp["start"].to_numpy(), sp["end"].to_numpy()
    frags = sp["fragments"].to_numpy(object) if (sp["fkey"] != "").any() else None
    us, vs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    m = int(slot.max()) + 1
    by_slot = [np.flatnonzero(slot == p) for p in range(m)]
    for p in range(m):
        a = by_slot[p]
        for q in range(p + 1, m):
            b = by_slot[q]
            fa, fb = (None, None) if frags is None else (frags[a], frags[b])
            ia, ib = align_span_arrays(
                code[a], start[a], end[a], code[b], start[b], end[b], IOU, fa, fb
            )
            us.append(a[ia])
            vs.append(b[ib])
    return np.concatenate(us), np.concatenate(vs)


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components: each node labelled with the smallest node index of its component."""
    lab = np.arange(n)
    while True:
        new = lab.copy()
        np.minimum.at(new, u, lab[v])
        np.minimum.at(new, v, lab[u])
        new = new[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


def _groups(sp, roster, mode, preferred, min_votes) -> pd.DataFrame:
    """One row per group (index comp): article, label, chosen offsets, support, kept, gid."""
    g = sp.groupby("comp", sort=True)
    groups = pd.DataFrame(
        {
            "article_id": g["article_id"].first(),
            "label": g["label"].first(),
            "support": g["annotator"].nunique(),
            "n": g["n"].first(),
            "by": g["annotator"].agg(lambda s: sorted(set(s))),
        }
    )
    votes = (
        sp.groupby(["comp", "start", "end", "fkey"])["annotator"]
        .nunique()
        .rename("count")
        .reset_index()
    )
    votes = votes.assign(neg_end=-votes["end"], neg_count=-votes["count"])
    votes = votes.sort_values(["comp", "neg_count", "start", "neg_end"], kind="stable")
    rank = votes.groupby("comp").cumcount()
    top = votes[rank == 0].set_index("comp")
    second = votes[rank == 1].set_index("comp")
    groups["cs"] = top["start"]
    groups["ce"] = top["end"]
    groups["cf"] = top["fkey"]
    groups["n_bounds"] = votes.groupby("comp").size()
    groups["tie"] = (second["count"].reindex(groups.index) == top["count"]).fillna(False)
    groups["has_pref"] = False
    if preferred is not None:
        own = sp[sp["annotator"] == preferred].drop_duplicates("comp").set_index("comp")
        groups.loc[own.index, "cs"] = own["start"]
        groups.loc[own.index, "ce"] = own["end"]
        groups.loc[own.index, "cf"] = own["fkey"]
        groups.loc[own.index, "has_pref"] = True
        groups.loc[own.index, "tie"] = False
    groups["k"] = groups["n"] // 2 + 1 if min_votes is None else int(min_votes)
    groups["kept"] = _survives(
        mode, groups["support"], groups["n"], groups["k"], groups["has_pref"]
    )
    groups = groups.assign(neg_ce=-groups["ce"], comp_=groups.index).sort_values(
        ["article_id", "cs", "neg_ce", "label", "comp_"], kind="stable"
    )
    groups["order"] = groups.groupby("article_id").cumcount() + 1
    groups["gid"] = "g" + groups["order"].astype(str)
    return groups.drop(columns=["neg_ce", "comp_"]).sort_index()


def _survives(mode, support, n, k, has_pref):
    if mode == "majority":
        return support >= k
    if mode == "union":
        return pd.Series(True, index=support.index)
    if mode == "intersection":
        return support == n
    return has_pref | (support >= k)  # prefer


# --------------------------------------------------------------------------- attributes


def _attributes(sp, groups, preferred):
    """Voted attributes per group ({comp: dict}) and attribute/tie conflicts of kept groups."""
    members = sp.drop_duplicates(["comp", "annotator"])  # an annotator's first span in a group
    long = pd.DataFrame(
        [
            (c, a, k, _js(v))
            for c, a, d in zip(
                sp["comp"], sp["annotator"], sp["attributes"].map(_attrs), strict=True
            )
            for k, v in d.items()
            if v is not None and not str(k).startswith("_")  # bookkeeping, not a choice
        ],
        columns=["comp", "annotator", "key", "value"],
    ).drop_duplicates()
    if long.empty:
        return {}, _empty(CONFLICT_COLUMNS + ["_order"])
    keys = long[["comp", "key"]].drop_duplicates()
    # An annotator who drew the span twice with two values of a key does not vote on it.
    split = long.duplicated(["comp", "annotator", "key"], keep=False)
    torn = long[split]
    long = long[~split]
    cells = (
        members[["comp", "annotator"]]
        .merge(keys, on="comp")
        .merge(long, on=["comp", "annotator", "key"], how="left")
    )
    if len(torn):
        abstain = pd.MultiIndex.from_frame(torn[["comp", "annotator", "key"]])
        cells = cells[~pd.MultiIndex.from_frame(cells[["comp", "annotator", "key"]]).isin(abstain)]
    cells["none"] = cells["value"].isna()
    counts = (
        cells.fillna({"value": ""})
        .groupby(["comp", "key", "none", "value"])["annotator"]
        .nunique()
        .rename("count")
        .reset_index()
    )
    counts = counts.assign(neg=-counts["count"]).sort_values(
        ["comp", "key", "neg", "none", "value"], kind="stable"
    )
    rank = counts.groupby(["comp", "key"]).cumcount()
    top = counts[rank == 0].set_index(["comp", "key"])
    second = counts[rank == 1].set_index(["comp", "key"])
    tie = (second["count"].reindex(top.index) == top["count"]).fillna(False)
    chosen = top["value"].where(~top["none"], None)
    if preferred is not None:
        own = cells[cells["annotator"] == preferred].set_index(["comp", "key"])["value"]
        chosen.loc[own.index] = own.where(own.notna(), None)
        tie.loc[own.index] = False

    attrs: dict = {}
    for (comp, key), value in chosen.items():
        d = attrs.setdefault(comp, {})
        if (decoded := _decode(value)) is not None:
            d[key] = decoded

    n_values = counts.groupby(["comp", "key"]).size()
    disputed = set(n_values[n_values > 1].index) | set(zip(torn["comp"], torn["key"], strict=True))
    kept = set(groups.index[groups["kept"]])
    votes: dict = {}
    for comp, annotator, key, value in zip(
        cells["comp"], cells["annotator"], cells["key"], cells["value"], strict=True
    ):
        if comp in kept and (comp, key) in disputed:
            votes.setdefault((comp, key), {})[annotator] = _decode(value)
    for comp, annotator, key, value in zip(
        torn["comp"], torn["annotator"], torn["key"], torn["value"], strict=True
    ):
        if comp in kept:  # both values, as a list: this annotator's vote went to neither
            mine = votes.setdefault((comp, key), {}).setdefault(annotator, [])
            mine.append(_decode(value))
            mine.sort(key=_js)
    info = _info(groups)
    tie, chosen = tie.to_dict(), chosen.to_dict()
    rows = [
        _conflict(
            info[comp],
            "tie" if tie[(comp, key)] else "attribute",
            {
                "on": f"attribute:{key}",
                "label": info[comp]["label"],
                "votes": v,
                "chosen": _decode(chosen[(comp, key)]),
            },
        )
        for (comp, key), v in votes.items()
    ]
    return attrs, pd.DataFrame(rows, columns=CONFLICT_COLUMNS + ["_order"])


# --------------------------------------------------------------------------- conflicts


def _info(groups) -> dict:
    cols = ["article_id", "label", "gid", "order", "cs", "ce", "cf", "by", "kept", "tie", "k", "n"]
    return groups[cols].to_dict("index")


def _span_conflicts(sp, groups, everyone) -> pd.DataFrame:
    info = _info(groups)
    rows = []
    for comp in groups.index[(groups["support"] < groups["n"]) | ~groups["kept"]]:
        g = info[comp]
        detail = {
            "label": g["label"],
            "start": int(g["cs"]),
            "end": int(g["ce"]),
            "by": g["by"],
            "kept": bool(g["kept"]),
        }
        if not_by := sorted(everyone.get(g["article_id"], set()) - set(g["by"])):
            detail["not_by"] = not_by
        if not g["kept"] and g["k"] > g["n"]:  # this article can keep no span
            detail |= {"min_votes": int(g["k"]), "annotators": int(g["n"])}
        rows.append(_conflict(g, "missing" if not_by else "min_votes", detail))
    # every group's spans per annotator, in one pass (sp is sorted by annotator, start, end)
    drawn: dict = {}
    for comp, annotator, start, end, fkey in zip(
        sp["comp"], sp["annotator"], sp["start"], sp["end"], sp["fkey"], strict=True
    ):
        drawn.setdefault(comp, {}).setdefault(annotator, []).append(_drawn(start, end, fkey))
    split = groups.index[groups["kept"] & (groups["n_bounds"] > 1)]
    for comp in split:
        g = info[comp]
        detail = {
            "on": "boundary",
            "label": g["label"],
            "votes": {a: (b[0] if len(b) == 1 else b) for a, b in drawn[comp].items()},
            "chosen": _drawn(g["cs"], g["ce"], g["cf"]),
        }
        rows.append(_conflict(g, "tie" if g["tie"] else "boundary", detail))
    for comp, by_annotator in drawn.items():
        for annotator, bounds in by_annotator.items():
            if len(bounds) > 1:
                g = info[comp]
                detail = {
                    "label": g["label"],
                    "annotator": annotator,
                    "spans": bounds,
                    "chosen": _drawn(g["cs"], g["ce"], g["cf"]),
                    "kept": bool(g["kept"]),
                }
                rows.append(_conflict(g, "merge", detail))
    return pd.DataFrame(rows, columns=CONFLICT_COLUMNS + ["_order"])


def _conflict(g, kind: str, detail: dict) -> dict:
    return {
        "article_id": g["article_id"],
        "group_id": g["gid"],
        "_order": g["order"],
        "kind": kind,
        "detail": _js(detail),
    }


def _label_conflicts(groups) -> pd.DataFrame:
    """Groups of different labels at the same place (IoU >= 0.5) drawn by different people."""
    g = groups.reset_index()[
        ["comp", "article_id", "label", "cs", "ce", "by", "kept", "gid", "order"]
    ]
    pairs = g.merge(g, on="article_id", suffixes=("_a", "_b"))
    pairs = pairs[pairs["label_a"] < pairs["label_b"]]
    inter = np.minimum(pairs["ce_a"], pairs["ce_b"]) - np.maximum(pairs["cs_a"], pairs["cs_b"])
    union = (pairs["ce_a"] - pairs["cs_a"]) + (pairs["ce_b"] - pairs["cs_b"]) - inter.clip(lower=0)
    iou = inter.clip(lower=0) / union.where(union > 0, 1)
    same = (pairs["cs_a"] == pairs["cs_b"]) & (pairs["ce_a"] == pairs["ce_b"])
    pairs = pairs[same | ((inter > 0) & (iou >= IOU))]
    rows = []
    for p in pairs.to_dict("records"):
        if set(p["by_a"]) & set(p["by_b"]):
            continue  # somebody drew both: nested/overlapping spans, not a disagreement
        first, second = sorted(["a", "b"], key=lambda s: p[f"order_{s}"])
        labels = {a: p[f"label_{s}"] for s in (first, second) for a in p[f"by_{s}"]}
        rows.append(
            {
                "article_id": p["article_id"],
                "group_id": f"{p[f'gid_{first}']}|{p[f'gid_{second}']}",
                "_order": p[f"order_{first}"],
                "kind": "label",
                "detail": _js(
                    {
                        "labels": labels,
                        "groups": {
                            p[f"gid_{s}"]: {
                                "label": p[f"label_{s}"],
                                "start": int(p[f"cs_{s}"]),
                                "end": int(p[f"ce_{s}"]),
                                "by": p[f"by_{s}"],
                                "kept": bool(p[f"kept_{s}"]),
                            }
                            for s in (first, second)
                        },
                    }
                ),
            }
        )
    return pd.DataFrame(rows, columns=CONFLICT_COLUMNS + ["_order"])


# --------------------------------------------------------------------------- relations


def _relations(sp, rel, groups, mode, preferred, everyone):
    ends = sp[["article_id", "annotator", "span_id", "comp"]].drop_duplicates(
        ["article_id", "annotator", "span_id"]
    )
    # Relations pointing at spans we do not have (e.g. rejected on pull) cannot be voted on.
    r = rel.merge(
        ends.rename(columns={"span_id": "from_span_id", "comp": "cf"}),
        on=["article_id", "annotator", "from_span_id"],
    )
    r = r.merge(
        ends.rename(columns={"span_id": "to_span_id", "comp": "ct"}),
        on=["article_id", "annotator", "to_span_id"],
    )
    if r.empty:
        return _empty(GOLD_RELATION_COLUMNS), _empty(CONFLICT_COLUMNS + ["_order"])
    agg = r.groupby(["article_id", "cf", "ct", "label"])["annotator"]
    links = pd.DataFrame(
        {"support": agg.nunique(), "by": agg.agg(lambda s: sorted(set(s)))}
    ).reset_index()
    gf, gt = groups.loc[links["cf"]], groups.loc[links["ct"]]
    links["n"] = gf["n"].to_numpy()
    links["k"] = gf["k"].to_numpy()
    ends_kept = gf["kept"].to_numpy() & gt["kept"].to_numpy()
    if mode != "prefer":
        vote = _survives(mode, links["support"], links["n"], links["k"], None)
    else:
        pref_both = (
            gf["by"].map(lambda b: preferred in b).to_numpy()
            & gt["by"].map(lambda b: preferred in b).to_numpy()
        )
        pref_linked = links["by"].map(lambda b: preferred in b).to_numpy()
        vote = pd.Series(
            np.where(pref_both, pref_linked, links["support"] >= links["k"]), index=links.index
        )
    links["kept"] = ends_kept & vote.to_numpy()
    links["from_span_id"] = gf["gid"].to_numpy()
    links["to_span_id"] = gt["gid"].to_numpy()
    links["order"] = gf["order"].to_numpy()
    links["ends_kept"] = ends_kept

    rows = []
    for x in links[links["support"] < links["n"]].to_dict("records"):
        rows.append(
            {
                "article_id": x["article_id"],
                "group_id": f"{x['from_span_id']}->{x['to_span_id']}",
                "_order": x["order"],
                "kind": "relation",
                "detail": _js(
                    {
                        "label": x["label"],
                        "from": x["from_span_id"],
                        "to": x["to_span_id"],
                        "by": x["by"],
                        "not_by": sorted(everyone.get(x["article_id"], set()) - set(x["by"])),
                        "kept": bool(x["kept"]),
                        **({} if x["ends_kept"] else {"reason": "an endpoint did not survive"}),
                    }
                ),
            }
        )
    out = links[links["kept"]].rename(columns={"support": "votes"})
    out = out.sort_values(["article_id", "order", "to_span_id", "label"], kind="stable")
    return out[GOLD_RELATION_COLUMNS].reset_index(drop=True), pd.DataFrame(
        rows, columns=CONFLICT_COLUMNS + ["_order"]
    )
