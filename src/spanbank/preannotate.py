"""Rule-based pre-annotation of English news: QUOTE, CUE and SPEAKER spans with links.

The tagger is deliberately small and fast (pure ``re``; every pattern compiled once):

* direct quotes are found by pairing quote marks (straight and curly double quotes,
  guillemets, low-high German quotes) with a small state machine over the text; a quote
  left open at a paragraph end continues when the next paragraph opens with the same
  mark. The span includes the marks (and the comma inside them), as in the gold data.
* cues come from the lexicon ``spanbank/data/reporting_verbs.txt`` (every inflection
  spelled out) plus "according to" and "quoted X as saying".
* speakers are the noun phrase next to the cue ("Kremlin spokesperson Dmitry Peskov
  confirmed", "he said", "said Peskov", "according to TASS"), pronouns included.
* indirect quotes are "X said (that) CONTENT." and "CONTENT, X said." inside one sentence.
* a direct quote interrupted by its attribution (“A,” he said, “B.”) is one QUOTE with two
  fragments, linked once.

Offsets are Python code-point indices into the text, end exclusive.
"""

from __future__ import annotations

import bisect
import json
import re
from importlib import resources

from spanbank.agreement.coefficients import align_spans, prf
from spanbank.errors import SpanbankError
from spanbank.spans import fragments_cell, joined_text

TAGGER_VERSION = "spanbank-rules-0.1"

LABELS = ("SPEAKER", "QUOTE", "CUE")

# --------------------------------------------------------------------------- lexicon


def _load_lexicon() -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """(verb forms, forms that need "that", source-after phrases) from the lexicon file."""
    try:
        raw = resources.files("spanbank").joinpath("data/reporting_verbs.txt").read_text("utf-8")
    except OSError as exc:  # a broken install, not a user mistake, but say what is missing
        raise SpanbankError(f"reporting-verb lexicon missing from the package: {exc}") from exc
    verbs: set[str] = set()
    need_that: set[str] = set()
    after: list[str] = []
    section = None
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.strip("[] ")
        elif section in ("verbs", "verbs_that"):
            # a line with spaces that is one phrase ("quoted as saying") stays a phrase
            forms = [line] if line.startswith("quoted ") else line.split()
            verbs.update(f.lower() for f in forms)
            if section == "verbs_that":
                need_that.update(f.lower() for f in forms)
        elif section == "source_after":
            after.append(line.lower())
        else:
            raise SpanbankError(f"reporting_verbs.txt: entry {line!r} outside a known section")
    return frozenset(verbs), frozenset(need_that), tuple(after)


REPORTING_VERBS, _NEEDS_THAT, SOURCE_AFTER = _load_lexicon()


def _phrase_re(phrase: str, *, capital: bool) -> str:
    words = [re.escape(w) for w in phrase.split()]
    if capital:
        words[0] = f"[{words[0][0].upper()}{words[0][0]}]{words[0][1:]}"
    return r"\s+".join(words)


_NAME_TOKEN = r"[\w][\w.'’&-]*"
# Alternation order matters: the longest, most specific patterns first.
_CUE = re.compile(
    r"(?<![\w-])(?:"
    r"(?P<qx>quot(?:ed|es|ing)\s+(?P<qsp>" + _NAME_TOKEN + r"(?:\s+" + _NAME_TOKEN + r"){0,4}?)"
    r"\s+as\s+saying)"
    r"|(?P<after>" + "|".join(_phrase_re(p, capital=True) for p in SOURCE_AFTER) + r")"
    r"|(?P<verb>"
    + "|".join(_phrase_re(v, capital=False) for v in sorted(REPORTING_VERBS, key=len, reverse=True))
    + r")"
    r")(?![\w-])"
)

# --------------------------------------------------------------------------- word lists

_WORD = re.compile(r"\w+(?:[.'’&-]\w+)*")
_PRONOUNS = frozenset("he she they we i it".split())
_DETERMINERS = frozenset(
    "the a an his her its their our my your this these those one another some several "
    "many two three both".split()
)
# Words that never occur inside a speaker noun phrase: they mean a clause, not a name.
_NOT_IN_NP = frozenset(
    "who whom which that when where while if because although though whether what how why "
    "was were is are be been being am not no as than said says asked would will could "
    "should can may might must has have had did does do".split()
)
# Dropped between a speaker and the cue ("Peskov also noted", "has repeatedly said").
_BETWEEN = frozenset(
    "also further later then again previously earlier repeatedly reportedly once recently "
    "separately publicly initially already subsequently simply just only still even first "
    "has have had was is were are will would did does do 's had been has been "
    "never often today yesterday tonight".split()
)
_AUX = frozenset("is are was were be been am 's".split())
_LEAD_CONJ = frozenset("and but so yet or".split())
_PREPOSITIONS = frozenset(
    "on in at during after before to with from for per via by over about amid following "
    "earlier later last this yesterday today tonight monday tuesday wednesday thursday "
    "friday saturday sunday".split()
)
# A sentence opening with one of these and a comma starts with an adverbial that is not
# part of the reported content ("During the call, Macron reaffirmed ...").
_LEAD_ADVERBIAL = frozenset(
    "during in on at after before following earlier later meanwhile however yesterday "
    "today also separately since amid overall still instead moreover additionally "
    "furthermore nevertheless last this then previously".split()
)
# "said little", "says nothing": an object, not reported content
_NOT_CONTENT = frozenset("little nothing much more so yes no goodbye hello sorry thanks".split())
_SCARE_PREFIX = re.compile(r"(?:so-called|dubbed|called|termed|known\s+as|labell?ed|nicknamed)\s*$")
_ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. prof. gen. sen. rep. gov. st. lt. col. sgt. capt. cmdr. adm. jr. sr. "
    "u.s. u.k. u.n. e.g. i.e. vs. no. inc. corp. co. ltd. jan. feb. mar. apr. jun. jul. "
    "aug. sep. sept. oct. nov. dec. approx. est. fig. pres. rev. hon. mt. ft.".split()
)

# --------------------------------------------------------------------------- regexes

_QMARK = re.compile(r"[\"“”„«»\n]")
_CLOSERS = {"“": "”", "„": "“”", "«": "»", '"': '"'}
_PARAGRAPH = re.compile(r"[^\n]+")
_SENT_END = re.compile(r"[.!?]+[\"”’»)]*\s+")
_CLAUSE_BREAK = re.compile(r"[,;:—–(\[)\]]")
_CLAUSE_END = re.compile(r"[,.;:!?\n\"“”„«»()—–]")
_TRAIL = re.compile(r"[\s.!?;:,]+$")

_WINDOW = 400  # characters searched around a cue or a quote for its attribution

_SCORE = {
    "direct": 0.9,
    "direct_inherited": 0.6,
    "direct_bare": 0.5,
    "indirect": 0.7,
    "speaker": 0.8,
    "pronoun": 0.7,
    "cue": 0.9,
}


# --------------------------------------------------------------------------- noun phrases


def _tokens(text: str, lo: int, hi: int) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text, lo, hi)]


def _valid_np(toks: list[tuple[int, int, str]]) -> tuple[int, int] | None:
    """(start, end) of toks if they read as a speaker noun phrase, else None."""
    if not toks or len(toks) > 8:
        return None
    first = toks[0][2]
    low = first.lower()
    if low in _PRONOUNS:
        return (toks[0][0], toks[0][1]) if len(toks) == 1 else None
    if any(t[2].lower() in _NOT_IN_NP for t in toks):
        return None
    if low in _DETERMINERS:
        if len(toks) < 2:
            return None
    elif not (first[0].isupper() or first[0].isdigit()):
        return None
    return toks[0][0], toks[-1][1]


def _subject_before(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The noun phrase ending right before a cue at hi, looking no further back than lo."""
    toks = _tokens(text, lo, hi)
    while toks and toks[-1][2].lower() in _BETWEEN:
        toks.pop()
    while toks and toks[0][2].lower() in _LEAD_CONJ:
        toks.pop(0)
    return _valid_np(toks)


def _object_after(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The noun phrase filling text[lo:hi] after a cue ("said Peskov on Monday" -> Peskov).

    Only a preposition may end it early: "said the city would build ..." is no speaker.
    """
    toks = []
    for t in _tokens(text, lo, hi):
        if toks and t[2].lower() in _PREPOSITIONS:
            break
        toks.append(t)
    return _valid_np(toks)


def _clause_start(text: str, lo: int, hi: int) -> tuple[int, str]:
    """Start of the clause that ends at hi, and the break character before it ('' if none).

    Looks back at most _WINDOW characters: a speaker is a few words, and an unbounded
    look-back would make one huge paragraph quadratic.
    """
    best = -1
    lo = max(lo, hi - _WINDOW)
    for m in _CLAUSE_BREAK.finditer(text, lo, hi):
        best = m.start()
    if best < 0:
        return lo, ""
    return best + 1, text[best]


def _n_words(text: str, lo: int, hi: int) -> int:
    return len(_WORD.findall(text, lo, hi))


# --------------------------------------------------------------------------- structure


def _paragraphs(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _PARAGRAPH.finditer(text):
        lo, hi = m.start(), m.end()
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
        while lo < hi and text[lo].isspace():
            lo += 1
        if hi > lo:
            out.append((lo, hi))
    return out


def _sentences(
    text: str, lo: int, hi: int, protected: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Sentence (start, end) pairs in text[lo:hi]; never split inside a protected range.

    protected: (start, end) ranges sorted by start (looked up by bisection).
    """
    out = []
    start = lo
    for m in _SENT_END.finditer(text, lo, hi):
        nxt = m.end()
        if nxt >= hi:
            break
        c = text[nxt]
        if not (c.isupper() or c.isdigit() or c in '"“„«‘('):
            continue
        word_start = text.rfind(" ", lo, m.start()) + 1
        word = text[word_start : m.start() + 1]
        if word.lower() in _ABBREVIATIONS or (len(word) == 2 and word[0].isupper()):
            continue
        cut = m.start()
        i = bisect.bisect_left(protected, (cut,))
        if any(a < cut < b for a, b in protected[max(0, i - 2) : i]):
            continue
        out.append((start, m.end()))
        start = nxt
    out.append((start, hi))
    return out


def _content_end(text: str, lo: int, hi: int) -> int:
    m = _TRAIL.search(text, lo, hi)
    return m.start() if m else hi


def _strip_lead_adverbial(text: str, lo: int, hi: int) -> int:
    m = _WORD.search(text, lo, hi)
    if m and m.start() == lo and m.group().lower() in _LEAD_ADVERBIAL:
        comma = text.find(",", lo, hi)
        if comma > 0 and _n_words(text, lo, comma) <= 8:
            nxt = comma + 1
            while nxt < hi and text[nxt].isspace():
                nxt += 1
            return nxt
    return lo


# --------------------------------------------------------------------------- collector


class _Doc:
    """Spans keyed by (label, start, end) so several rules may propose the same span."""

    def __init__(self, text: str):
        self.text = text
        self.spans: dict[tuple[str, int, int], dict] = {}
        self.relations: list[tuple[tuple, tuple, str]] = []

    def add(self, label: str, start: int, end: int, score: float, attributes=None) -> tuple:
        key = (label, start, end)
        old = self.spans.get(key)
        if old is None or old["score"] < score:
            self.spans[key] = {"score": score, "attributes": attributes or {}}
        return key

    def extend(self, key: tuple, start: int, end: int) -> tuple:
        """Add the fragment (start, end) after the span at `key`; returns the span's new key
        (its outer bounds grow), with the links already made moved onto it."""
        label, first, last = key
        new = (label, first, end)
        info = self.spans.pop(key)
        info["parts"] = info.get("parts", [(first, last)]) + [(start, end)]
        self.spans[new] = info
        self.relations = [
            (new if q == key else q, new if t == key else t, lab) for q, t, lab in self.relations
        ]
        return new

    def link(self, quote: tuple, speaker, cue) -> None:
        if speaker is not None:
            self.relations.append((quote, speaker, "said_by"))
        if cue is not None:
            self.relations.append((quote, cue, "cue"))

    def attribution(self, speaker, cue) -> tuple[tuple | None, tuple | None]:
        """Add a speaker and a cue span; returns their keys."""
        sk = ck = None
        if speaker is not None:
            low = self.text[speaker[0] : speaker[1]].lower()
            sk = self.add("SPEAKER", *speaker, _SCORE["pronoun" if low in _PRONOUNS else "speaker"])
        if cue is not None:
            ck = self.add("CUE", *cue, _SCORE["cue"])
        return sk, ck

    def result(self) -> dict:
        order = {"QUOTE": 0, "SPEAKER": 1, "CUE": 2}
        prefix = {"QUOTE": "q", "SPEAKER": "s", "CUE": "c"}
        counters = {k: 0 for k in prefix}
        ids = {}
        spans = []
        for key in sorted(self.spans, key=lambda k: (k[1], order[k[0]], k[2])):
            label, start, end = key
            counters[label] += 1
            sid = f"{prefix[label]}{counters[label]}"
            ids[key] = sid
            info = self.spans[key]
            parts = info.get("parts", [(start, end)])
            spans.append(
                {
                    "span_id": sid,
                    "label": label,
                    "start": start,
                    "end": end,
                    "text": joined_text(self.text, parts),
                    "attributes": info["attributes"],
                    "score": info["score"],
                    "fragments": fragments_cell(parts),
                }
            )
        seen = set()
        relations = []
        for q, t, label in self.relations:
            row = (ids[q], ids[t], label)
            if row not in seen:
                seen.add(row)
                relations.append({"from_span_id": row[0], "to_span_id": row[1], "label": label})
        return {"spans": spans, "relations": relations}


# --------------------------------------------------------------------------- cues


def _cues(text: str, lo: int, hi: int) -> list[dict]:
    """Reporting cues in text[lo:hi] with their kind and (for qx) the embedded speaker."""
    out = []
    for m in _CUE.finditer(text, lo, hi):
        kind = "qx" if m.group("qx") else "after" if m.group("after") else "verb"
        cue = {"kind": kind, "start": m.start(), "end": m.end(), "form": m.group().lower()}
        if kind == "qx":
            sp = (m.start("qsp"), m.end("qsp"))
            cue["speaker"] = sp if _valid_np(_tokens(text, *sp)) else None
            if cue["speaker"] is None:
                continue
        out.append(cue)
    # "press reports said": a cue word followed by another cue is a noun
    keep = []
    for i, c in enumerate(out):
        if i + 1 < len(out) and not text[c["end"] : out[i + 1]["start"]].strip():
            continue
        if c["kind"] == "verb" and c["form"].endswith("ing") and " " not in c["form"]:
            prev = _tokens(text, max(lo, c["start"] - 12), c["start"])
            if not prev or prev[-1][2].lower() not in _AUX:
                continue
        keep.append(c)
    return keep


def _attribution_before(text: str, lo: int, hi: int):
    """(speaker, cue) for an intro clause ending at hi ("Peskov responded", "said Peskov")."""
    cues = _cues(text, lo, hi)
    if not cues:
        return None
    c = cues[-1]
    cue = (c["start"], c["end"])
    if c["kind"] == "qx":
        return c["speaker"], cue
    tail = _tokens(text, c["end"], hi)
    if c["kind"] == "after":
        sp = _object_after(text, c["end"], hi)
        return (sp, cue) if sp else None
    clause_lo, _ = _clause_start(text, lo, c["start"])
    subj = _subject_before(text, clause_lo, c["start"])
    if subj and (not tail or c["form"] in ("told", "tells", "tell") or len(tail) <= 4):
        return subj, cue
    if not _tokens(text, clause_lo, c["start"]):
        obj = _object_after(text, c["end"], hi)
        if obj:
            return obj, cue
    return None


def _attribution_after(text: str, lo: int, hi: int, strict: bool):
    """(speaker, cue) for a clause right after a closing quote mark ("he said")."""
    cues = _cues(text, lo, hi)
    if not cues:
        return None
    c = cues[0]
    cue = (c["start"], c["end"])
    if c["kind"] == "qx":
        return c["speaker"], cue
    before = _tokens(text, lo, c["start"])
    limit = 2 if strict else 5
    if c["kind"] == "after":
        if before:
            return None
        sp = _object_after(text, c["end"], hi)
        return (sp, cue) if sp else None
    if not before:
        sp = _object_after(text, c["end"], hi)
        return (sp, cue) if sp else None
    subj = _subject_before(text, lo, c["start"])
    if subj is None or _n_words(text, c["end"], hi) > limit:
        return None
    return subj, cue


# --------------------------------------------------------------------------- direct quotes


def _quote_marks(text: str) -> list[tuple[int, int]]:
    """(start, end) of every paired quotation, marks included; paragraph-spanning allowed."""
    spans = []
    open_pos = -1
    open_ch = ""
    continuation = -1
    n = len(text)
    for m in _QMARK.finditer(text):
        ch = m.group()
        p = m.start()
        if ch == "\n":
            if open_pos >= 0:
                j = p + 1
                while j < n and text[j].isspace():
                    j += 1
                if j < n and text[j] == open_ch:
                    continuation = j
                else:
                    open_pos = -1
            continue
        if open_pos < 0:
            if ch in _CLOSERS:
                open_pos, open_ch = p, ch
            continue
        if p == continuation:
            continue
        if ch in _CLOSERS[open_ch]:
            spans.append((open_pos, p + 1))
            open_pos = -1
        elif ch in _CLOSERS:
            open_pos, open_ch = p, ch
    return spans


def _direct_quotes(doc: _Doc, paragraphs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Tag direct quotes with their attribution; returns the ranges they cover."""
    text = doc.text
    starts = [p[0] for p in paragraphs]
    covered = []
    last_in_para: dict[int, tuple] = {}
    pending = None  # (key, end of its attribution clause, paragraph) of a quote that may go on
    for qs, qe in _quote_marks(text):
        pi = max(bisect.bisect_right(starts, qs) - 1, 0)
        resumable, pending = _resumes(text, pending, qs, pi), None
        plo, phi = paragraphs[pi]
        pj = max(bisect.bisect_right(starts, qe - 1) - 1, 0)
        plo_end, phi_end = paragraphs[pj]
        inner = text[qs + 1 : qe - 1]
        words = _n_words(text, qs + 1, qe - 1)
        if words == 0:
            continue
        if _SCARE_PREFIX.search(text, max(plo, qs - 16), qs):
            continue
        inner_stripped = inner.rstrip()
        ends_sentence = inner_stripped[-1:] in ".!?…"
        ends_punct = inner_stripped[-1:] in ".,!?…—-:;"

        # intro: "Peskov said: “...”" in the paragraph, or a paragraph ending in ":" before
        intro = None
        pre_hi = qs
        while pre_hi > plo and text[pre_hi - 1].isspace():
            pre_hi -= 1
        if pre_hi > plo:
            ch = text[pre_hi - 1]
            end = pre_hi - 1 if ch in ":," else pre_hi
            if ch in ":," or text[max(plo, pre_hi - 5) : pre_hi].lower().endswith("that"):
                if text[max(plo, end - 4) : end].lower() == "that":
                    end -= 4
                clo, _ = _clause_start(text, plo, end)
                sent_lo = _sentences(text, max(plo, end - _WINDOW), end, covered)[-1][0]
                intro = _attribution_before(text, max(clo, sent_lo), end)
        elif pi > 0:
            prev_lo, prev_hi = paragraphs[pi - 1]
            if text[prev_hi - 1] == ":":
                end = prev_hi - 1
                clo, _ = _clause_start(text, prev_lo, end)
                sent_lo = _sentences(text, max(prev_lo, end - _WINDOW), end, covered)[-1][0]
                intro = _attribution_before(text, max(clo, sent_lo), end)

        # trailing: "“...,” he said." up to the end of the clause
        trail = None
        tlo = qe
        while tlo < phi_end and text[tlo] in " ,\t":
            tlo += 1
        m = _CLAUSE_END.search(text, tlo, phi_end)
        thi = m.start() if m else phi_end
        if thi > tlo:
            trail = _attribution_after(text, tlo, thi, strict=ends_sentence)

        chosen = intro or trail
        inherited = None
        if chosen is None:
            inherited = last_in_para.get(pi)
            if words <= 3 or not (ends_punct or words >= 8):
                continue  # a title or a scare quote, not speech
        # “A,” he said, “B.” (or “A,” he said. “B.” when B has no attribution of its own)
        resumed = resumable[0] if resumable and (resumable[1] or chosen is None) else None
        if resumed is not None:
            key = doc.extend(resumed, qs, qe)
        else:
            key = doc.add("QUOTE", qs, qe, _SCORE["direct"], {"type": "direct"})
        if trail is not None and not ends_sentence:
            pending = (key, thi, pj)
        covered.append((qs, qe))
        for att in (intro, trail):
            if att is not None:
                doc.attribution(*att)
        if chosen is not None:
            sk, ck = doc.attribution(*chosen)
            if resumed is None:  # a resumed quote is linked once, by its first attribution
                doc.link(key, sk, ck)
            last_in_para[pj] = (sk, ck)
            if trail is not None:
                covered.append((qe, thi))
        else:
            doc.spans[key]["score"] = _SCORE["direct_inherited" if inherited else "direct_bare"]
            if inherited:
                doc.link(key, *inherited)
    return covered


def _resumes(text: str, pending, qs: int, pi: int) -> tuple | None:
    """(key, by comma) of the quote that the quote opening at `qs` may continue, or None: the
    previous quote did not end a sentence, and only its attribution clause and a comma
    (sure) or a full stop (when the new quote has no attribution of its own) lie between."""
    if pending is None or pending[2] != pi:
        return None
    key, after, _ = pending
    sep = text[after:qs].strip()
    return (key, sep == ",") if sep in (",", ".") else None


# --------------------------------------------------------------------------- indirect quotes


def _trailing_attribution(text: str, cue: dict, sent_lo: int, sent_end: int):
    """For "CONTENT, the Kremlin said." return (comma position, speaker, cue), else None."""
    clo, brk = _clause_start(text, sent_lo, cue["start"])
    if brk != ",":
        return None
    comma = clo - 1
    cue_span = (cue["start"], cue["end"])
    if cue["kind"] == "after":
        if _tokens(text, clo, cue["start"]):
            return None
        m = _CLAUSE_END.search(text, cue["end"], sent_end)
        sp = _object_after(text, cue["end"], m.start() if m else sent_end)
        return (comma, sp, cue_span) if sp else None
    rest = _tokens(text, cue["end"], min(sent_end, cue["end"] + _WINDOW))
    if cue["kind"] == "qx":
        return (comma, cue["speaker"], cue_span) if len(rest) <= 6 else None
    if _tokens(text, clo, cue["start"]):
        subj = _subject_before(text, clo, cue["start"])
        if subj is None or len(rest) > 6 or any(t[2].lower() == "that" for t in rest):
            return None
        return comma, subj, cue_span
    m = _CLAUSE_END.search(text, cue["end"], sent_end)
    obj_hi = m.start() if m else sent_end
    obj = _object_after(text, cue["end"], obj_hi)
    if obj is None or len(rest) > 10:
        return None
    return comma, obj, cue_span


def _content_after(text: str, cue: dict, hi: int) -> int | None:
    """Start of the reported content after a cue ("said (that) ..."), or None."""
    toks = _tokens(text, cue["end"], min(hi, cue["end"] + _WINDOW))
    j = cue["end"]
    while j < hi and text[j].isspace():
        j += 1
    if j >= hi or text[j] in ",;.!?":
        return None
    if text[j] == ":":
        toks = _tokens(text, j + 1, hi)
        return toks[0][0] if toks else None
    told = cue["form"] in ("tell", "tells", "told")
    for i, t in enumerate(toks[:7]):
        if t[2].lower() == "that":
            between = toks[:i]
            if (not between or told or between[0][2].lower() in _PREPOSITIONS) and not any(
                text[b[1] : b[1] + 1] == "," for b in between[:-1]
            ):
                return t[1] + 1 if t[1] < hi else None
            break
    if told or cue["form"] in _NEEDS_THAT or not toks:
        return None
    if toks[0][2].lower() in _PREPOSITIONS or toks[0][2].lower() in _NOT_CONTENT:
        return None
    return toks[0][0]


def _indirect_in_sentence(doc: _Doc, lo: int, hi: int) -> None:
    text = doc.text
    if text[lo:hi].rstrip().endswith(":"):
        return  # "Peskov responded:" introduces a direct quote or a list, not reported content
    end = _content_end(text, lo, hi)
    cues = _cues(text, lo, end)
    consumed = -1
    for i, cue in enumerate(cues):
        if cue["start"] < consumed:
            continue
        cue_span = (cue["start"], cue["end"])
        # "CONTENT, the Kremlin said." / "CONTENT, according to TASS."
        trail = _trailing_attribution(text, cue, lo, end)
        if trail is not None:
            comma, sp, cs = trail
            qlo = _strip_lead_adverbial(text, lo, comma)
            first = _WORD.search(text, qlo, comma)
            only_adverbial = (
                first is not None
                and first.group().lower() in _LEAD_ADVERBIAL
                and "," not in text[qlo:comma]
                and _n_words(text, qlo, comma) <= 6
            )
            if _n_words(text, qlo, comma) >= 3 and not only_adverbial:
                q = doc.add("QUOTE", qlo, comma, _SCORE["indirect"], {"type": "indirect"})
                doc.link(q, *doc.attribution(sp, cs))
                return
        if cue["kind"] == "after":
            # "According to TASS, CONTENT."
            if not _tokens(text, lo, cue["start"]):
                comma = text.find(",", cue["end"], end)
                if comma > 0:
                    sp = _object_after(text, cue["end"], comma)
                    qlo = comma + 1
                    while qlo < end and text[qlo].isspace():
                        qlo += 1
                    if sp and _n_words(text, qlo, end) >= 3:
                        q = doc.add("QUOTE", qlo, end, _SCORE["indirect"], {"type": "indirect"})
                        doc.link(q, *doc.attribution(sp, cue_span))
                        return
            consumed = cue["end"]
            continue
        # "X (also) said (that) CONTENT."
        if cue["kind"] == "qx":
            subj = cue["speaker"]
        else:
            clo, brk = _clause_start(text, lo, cue["start"])
            subj = None
            if _tokens(text, clo, cue["start"]):
                subj = _subject_before(text, clo, cue["start"])
            elif brk == "," and text.count(",", lo, cue["start"]) >= 2:
                # "The Kremlin, cited by Russian media, reiterated ..."
                first = text.find(",", lo, cue["start"])
                subj = _subject_before(text, lo, first)
        if subj is None:
            continue
        qlo = _content_after(text, cue, end)
        if qlo is None:
            continue
        qhi = end
        tail = None
        for later in cues[i + 1 :]:
            if later["start"] <= qlo:
                continue
            t = _trailing_attribution(text, later, qlo, end)
            if t is not None:
                qhi, tail = t[0], t
                break
        if _n_words(text, qlo, qhi) < 3:
            continue
        q = doc.add("QUOTE", qlo, qhi, _SCORE["indirect"], {"type": "indirect"})
        doc.link(q, *doc.attribution(subj, cue_span))
        if tail is not None:
            doc.attribution(tail[1], tail[2])
        return


# --------------------------------------------------------------------------- public API


def preannotate(text: str) -> dict:
    """Tag one article.

    Returns ``{"spans": [...], "relations": [...]}``; each span has ``span_id``, ``label``
    (SPEAKER/QUOTE/CUE), ``start``, ``end`` (code points, end exclusive), ``text``,
    ``attributes`` (QUOTE: ``{"type": "direct"|"indirect"}``), ``score`` in (0, 1] and
    ``fragments`` (None, or the parts of a quote interrupted by its attribution);
    each relation has ``from_span_id``, ``to_span_id`` and ``label`` (``said_by``:
    QUOTE -> SPEAKER, ``cue``: QUOTE -> CUE).
    """
    if not isinstance(text, str):
        raise TypeError(f"preannotate expects str, got {type(text).__name__}")
    doc = _Doc(text)
    paragraphs = _paragraphs(text)
    covered = _direct_quotes(doc, paragraphs)
    covered.sort()
    for plo, phi in paragraphs:
        # headlines, bylines and captions carry no final punctuation and no reported speech
        if text[phi - 1] not in '.!?:”"»“)':
            continue
        if not _CUE.search(text, plo, phi):
            continue
        for slo, shi in _sentences(text, plo, phi, covered):
            i = bisect.bisect_left(covered, (shi,))
            if any(a < shi and b > slo for a, b in covered[max(0, i - 4) : i]):
                continue
            _indirect_in_sentence(doc, slo, shi)
    return doc.result()


def preannotate_many(texts) -> list[dict]:
    """``preannotate`` over an iterable of texts, in order."""
    return [preannotate(t) for t in texts]


def preannotate_frame(articles):
    """Tag a DataFrame of articles (columns ``article_id``, ``text``).

    Returns ``(spans_df, relations_df)``: spans with columns article_id, span_id, label,
    start, end, text, attributes (JSON string), score, fragments (None when contiguous);
    relations with article_id,
    from_span_id, to_span_id, label.
    """
    import pandas as pd  # core dependency, but kept out of the pure import path

    missing = {"article_id", "text"} - set(articles.columns)
    if missing:
        raise SpanbankError(f"articles table lacks column(s) {sorted(missing)}")
    span_rows, rel_rows = [], []
    for aid, text in zip(articles["article_id"].tolist(), articles["text"].tolist(), strict=True):
        out = preannotate(text if isinstance(text, str) else "")
        for s in out["spans"]:
            span_rows.append(
                (
                    aid,
                    s["span_id"],
                    s["label"],
                    s["start"],
                    s["end"],
                    s["text"],
                    json.dumps(s["attributes"], ensure_ascii=False),
                    s["score"],
                    s["fragments"],
                )
            )
        for r in out["relations"]:
            rel_rows.append((aid, r["from_span_id"], r["to_span_id"], r["label"]))
    spans = pd.DataFrame(
        span_rows,
        columns=[
            "article_id",
            "span_id",
            "label",
            "start",
            "end",
            "text",
            "attributes",
            "score",
            "fragments",
        ],
    )
    spans = spans.astype({"start": "int64", "end": "int64", "score": "float64"})
    relations = pd.DataFrame(
        rel_rows, columns=["article_id", "from_span_id", "to_span_id", "label"]
    )
    return spans, relations


# --------------------------------------------------------------------------- evaluation


def _norm_spans(spans) -> dict[str, dict]:
    out = {}
    for i, s in enumerate(spans):
        sid = s.get("span_id", s.get("id", f"#{i}"))
        out[sid] = s
    return out


def _match(pred: dict, gold: dict, exact: bool) -> dict[str, str]:
    """One-to-one matching pred id -> gold id (same label; exact offsets or IoU >= 0.5), by
    agreement's aligner (a discontinuous span matches as one unit, over its fragments)."""
    pids, gids = list(pred), list(gold)
    pairs = align_spans(
        [(s["label"], s["start"], s["end"], s.get("fragments")) for s in pred.values()],
        [(s["label"], s["start"], s["end"], s.get("fragments")) for s in gold.values()],
        threshold=1.0 if exact else 0.5,
    )
    return {pids[i]: gids[j] for i, j in pairs}


def _rel_key(r) -> tuple[str, str, str]:
    return (r.get("from_span_id", r.get("from")), r.get("to_span_id", r.get("to")), r["label"])


def evaluate(pred_spans, gold_spans, pred_rel=(), gold_rel=()) -> dict:
    """Exact and overlap (IoU >= 0.5) precision/recall/F1 per label and per relation label.

    Spans are dicts with ``label``, ``start``, ``end`` and an id (``span_id`` or ``id``);
    relations have ``from_span_id``/``to_span_id`` (or ``from``/``to``) and ``label``.
    A predicted relation is correct when both its ends match the ends of a gold relation
    of the same label under the same matching. ``QUOTE:direct``/``QUOTE:indirect`` score
    quotes of one type (matched on offsets only). Returns
    ``{"exact": {key: {...}}, "overlap": {key: {...}}}`` with keys the labels present,
    the quote types present and the relation labels present.
    """
    pred = _norm_spans(pred_spans)
    gold = _norm_spans(gold_spans)
    for name, spans in (("pred", pred), ("gold", gold)):
        for sid, s in spans.items():
            if not {"label", "start", "end"} <= set(s):
                raise ValueError(f"{name} span {sid!r} lacks label/start/end")
    report = {}
    labels = sorted({s["label"] for s in pred.values()} | {s["label"] for s in gold.values()})
    types = sorted(
        {
            (s.get("attributes") or {}).get("type")
            for s in list(pred.values()) + list(gold.values())
            if s["label"] == "QUOTE"
        }
        - {None}
    )
    prel = {_rel_key(r) for r in pred_rel}
    grel = {_rel_key(r) for r in gold_rel}
    rel_labels = sorted({r[2] for r in prel} | {r[2] for r in grel})
    for mode in ("exact", "overlap"):
        m = _match(pred, gold, exact=mode == "exact")
        res = {}
        for lab in labels:
            n_pred = sum(1 for s in pred.values() if s["label"] == lab)
            n_gold = sum(1 for s in gold.values() if s["label"] == lab)
            tp = sum(1 for pid in m if pred[pid]["label"] == lab)
            res[lab] = prf(tp, n_pred, n_gold, undefined=0.0)

        def qtype(s):
            return (s.get("attributes") or {}).get("type")

        for t in types:
            n_pred = sum(1 for s in pred.values() if s["label"] == "QUOTE" and qtype(s) == t)
            n_gold = sum(1 for s in gold.values() if s["label"] == "QUOTE" and qtype(s) == t)
            tp = sum(
                1
                for pid, gid in m.items()
                if pred[pid]["label"] == "QUOTE" and qtype(pred[pid]) == t and qtype(gold[gid]) == t
            )
            res[f"QUOTE:{t}"] = prf(tp, n_pred, n_gold, undefined=0.0)
        for rl in rel_labels:
            p_r = [r for r in prel if r[2] == rl]
            g_r = {r for r in grel if r[2] == rl}
            tp = sum(1 for a, b, _ in p_r if (m.get(a), m.get(b), rl) in g_r)
            res[rl] = prf(tp, len(p_r), len(g_r), undefined=0.0)
        report[mode] = res
    return report
