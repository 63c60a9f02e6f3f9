"""Rule-based pre-annotation of news: QUOTE, CUE and SPEAKER spans with links, in English,
German and French.

The tagger is deliberately small and fast (pure ``re``; every pattern compiled once):

* each language has a lexicon, ``spanbank/data/lexicons/<language>.txt``: its quote marks,
  reporting verbs (every inflection spelled out), source phrases ("according to", "laut",
  "selon", "zufolge"), pronouns and the small word lists below. An article is tagged with
  the lexicon of its ``language``; a language without one gets no predictions.
* direct quotes are found by pairing quote marks with a small state machine over the text;
  a quote left open at a paragraph end continues when the next paragraph opens with the
  same mark. The span includes the marks (and the comma inside them), as in the gold data.
* speakers are the noun phrase next to the cue ("Kremlin spokesperson Dmitry Peskov
  confirmed", "he said", "said Peskov", "according to TASS", "a-t-il dit"), pronouns included.
* indirect quotes are "X said (that) CONTENT." and "CONTENT, X said." inside one sentence.
* a direct quote interrupted by its attribution (“A,” he said, “B.”, or « A, a-t-il dit,
  B » inside one pair of guillemets) is one QUOTE with two fragments, linked once.

Offsets are Python code-point indices into the text, end exclusive.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

from spanbank.agreement.coefficients import align_spans, prf
from spanbank.errors import SpanbankError
from spanbank.spans import fragment_list, fragments_cell, joined_text

TAGGER_VERSION = "spanbank-rules-0.1"

LABELS = ("SPEAKER", "QUOTE", "CUE")

# --------------------------------------------------------------------------- lexicons

_SECTIONS = frozenset(
    "options verbs verbs_that source_after source_before quoted_as inverted quotes that tell "
    "particles pronouns determiners not_in_np between auxiliaries conjunctions prepositions "
    "lead_adverbials not_content scare_prefixes abbreviations".split()
)
_OPTIONS = frozenset({"comma-before-content", "verb-second", "incise"})
_NAME_TOKEN = r"[\w][\w.'’&-]*"
_WORD = re.compile(r"\w+(?:[.'’&-]\w+)*")
_PARAGRAPH = re.compile(r"[^\n]+")
_CLAUSE_BREAK = re.compile(r"[,;:—–(\[)\]]")
_TRAIL = re.compile(r"[\s.!?;:,]+$")
# English's quote marks; another language's marks are added to the sets built from these
_EN_OPENERS = '"“„«'
_EN_CLOSERS = '"”“»'
_EN_MARKS = '"“”„«»'


def _read_lexicon(language: str) -> dict[str, list[list[str]]]:
    """Section -> lines -> entries of the lexicon file of `language` ("_" joins a phrase)."""
    name = f"data/lexicons/{language}.txt"
    try:
        raw = resources.files("spanbank").joinpath(name).read_text("utf-8")
    except OSError as exc:  # a broken install, not a user mistake, but say what is missing
        raise SpanbankError(f"rule-tagger lexicon missing from the package: {exc}") from exc
    out: dict[str, list[list[str]]] = {s: [] for s in _SECTIONS}
    section = None
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[] ")
            if section not in _SECTIONS:
                raise SpanbankError(f"{name}: unknown section [{section}]")
        elif section is None:
            raise SpanbankError(f"{name}: entry {line!r} outside a known section")
        else:
            out[section].append([e.replace("_", " ") for e in line.split()])
    unknown = {e for line in out["options"] for e in line} - _OPTIONS
    if unknown:
        raise SpanbankError(f"{name}: unknown option(s) {sorted(unknown)}")
    return out


def _phrase_re(phrase: str, *, capital: bool) -> str:
    words = [re.escape(w) for w in phrase.split()]
    if capital:
        words[0] = f"[{words[0][0].upper()}{words[0][0]}]{words[0][1:]}"
    return r"\s+".join(words)


def _alternation(phrases, *, capital: bool = False) -> str:
    return "|".join(_phrase_re(p, capital=capital) for p in phrases)


def _cue_re(lex: dict, verbs: frozenset[str]) -> re.Pattern:
    """The cue pattern of one lexicon; the name of the matching group is the cue's kind."""
    alts = []
    quoted = [e for line in lex["quoted_as"] for e in line]
    if quoted:
        name = r"(?:\s+" + _NAME_TOKEN + r"){0,4}?"
        parts = []
        for i, tpl in enumerate(quoted):
            before, after = tpl.split(" X ")
            parts.append(
                _phrase_re(before, capital=False)
                + rf"\s+(?P<qsp{i}>{_NAME_TOKEN}{name})\s+"
                + _phrase_re(after, capital=False)
            )
        alts.append("(?P<qx>" + "|".join(parts) + ")")
    pronouns = [e for line in lex["inverted"] for e in line]
    if pronouns:
        firsts = sorted({v.split()[0] for v in verbs}, key=len, reverse=True)
        rests = sorted({v.split(" ", 1)[1] for v in verbs if " " in v}, key=len, reverse=True)
        alts.append(
            rf"(?P<inv>(?P<iv>{_alternation(firsts)})-(?:t-)?(?P<ip>{_alternation(pronouns)})"
            rf"(?:\s+(?P<ir>{_alternation(rests)}))?)"
        )
    for kind in ("after", "before"):
        phrases = [e.lower() for line in lex[f"source_{kind}"] for e in line]
        if phrases:
            alts.append(f"(?P<{kind}>{_alternation(phrases, capital=True)})")
    alts.append(f"(?P<verb>{_alternation(sorted(verbs, key=len, reverse=True))})")
    return re.compile(r"(?<![\w-])(?:" + "|".join(alts) + r")(?![\w-])")


def _words(lex: dict, section: str) -> frozenset[str]:
    return frozenset(e.lower() for line in lex[section] for e in line)


@dataclass(frozen=True)
class Rules:
    """One language's lexicon, compiled: what every step of the tagger looks words up in."""

    language: str
    verbs: frozenset[str]
    needs_that: frozenset[str]
    cue: re.Pattern
    closers: dict[str, str]
    qmark: re.Pattern
    sent_end: re.Pattern
    sent_start: str
    para_end: str
    clause_end: re.Pattern
    that: frozenset[str]
    that_elided: tuple[str, ...]
    tell: frozenset[str]
    particles: frozenset[str]
    pronouns: frozenset[str]
    determiners: frozenset[str]
    elided: tuple[str, ...]
    not_in_np: frozenset[str]
    between: frozenset[str]
    aux: frozenset[str]
    lead_conj: frozenset[str]
    prepositions: frozenset[str]
    lead_adverbial: frozenset[str]
    not_content: frozenset[str]
    scare: re.Pattern
    abbreviations: frozenset[str]
    options: frozenset[str]


def _rules(language: str) -> Rules:
    """The compiled rules of one lexicon file."""
    lex = _read_lexicon(language)
    need_that = _words(lex, "verbs_that")
    verbs = _words(lex, "verbs") | need_that
    closers = {line[0]: "".join(line[1:]) for line in lex["quotes"]}
    openers = "".join(closers)
    closing = "".join(dict.fromkeys("".join(closers.values())))
    extra_open = "".join(c for c in openers if c not in _EN_OPENERS)
    extra_close = "".join(c for c in closing if c not in _EN_CLOSERS)
    marks = "".join(dict.fromkeys(openers + closing))
    extra_marks = re.escape("".join(c for c in marks if c not in _EN_MARKS))
    that = _words(lex, "that")
    determiners = _words(lex, "determiners")
    return Rules(
        language=language,
        verbs=verbs,
        needs_that=need_that,
        cue=_cue_re(lex, verbs),
        closers=closers,
        qmark=re.compile("[" + re.escape(marks) + r"\n]"),
        sent_end=re.compile(r"[.!?]+[\"”’»)" + re.escape(extra_close) + r"]*\s+"),
        sent_start='"“„«‘(' + extra_open,
        para_end='.!?:”"»“)' + extra_close,
        clause_end=re.compile(r"[,.;:!?\n\"“”„«»()—–" + extra_marks + "]"),
        that=frozenset(w for w in that if not w.endswith(("'", "’"))),
        that_elided=tuple(w for w in that if w.endswith(("'", "’"))),
        tell=_words(lex, "tell"),
        particles=_words(lex, "particles"),
        pronouns=_words(lex, "pronouns"),
        determiners=frozenset(w for w in determiners if not w.endswith(("'", "’"))),
        elided=tuple(w for w in determiners if w.endswith(("'", "’"))),
        not_in_np=_words(lex, "not_in_np"),
        between=_words(lex, "between"),
        aux=_words(lex, "auxiliaries"),
        lead_conj=_words(lex, "conjunctions"),
        prepositions=_words(lex, "prepositions"),
        lead_adverbial=_words(lex, "lead_adverbials"),
        not_content=_words(lex, "not_content"),
        scare=re.compile(r"(?:" + _alternation(_words(lex, "scare_prefixes")) + r")\s*$"),
        abbreviations=_words(lex, "abbreviations"),
        options=_words(lex, "options"),
    )


def _lexicon_languages() -> list[str]:
    folder = resources.files("spanbank").joinpath("data/lexicons")
    return sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))


RULES: dict[str, Rules] = {lang: _rules(lang) for lang in _lexicon_languages()}
LANGUAGES = frozenset(RULES)  # the languages the rule tagger knows; others get no predictions
DEFAULT_LANGUAGE = "en"
REPORTING_VERBS = RULES["en"].verbs


def language_code(language) -> str:
    """The primary language subtag of an article's `language` ("de-DE", "DE", "fr_FR" ->
    "de", "fr"); "en" when it is missing or empty."""
    if not isinstance(language, str) or not language.strip():
        return DEFAULT_LANGUAGE
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()


def rules_for(language) -> Rules | None:
    """The rules for an article's `language`, or None when the tagger has no lexicon for it."""
    return RULES.get(language_code(language))


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


def _elided(word: str, prefixes: tuple[str, ...]) -> str:
    """The elided prefix `word` starts with ("l'" of "l'ambassadeur"), or ""."""
    return next((p for p in prefixes if word.startswith(p) and len(word) > len(p)), "")


def _valid_np(L: Rules, toks: list[tuple[int, int, str]]) -> tuple[int, int] | None:
    """(start, end) of toks if they read as a speaker noun phrase, else None."""
    if not toks or len(toks) > 8:
        return None
    first = toks[0][2]
    low = first.lower()
    if low in L.pronouns:
        return (toks[0][0], toks[0][1]) if len(toks) == 1 else None
    if any(t[2].lower() in L.not_in_np for t in toks):
        return None
    if "verb-second" in L.options and (low in L.prepositions or low in L.lead_adverbial):
        return None  # "Am Montag sagte ...": an adverbial before the verb, not its subject
    if low in L.determiners:
        if len(toks) < 2:
            return None
    elif not (first[0].isupper() or first[0].isdigit() or _elided(low, L.elided)):
        return None
    return toks[0][0], toks[-1][1]


def _subject_before(text: str, L: Rules, lo: int, hi: int) -> tuple[int, int] | None:
    """The noun phrase ending right before a cue at hi, looking no further back than lo."""
    toks = _tokens(text, lo, hi)
    while toks and toks[-1][2].lower() in L.between:
        toks.pop()
    while toks and toks[0][2].lower() in L.lead_conj:
        toks.pop(0)
    return _valid_np(L, toks)


def _object_after(text: str, L: Rules, lo: int, hi: int) -> tuple[int, int] | None:
    """The noun phrase filling text[lo:hi] after a cue ("said Peskov on Monday" -> Peskov).

    Only a preposition may end it early: "said the city would build ..." is no speaker; the
    particle of a separable verb ends it ("fügte er hinzu" -> er).
    """
    toks = []
    for t in _tokens(text, lo, hi):
        if toks and t[2].lower() in L.prepositions:
            break
        toks.append(t)
    while toks and toks[-1][2].lower() in L.particles:
        toks.pop()
    return _valid_np(L, toks)


def _noun_phrase_ahead(text: str, L: Rules, lo: int, hi: int) -> tuple[int, int] | None:
    """A capitalised-noun phrase opening text[lo:hi] and followed by more words ("laut dem
    Minister sind ..." -> dem Minister): where nouns are capitalised and no comma ends it."""
    toks = _tokens(text, lo, hi)
    noun = False
    for i, (_, _, w) in enumerate(toks):
        if w.lower() in L.determiners:
            continue
        if w[0].isupper():
            noun = True
        elif noun:
            return _valid_np(L, toks[:i])
        elif w.lower() in L.not_in_np:
            return None
    return None


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
    text: str, L: Rules, lo: int, hi: int, protected: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Sentence (start, end) pairs in text[lo:hi]; never split inside a protected range.

    protected: (start, end) ranges sorted by start (looked up by bisection).
    """
    out = []
    start = lo
    for m in L.sent_end.finditer(text, lo, hi):
        nxt = m.end()
        if nxt >= hi:
            break
        c = text[nxt]
        if not (c.isupper() or c.isdigit() or c in L.sent_start):
            continue
        word_start = text.rfind(" ", lo, m.start()) + 1
        word = text[word_start : m.start() + 1]
        if word.lower() in L.abbreviations or (len(word) == 2 and word[0].isupper()):
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


def _strip_lead_adverbial(text: str, L: Rules, lo: int, hi: int) -> int:
    m = _WORD.search(text, lo, hi)
    if m and m.start() == lo and m.group().lower() in L.lead_adverbial:
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

    def __init__(self, text: str, rules: Rules):
        self.text, self.rules = text, rules
        self.spans: dict[tuple[str, int, int], dict] = {}
        self.relations: list[tuple[tuple, tuple, str]] = []

    def _whole(self, start: int, end: int) -> tuple[int, int]:
        """The bounds moved off combining marks, which `\\w` does not match: in decomposed
        (NFD) text a name would otherwise end between "Zoe" and its diaeresis."""
        text = self.text
        while start > 0 and unicodedata.combining(text[start]):
            start -= 1
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1
        return start, end

    def add(self, label: str, start: int, end: int, score: float, attributes=None) -> tuple:
        key = (label, *self._whole(start, end))
        old = self.spans.get(key)
        if old is None or old["score"] < score:
            self.spans[key] = {"score": score, "attributes": attributes or {}}
        return key

    def extend(self, key: tuple, start: int, end: int) -> tuple:
        """Add the fragment (start, end) after the span at `key`; returns the span's new key
        (its outer bounds grow), with the links already made moved onto it."""
        label, first, last = key
        start, end = self._whole(start, end)
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
            pronoun = low in self.rules.pronouns
            sk = self.add("SPEAKER", *speaker, _SCORE["pronoun" if pronoun else "speaker"])
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


def _inverted(m: re.Match, L: Rules) -> tuple[int, str] | None:
    """(end, form) of an inverted cue ("a-t-il déclaré", "dit-elle"), or None when its verb
    is not in the lexicon."""
    first = m.group("iv").lower()
    if m.group("ir") and f"{first} {m.group('ir').lower()}" in L.verbs:
        return m.end(), m.group().lower()
    if first in L.verbs:
        return m.end("ip"), m.string[m.start() : m.end("ip")].lower()
    return None


def _cues(text: str, L: Rules, lo: int, hi: int) -> list[dict]:
    """Reporting cues in text[lo:hi] with their kind and (for qx) the embedded speaker."""
    out = []
    for m in L.cue.finditer(text, lo, hi):
        kind = m.lastgroup
        cue = {"kind": kind, "start": m.start(), "end": m.end(), "form": m.group().lower()}
        if kind == "inv":
            found = _inverted(m, L)
            if found is None:
                continue
            cue.update(kind="qx", end=found[0], form=found[1], speaker=(m.start("ip"), m.end("ip")))
        elif kind == "qx":
            g = next(k for k, v in m.groupdict().items() if k.startswith("qsp") and v)
            sp = (m.start(g), m.end(g))
            cue["speaker"] = sp if _valid_np(L, _tokens(text, *sp)) else None
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
            if not prev or prev[-1][2].lower() not in L.aux:
                continue
        keep.append(c)
    return keep


def _attribution_before(text: str, L: Rules, lo: int, hi: int):
    """(speaker, cue) for an intro clause ending at hi ("Peskov responded", "said Peskov")."""
    cues = _cues(text, L, lo, hi)
    if not cues:
        return None
    c = cues[-1]
    cue = (c["start"], c["end"])
    if c["kind"] == "qx":
        return c["speaker"], cue
    tail = _tokens(text, c["end"], hi)
    if c["kind"] == "after":
        sp = _object_after(text, L, c["end"], hi)
        return (sp, cue) if sp else None
    clause_lo, _ = _clause_start(text, lo, c["start"])
    subj = _subject_before(text, L, clause_lo, c["start"])
    if subj and (not tail or c["form"] in L.tell or len(tail) <= 4):
        return subj, cue
    if not _tokens(text, clause_lo, c["start"]):
        obj = _object_after(text, L, c["end"], hi)
        if obj:
            return obj, cue
    return None


def _attribution_after(text: str, L: Rules, lo: int, hi: int, strict: bool):
    """(speaker, cue) for a clause right after a closing quote mark ("he said")."""
    cues = _cues(text, L, lo, hi)
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
        sp = _object_after(text, L, c["end"], hi)
        return (sp, cue) if sp else None
    if not before:
        sp = _object_after(text, L, c["end"], hi)
        return (sp, cue) if sp else None
    subj = _subject_before(text, L, lo, c["start"])
    if subj is None or _n_words(text, c["end"], hi) > limit:
        return None
    return subj, cue


# --------------------------------------------------------------------------- direct quotes


def _quote_marks(text: str, L: Rules) -> list[tuple[int, int]]:
    """(start, end) of every paired quotation, marks included; paragraph-spanning allowed."""
    spans = []
    open_pos = -1
    open_ch = ""
    continuation = -1
    n = len(text)
    for m in L.qmark.finditer(text):
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
            if ch in L.closers:
                open_pos, open_ch = p, ch
            continue
        if p == continuation:
            continue
        if ch in L.closers[open_ch]:
            spans.append((open_pos, p + 1))
            open_pos = -1
        elif ch in L.closers:
            open_pos, open_ch = p, ch
    return spans


def _direct_quotes(doc: _Doc, paragraphs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Tag direct quotes with their attribution; returns the ranges they cover."""
    text, L = doc.text, doc.rules
    starts = [p[0] for p in paragraphs]
    covered = []
    last_in_para: dict[int, tuple] = {}
    pending = None  # (key, end of its attribution clause, paragraph) of a quote that may go on
    for qs, qe in _quote_marks(text, L):
        pi = max(bisect.bisect_right(starts, qs) - 1, 0)
        resumable, pending = _resumes(text, pending, qs, pi), None
        plo, phi = paragraphs[pi]
        pj = max(bisect.bisect_right(starts, qe - 1) - 1, 0)
        plo_end, phi_end = paragraphs[pj]
        inner = text[qs + 1 : qe - 1]
        words = _n_words(text, qs + 1, qe - 1)
        if words == 0:
            continue
        if L.scare.search(text, max(plo, qs - 16), qs):
            continue
        incise = _incise(text, L, qs, qe) if "incise" in L.options else None
        if incise is not None:
            a_end, b_start, att = incise
            key = doc.extend(
                doc.add("QUOTE", qs, a_end, _SCORE["direct"], {"type": "direct"}), b_start, qe
            )
            sk, ck = doc.attribution(*att)
            doc.link(key, sk, ck)
            last_in_para[pj] = (sk, ck)
            covered.append((qs, qe))
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
            if ch in ":," or any(
                text[max(plo, pre_hi - len(w) - 1) : pre_hi].lower().endswith(w) for w in L.that
            ):
                that = next(
                    (w for w in L.that if text[max(plo, end - len(w)) : end].lower() == w), ""
                )
                end -= len(that)
                clo, _ = _clause_start(text, plo, end)
                sent_lo = _sentences(text, L, max(plo, end - _WINDOW), end, covered)[-1][0]
                intro = _attribution_before(text, L, max(clo, sent_lo), end)
        elif pi > 0:
            prev_lo, prev_hi = paragraphs[pi - 1]
            if text[prev_hi - 1] == ":":
                end = prev_hi - 1
                clo, _ = _clause_start(text, prev_lo, end)
                sent_lo = _sentences(text, L, max(prev_lo, end - _WINDOW), end, covered)[-1][0]
                intro = _attribution_before(text, L, max(clo, sent_lo), end)

        # trailing: "“...,” he said." up to the end of the clause
        trail = None
        tlo = qe
        while tlo < phi_end and text[tlo] in " ,\t":
            tlo += 1
        m = L.clause_end.search(text, tlo, phi_end)
        thi = m.start() if m else phi_end
        if thi > tlo:
            trail = _attribution_after(text, L, tlo, thi, strict=ends_sentence)

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


def _incise(text: str, L: Rules, qs: int, qe: int):
    """(end of the first part, start of the second, (speaker, cue)) of a quote interrupted by
    its attribution inside one pair of marks (« A, a-t-il dit, B »), else None."""
    c1 = text.find(",", qs + 1, qe - 1)
    while c1 >= 0:
        c2 = text.find(",", c1 + 1, qe - 1)
        if c2 < 0:
            return None
        lo = c1 + 1
        while lo < c2 and text[lo].isspace():
            lo += 1
        cues = _cues(text, L, lo, c2)
        if cues and cues[0]["start"] == lo and _n_words(text, lo, c2) <= 6:
            att = _attribution_after(text, L, lo, c2, strict=False)
            b = c2 + 1
            while b < qe and text[b].isspace():
                b += 1
            if att is not None and _n_words(text, qs + 1, c1) and _n_words(text, b, qe):
                return c1 + 1, b, att
        c1 = c2
    return None


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


def _is_that(L: Rules, word: str) -> bool:
    low = word.lower()
    return low in L.that or bool(_elided(low, L.that_elided))


def _trailing_attribution(text: str, L: Rules, cue: dict, sent_lo: int, sent_end: int):
    """For "CONTENT, the Kremlin said." return (comma position, speaker, cue), else None."""
    clo, brk = _clause_start(text, sent_lo, cue["start"])
    if brk != ",":
        return None
    comma = clo - 1
    cue_span = (cue["start"], cue["end"])
    if cue["kind"] == "after":
        if _tokens(text, clo, cue["start"]):
            return None
        m = L.clause_end.search(text, cue["end"], sent_end)
        sp = _object_after(text, L, cue["end"], m.start() if m else sent_end)
        return (comma, sp, cue_span) if sp else None
    rest = _tokens(text, cue["end"], min(sent_end, cue["end"] + _WINDOW))
    if cue["kind"] == "qx":
        return (comma, cue["speaker"], cue_span) if len(rest) <= 6 else None
    if _tokens(text, clo, cue["start"]):
        subj = _subject_before(text, L, clo, cue["start"])
        if subj is None or len(rest) > 6 or any(_is_that(L, t[2]) for t in rest):
            return None
        return comma, subj, cue_span
    m = L.clause_end.search(text, cue["end"], sent_end)
    obj_hi = m.start() if m else sent_end
    obj = _object_after(text, L, cue["end"], obj_hi)
    if obj is None or len(rest) > 10:
        return None
    return comma, obj, cue_span


def _content_after(text: str, L: Rules, cue: dict, hi: int) -> int | None:
    """Start of the reported content after a cue ("said (that) ...", "sagte, dass ..."), or None."""
    toks = _tokens(text, cue["end"], min(hi, cue["end"] + _WINDOW))
    j = cue["end"]
    while j < hi and text[j].isspace():
        j += 1
    if j < hi and text[j] == "," and "comma-before-content" in L.options:
        toks = _tokens(text, j + 1, min(hi, j + 1 + _WINDOW))
        if toks and _is_that(L, toks[0][2]):
            toks = toks[:1]  # "sagte, dass ...": the complementiser is read below
        elif toks and cue["form"] not in L.needs_that and toks[0][2].lower() not in L.not_content:
            return toks[0][0]  # "sagte, die Lage sei ernst"
        else:
            return None
    elif j >= hi or text[j] in ",;.!?":
        return None
    if text[j] == ":":
        toks = _tokens(text, j + 1, hi)
        return toks[0][0] if toks else None
    told = cue["form"] in L.tell
    for i, t in enumerate(toks[:7]):
        if _is_that(L, t[2]):
            between = toks[:i]
            if (not between or told or between[0][2].lower() in L.prepositions) and not any(
                text[b[1] : b[1] + 1] == "," for b in between[:-1]
            ):
                elided = _elided(t[2].lower(), L.that_elided)
                if elided:
                    return t[0] + len(elided)
                return t[1] + 1 if t[1] < hi else None
            break
    if told or cue["form"] in L.needs_that or not toks:
        return None
    if toks[0][2].lower() in L.prepositions or toks[0][2].lower() in L.not_content:
        return None
    return toks[0][0]


def _indirect_in_sentence(doc: _Doc, lo: int, hi: int) -> None:
    text, L = doc.text, doc.rules
    if text[lo:hi].rstrip().endswith(":"):
        return  # "Peskov responded:" introduces a direct quote or a list, not reported content
    end = _content_end(text, lo, hi)
    cues = _cues(text, L, lo, end)
    consumed = -1
    for i, cue in enumerate(cues):
        if cue["start"] < consumed:
            continue
        cue_span = (cue["start"], cue["end"])
        # "CONTENT, the Kremlin said." / "CONTENT, according to TASS."
        trail = _trailing_attribution(text, L, cue, lo, end)
        if trail is not None:
            comma, sp, cs = trail
            qlo = _strip_lead_adverbial(text, L, lo, comma)
            first = _WORD.search(text, qlo, comma)
            only_adverbial = (
                first is not None
                and first.group().lower() in L.lead_adverbial
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
                    sp = _object_after(text, L, cue["end"], comma)
                    qlo = comma + 1
                    while qlo < end and text[qlo].isspace():
                        qlo += 1
                    if sp and _n_words(text, qlo, end) >= 3:
                        q = doc.add("QUOTE", qlo, end, _SCORE["indirect"], {"type": "indirect"})
                        doc.link(q, *doc.attribution(sp, cue_span))
                        return
                if "verb-second" in L.options and _source_then_content(doc, cue, end):
                    return  # "Laut dem Minister sind die Gespräche gescheitert."
            consumed = cue["end"]
            continue
        # "X (also) said (that) CONTENT."
        if cue["kind"] == "qx":
            subj = cue["speaker"]
        else:
            clo, brk = _clause_start(text, lo, cue["start"])
            subj = None
            if _tokens(text, clo, cue["start"]):
                subj = _subject_before(text, L, clo, cue["start"])
            elif brk == "," and text.count(",", lo, cue["start"]) >= 2:
                # "The Kremlin, cited by Russian media, reiterated ..."
                first = text.find(",", lo, cue["start"])
                subj = _subject_before(text, L, lo, first)
            if subj is None and "verb-second" in L.options and cue["kind"] == "verb":
                # "Am Montag sagte der Minister, dass ...": the subject follows the verb
                m = L.clause_end.search(text, cue["end"], end)
                subj = _object_after(text, L, cue["end"], m.start() if m else end)
                if subj is not None:
                    cue = {**cue, "end": subj[1]}
        if subj is None:
            continue
        qlo = _content_after(text, L, cue, end)
        if qlo is None:
            continue
        qhi = end
        tail = None
        for later in cues[i + 1 :]:
            if later["start"] <= qlo:
                continue
            t = _trailing_attribution(text, L, later, qlo, end)
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


def _source_then_content(doc: _Doc, cue: dict, end: int) -> bool:
    """Tag "laut X CONTENT" with no comma after X (X a capitalised-noun phrase); True if done."""
    text, L = doc.text, doc.rules
    sp = _noun_phrase_ahead(text, L, cue["end"], end)
    if sp is None or _n_words(text, sp[1], end) < 3:
        return False
    qlo = _WORD.search(text, sp[1], end).start()
    q = doc.add("QUOTE", qlo, end, _SCORE["indirect"], {"type": "indirect"})
    doc.link(q, *doc.attribution(sp, (cue["start"], cue["end"])))
    return True


# --------------------------------------------------------------------------- public API


def preannotate(text: str, language: str | None = DEFAULT_LANGUAGE) -> dict:
    """Tag one article with the rules of its `language` (see ``language_code``); a language
    the tagger has no lexicon for (not in ``LANGUAGES``) gets no spans.

    Returns ``{"spans": [...], "relations": [...]}``; each span has ``span_id``, ``label``
    (SPEAKER/QUOTE/CUE), ``start``, ``end`` (code points, end exclusive), ``text``,
    ``attributes`` (QUOTE: ``{"type": "direct"|"indirect"}``), ``score`` in (0, 1] and
    ``fragments`` (None, or the parts of a quote interrupted by its attribution);
    each relation has ``from_span_id``, ``to_span_id`` and ``label`` (``said_by``:
    QUOTE -> SPEAKER, ``cue``: QUOTE -> CUE).
    """
    if not isinstance(text, str):
        raise TypeError(f"preannotate expects str, got {type(text).__name__}")
    rules = rules_for(language)
    if rules is None:
        return {"spans": [], "relations": []}
    if not unicodedata.is_normalized("NFC", text):  # the lexicons are composed: tag a composed view
        composed, starts, ends = _composed_view(text)
        return _mapped_back(_tag(composed, rules), text, starts, ends)
    return _tag(text, rules)


def _composed_view(text: str) -> tuple[str, list[int], list[int]]:
    """`text` in NFC, and for each of its characters where the base character it came from
    starts and where its combining marks end in `text`."""
    out, starts, ends = [], [], []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFC", text[i:j])
        out.append(piece)
        starts += [i] * len(piece)
        ends += [j] * len(piece)
        i = j
    return "".join(out), starts, ends


def _mapped_back(tagged: dict, text: str, starts: list[int], ends: list[int]) -> dict:
    """Spans tagged on `_composed_view(text)` with `text`'s own offsets and texts."""
    for sp in tagged["spans"]:
        parts = [
            (starts[s], ends[e - 1])
            for s, e in fragment_list(sp["start"], sp["end"], sp["fragments"])
        ]
        sp.update(
            start=parts[0][0],
            end=parts[-1][1],
            text=joined_text(text, parts),
            fragments=fragments_cell(parts),
        )
    return tagged


def _tag(text: str, rules) -> dict:
    """`preannotate` of a text in NFC (what the lexicons are written in)."""
    doc = _Doc(text, rules)
    paragraphs = _paragraphs(text)
    covered = _direct_quotes(doc, paragraphs)
    covered.sort()
    for plo, phi in paragraphs:
        # headlines, bylines and captions carry no final punctuation and no reported speech
        if text[phi - 1] not in rules.para_end:
            continue
        if not rules.cue.search(text, plo, phi):
            continue
        for slo, shi in _sentences(text, rules, plo, phi, covered):
            i = bisect.bisect_left(covered, (shi,))
            if any(a < shi and b > slo for a, b in covered[max(0, i - 4) : i]):
                continue
            _indirect_in_sentence(doc, slo, shi)
    return doc.result()


def preannotate_many(texts, language: str | None = DEFAULT_LANGUAGE) -> list[dict]:
    """``preannotate`` over an iterable of texts in one language, in order."""
    return [preannotate(t, language) for t in texts]


def preannotate_frame(articles):
    """Tag a DataFrame of articles (columns ``article_id``, ``text``, optionally ``language``).

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
    langs = articles["language"].tolist() if "language" in articles else [None] * len(articles)
    for aid, text, lang in zip(
        articles["article_id"].tolist(), articles["text"].tolist(), langs, strict=True
    ):
        out = preannotate(text if isinstance(text, str) else "", lang)
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
    """Spans by id; ValueError for an id given twice (the second replaced the first, so two
    spans counted as one: `tagger_eval.by_span` gives each span an id of its own)."""
    out = {}
    for i, s in enumerate(spans):
        sid = s.get("span_id", s.get("id", f"#{i}"))
        if sid in out:
            raise ValueError(f"span id {sid!r} is given twice; give each span its own")
        out[sid] = s
    return out


MODES = {"exact": 1.0, "overlap": 0.5, "any": 0.0}  # span matching mode -> IoU threshold


def _match(pred: dict, gold: dict, threshold: float) -> dict[str, str]:
    """One-to-one matching pred id -> gold id (same label; IoU >= threshold, 1 = exact offsets,
    0 = any overlap), by agreement's aligner (a discontinuous span matches as one unit)."""
    pids, gids = list(pred), list(gold)
    pairs = align_spans(
        [(s["label"], s["start"], s["end"], s.get("fragments")) for s in pred.values()],
        [(s["label"], s["start"], s["end"], s.get("fragments")) for s in gold.values()],
        threshold=threshold,
    )
    return {pids[i]: gids[j] for i, j in pairs}


def _rel_key(r) -> tuple[str, str, str]:
    return (r.get("from_span_id", r.get("from")), r.get("to_span_id", r.get("to")), r["label"])


def evaluate(pred_spans, gold_spans, pred_rel=(), gold_rel=()) -> dict:
    """Exact, overlap (IoU >= 0.5) and any-overlap precision/recall/F1 per label and relation label.

    Spans are dicts with ``label``, ``start``, ``end`` and an id (``span_id`` or ``id``);
    relations have ``from_span_id``/``to_span_id`` (or ``from``/``to``) and ``label``.
    A predicted relation is correct when both its ends match the ends of a gold relation
    of the same label under the same matching. ``QUOTE:direct``/``QUOTE:indirect`` score
    quotes of one type (matched on offsets only). Returns
    ``{"exact": {key: {...}}, "overlap": {...}, "any": {...}}`` with keys the labels present,
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
    for mode, threshold in MODES.items():
        m = _match(pred, gold, threshold)
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
