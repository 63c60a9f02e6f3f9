"""The rule tagger in German and French: each language's quote marks, reporting verbs and
source phrases, chosen by the article's language; a language without a lexicon gets nothing."""

import pandas as pd
import pytest

from spanbank.preannotate import (
    LANGUAGES,
    language_code,
    preannotate,
    preannotate_frame,
)

NBSP = "\u00a0"
NNBSP = "\u202f"


def tagged(text: str, language: str) -> tuple[set, set]:
    """({(label[:quote type], text, fragments)}, {(quote text, relation, target text)})."""
    out = preannotate(text, language)
    by_id = {s["span_id"]: s for s in out["spans"]}
    spans = set()
    for s in out["spans"]:
        if not s["fragments"]:
            assert text[s["start"] : s["end"]] == s["text"]
        label = s["label"]
        if label == "QUOTE":
            label += ":" + s["attributes"]["type"]
        parts = tuple((f["start"], f["end"]) for f in s["fragments"] or ()) or None
        spans.add((label, s["text"], parts))
    rels = {
        (by_id[r["from_span_id"]]["text"], r["label"], by_id[r["to_span_id"]]["text"])
        for r in out["relations"]
    }
    return spans, rels


def attribution(quote: str, cue: str, speaker: str, qtype: str) -> tuple[set, set]:
    return (
        {(f"QUOTE:{qtype}", quote, None), ("CUE", cue, None), ("SPEAKER", speaker, None)},
        {(quote, "cue", cue), (quote, "said_by", speaker)},
    )


def test_the_rules_know_english_german_and_french():
    assert {"en", "de", "fr"} <= LANGUAGES


@pytest.mark.parametrize(
    ("given", "code"),
    [("de-DE", "de"), ("DE", "de"), ("fr_FR", "fr"), (" en ", "en"), (None, "en"), ("", "en")],
)
def test_language_codes_are_normalised(given, code):
    assert language_code(given) == code


# --------------------------------------------------------------------------- German


@pytest.mark.parametrize(
    ("text", "quote", "cue", "speaker"),
    [
        (
            "„Wir werden nicht aufgeben“, sagte die Ministerin am Montag.",
            "„Wir werden nicht aufgeben“",
            "sagte",
            "die Ministerin",
        ),
        (
            "»Das ist ein guter Tag für Europa«, sagte Merkel.",
            "»Das ist ein guter Tag für Europa«",
            "sagte",
            "Merkel",
        ),
        ("«Wir bleiben hier», betonte er.", "«Wir bleiben hier»", "betonte", "er"),
        (
            "„Das war ein schwerer Fehler“, fügte sie hinzu.",
            "„Das war ein schwerer Fehler“",
            "fügte",
            "sie",
        ),
        (
            "„Die Lage ist ernst“, so der Sprecher des Ministeriums.",
            "„Die Lage ist ernst“",
            "so",
            "der Sprecher des Ministeriums",
        ),
        (
            "Die Kanzlerin erklärte: „Wir schaffen das.“",
            "„Wir schaffen das.“",
            "erklärte",
            "Die Kanzlerin",
        ),
    ],
)
def test_german_direct_quotes(text, quote, cue, speaker):
    spans, rels = tagged(text, "de")
    want_spans, want_rels = attribution(quote, cue, speaker, "direct")
    assert spans == want_spans
    assert rels == want_rels


@pytest.mark.parametrize(
    ("text", "quote", "cue", "speaker"),
    [
        (
            "Die Kanzlerin sagte, dass die Gespräche gescheitert seien.",
            "die Gespräche gescheitert seien",
            "sagte",
            "Die Kanzlerin",
        ),
        (
            "Der Sprecher erklärte, die Verhandlungen würden fortgesetzt.",
            "die Verhandlungen würden fortgesetzt",
            "erklärte",
            "Der Sprecher",
        ),
        (
            "Er fügte hinzu, dass die Regierung keine Fehler gemacht habe.",
            "die Regierung keine Fehler gemacht habe",
            "fügte hinzu",
            "Er",
        ),
        (
            "Am Montag sagte der Minister, dass die Regierung zurücktreten werde.",
            "die Regierung zurücktreten werde",
            "sagte",
            "der Minister",
        ),
        (
            "Die Lage sei sehr ernst, sagte sie.",
            "Die Lage sei sehr ernst",
            "sagte",
            "sie",
        ),
        (
            "Laut dem Sprecher der Regierung sind die Gespräche gescheitert.",
            "sind die Gespräche gescheitert",
            "Laut",
            "dem Sprecher der Regierung",
        ),
        (
            "Dem Minister zufolge sind die Gespräche endgültig gescheitert.",
            "sind die Gespräche endgültig gescheitert",
            "zufolge",
            "Dem Minister",
        ),
    ],
)
def test_german_indirect_quotes(text, quote, cue, speaker):
    spans, rels = tagged(text, "de")
    assert (spans, rels) == attribution(quote, cue, speaker, "indirect")


def test_german_warning_needs_dass():
    spans, _ = tagged("Die Behörde warnte die Bevölkerung vor dem Sturm am Abend.", "de")
    assert not any(label.startswith("QUOTE") for label, *_ in spans)


# --------------------------------------------------------------------------- French


def test_french_incise_inside_one_pair_of_guillemets_is_one_quote_in_two_fragments():
    text = f"«{NBSP}Nous ne céderons pas, a-t-il déclaré, jamais nous ne reculerons.{NBSP}»"
    out = preannotate(text, "fr")
    quotes = [s for s in out["spans"] if s["label"] == "QUOTE"]
    assert len(quotes) == 1
    q = quotes[0]
    first = text.index(",") + 1
    second = text.index("jamais")
    assert (q["start"], q["end"]) == (0, len(text))
    assert q["fragments"] == [{"start": 0, "end": first}, {"start": second, "end": len(text)}]
    spans, rels = tagged(text, "fr")
    joined = q["text"]
    assert spans == {
        ("QUOTE:direct", joined, ((0, first), (second, len(text)))),
        ("CUE", "a-t-il déclaré", None),
        ("SPEAKER", "il", None),
    }
    assert rels == {(joined, "cue", "a-t-il déclaré"), (joined, "said_by", "il")}


def test_french_quote_resumed_after_its_incise_is_one_quote_linked_once():
    text = f"«{NNBSP}Nous sommes prêts{NNBSP}», a-t-elle dit, «{NNBSP}mais pas à n'importe quel prix.{NNBSP}»"
    out = preannotate(text, "fr")
    (q,) = [s for s in out["spans"] if s["label"] == "QUOTE"]
    assert [text[f["start"] : f["end"]] for f in q["fragments"]] == [
        f"«{NNBSP}Nous sommes prêts{NNBSP}»",
        f"«{NNBSP}mais pas à n'importe quel prix.{NNBSP}»",
    ]
    assert sorted(r["label"] for r in out["relations"]) == ["cue", "said_by"]


@pytest.mark.parametrize(
    ("text", "quote", "cue", "speaker"),
    [
        (
            f"«{NBSP}Nous ne céderons pas{NBSP}», a déclaré le ministre de l'Intérieur.",
            f"«{NBSP}Nous ne céderons pas{NBSP}»",
            "a déclaré",
            "le ministre de l'Intérieur",
        ),
        (
            f"«{NBSP}C'est inacceptable{NBSP}», dit-il.",
            f"«{NBSP}C'est inacceptable{NBSP}»",
            "dit-il",
            "il",
        ),
        (
            f"La présidente a affirmé{NBSP}: «{NBSP}Je ne démissionnerai pas.{NBSP}»",
            f"«{NBSP}Je ne démissionnerai pas.{NBSP}»",
            "a affirmé",
            "La présidente",
        ),
    ],
)
def test_french_direct_quotes(text, quote, cue, speaker):
    assert tagged(text, "fr") == attribution(quote, cue, speaker, "direct")


@pytest.mark.parametrize(
    ("text", "quote", "cue", "speaker"),
    [
        (
            "Le ministre a déclaré que les négociations avaient échoué.",
            "les négociations avaient échoué",
            "a déclaré",
            "Le ministre",
        ),
        (
            "La présidente affirme qu'elle ne démissionnera pas.",
            "elle ne démissionnera pas",
            "affirme",
            "La présidente",
        ),
        (
            "Selon le porte-parole, les négociations ont échoué lundi.",
            "les négociations ont échoué lundi",
            "Selon",
            "le porte-parole",
        ),
        (
            "D'après l'ambassadeur, la situation reste très tendue.",
            "la situation reste très tendue",
            "D'après",
            "l'ambassadeur",
        ),
        (
            "Les négociations ont échoué, a-t-elle affirmé.",
            "Les négociations ont échoué",
            "a-t-elle affirmé",
            "elle",
        ),
    ],
)
def test_french_indirect_quotes(text, quote, cue, speaker):
    assert tagged(text, "fr") == attribution(quote, cue, speaker, "indirect")


def test_french_declaring_war_is_no_speech():
    spans, _ = tagged("Le pays a déclaré la guerre à son voisin en 1914.", "fr")
    assert not any(label.startswith("QUOTE") for label, *_ in spans)


# --------------------------------------------------------------------------- choosing


def test_the_article_language_chooses_the_lexicon():
    text = "Die Kanzlerin sagte, dass die Gespräche gescheitert seien."
    assert preannotate(text, "de-DE") == preannotate(text, "DE") == preannotate(text, "de")
    assert preannotate(text, "de")["spans"]
    assert preannotate(text) == preannotate(text, "en") == {"spans": [], "relations": []}


def test_a_language_without_a_lexicon_gets_nothing():
    text = "“We will not give in,” she said. The minister said that talks had failed."
    assert preannotate(text, "en")["spans"]
    for lang in ("xx", "pl-PL", "ZH"):
        assert preannotate(text, lang) == {"spans": [], "relations": []}


def test_frame_tags_each_article_in_its_language():
    texts = {
        "en": "“We will not give in,” she said.",
        "de": "„Wir geben nicht auf“, sagte sie.",
        "fr": f"«{NBSP}Nous ne céderons pas{NBSP}», dit-elle.",
        "xx": "“We will not give in,” she said.",
    }
    articles = pd.DataFrame(
        {"article_id": list(texts), "text": list(texts.values()), "language": list(texts)}
    )
    spans, relations = preannotate_frame(articles)
    assert spans.groupby("article_id").size().to_dict() == {"de": 3, "en": 3, "fr": 3}
    assert set(relations["article_id"]) == {"en", "de", "fr"}
