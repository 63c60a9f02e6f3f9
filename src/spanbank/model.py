"""A spaCy span model trained from the corpus's gold, and its predictions.

One transition-based entity recognizer (spaCy's `ner`) per layer: spans that overlap a span
of an earlier layer go to the next one, so nested and overlapping gold is learned too. A
discontinuous span is learned as its fragments, and predicted as pieces.
"""

from __future__ import annotations

import gc
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from spanbank.errors import SpanbankError
from spanbank.spans import fragment_list

CARD = "card.json"
KIND = "spanbank-ner-2"
MAX_LAYERS = 3
MIN_LAYER_SHARE = 0.01
_QMARKS = "\"“”„«»'‘’"
_CUE_GAP = 150  # characters between a quote and its cue, at most
_SPEAKER_GAP = 60  # characters between a cue and its speaker, at most
_BATCH = 64
WIDTH, DEPTH = 96, 4  # the CNN under each ner: its cost sets the prediction speed


class NotAModel(SpanbankError):
    """A directory that holds no spanbank model."""


def split_articles(
    ids: list[str], holdout: float, seed: int, texts: list[str] | None = None
) -> tuple[set, set]:
    """(train ids, held-out ids): a seeded shuffle of groups of articles with one text (its
    sha256, as the articles' text_sha256), so a text stored twice is never on both sides.
    Without `texts`, or with every text distinct, this is the plain shuffle of ids it was."""
    from spanbank.corpus.ingest import text_sha256

    keys = [text_sha256(t) for t in texts] if texts is not None else list(ids)
    groups: dict[str, set] = {}
    for aid, key in zip(ids, keys, strict=True):
        groups.setdefault(key, set()).add(aid)
    order = sorted(groups.values(), key=min)
    random.Random(seed).shuffle(order)
    n = round(len({a for g in order for a in g}) * holdout)
    held: set = set()
    for g in order:
        if len(held) >= n:
            break
        held |= g
    return {a for g in order for a in g} - held, held


def _token_spans(doc, spans: list[dict], labels: set) -> list[tuple[int, int, str]]:
    """Gold spans (their fragments) as token ranges, trimmed of whitespace tokens."""
    out = set()
    for s in spans:
        if s["label"] not in labels:
            continue
        for a, b in fragment_list(s["start"], s["end"], s.get("fragments")):
            sp = doc.char_span(a, b, alignment_mode="expand")
            if sp is None:
                continue
            i, j = sp.start, sp.end
            while i < j and doc[i].is_space:
                i += 1
            while j > i and doc[j - 1].is_space:
                j -= 1
            if i < j:
                out.add((i, j, s["label"]))
    return sorted(out, key=lambda t: (t[0], -t[1], t[2]))


def layers(tspans: list[tuple[int, int, str]], n: int = MAX_LAYERS) -> list[list[tuple]]:
    """Spans dealt to `n` layers: each to the first layer where it overlaps nothing (else dropped)."""
    out: list[list[tuple]] = [[] for _ in range(n)]
    for s in tspans:
        for layer in out:
            if all(s[1] <= t[0] or t[1] <= s[0] for t in layer):
                layer.append(s)
                break
    return out


def _examples(nlp, items, labels: set) -> tuple[list[list], int]:
    """Per layer, the training Examples (reference ents = that layer's spans), and how many gold
    spans are not learned: a layer past the first is trained only when it holds at least
    MIN_LAYER_SHARE of the spans (tokenisation makes a few neighbours overlap by a token)."""
    from spacy.tokens import Span
    from spacy.training import Example

    dealt, total = [], 0
    for it in items:
        spans = _token_spans(make_doc(nlp, it[1]), it[2], labels)
        total += len(spans)
        dealt.append((it[1], layers(spans)))
    counts = [sum(len(d[k]) for _, d in dealt) for k in range(MAX_LAYERS)]
    n = 1 + sum(1 for c in counts[1:] if c / max(1, total) >= MIN_LAYER_SHARE)
    per_layer: list[list] = [[] for _ in range(n)]
    for text, d in dealt:
        for k in range(n):
            if k and not d[k]:
                continue
            ref = make_doc(nlp, text)
            ref.ents = [Span(ref, a, b, label=lab) for a, b, lab in sorted(d[k])]
            per_layer[k].append(Example(make_doc(nlp, text), ref))
    return per_layer, total - sum(counts[:n])


def make_doc(nlp, text: str):
    """nlp.make_doc for a text of any length: spaCy refuses one over nlp.max_length (E088, 1M
    characters by default), a guard for the memory of parsers and taggers spanbank does not run;
    the tokenizer and the ner take any length, so the limit is raised to the text at hand."""
    if len(text) > nlp.max_length:
        nlp.max_length = len(text)
    return nlp.make_doc(text)


def blank(lang: str):
    """spacy.blank(lang), or spaCy's multi-language `xx` pipeline for a language spaCy has no
    class for (sw, cy, und: E048), as the ner learns from tokens in any language; a one-line
    error when spaCy has the language but not a package its tokenizer needs (ja, ko, th)."""
    import spacy
    from spacy.util import get_lang_class

    try:
        get_lang_class(lang)
    except ImportError:
        return spacy.blank("xx")
    try:
        return spacy.blank(lang)
    except ImportError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise SpanbankError(
            f"spaCy's tokenizer for language {lang!r} needs a package that is not installed: "
            f"{first[:200]}"
        ) from None


def build_pipeline(
    lang: str, labels: list[str], n_layers: int = 1, width: int = WIDTH, depth: int = DEPTH
):
    """A blank pipeline with one `ner` per layer, each with its own CNN tok2vec."""
    nlp = blank(lang)
    for k in range(n_layers):
        ner = nlp.add_pipe(
            "ner",
            name=f"ner{k}",
            config={
                "model": {
                    "@architectures": "spacy.TransitionBasedParser.v2",
                    "state_type": "ner",
                    "extra_state_tokens": False,
                    "hidden_width": 64,
                    "maxout_pieces": 2,
                    "use_upper": True,
                    "tok2vec": {
                        "@architectures": "spacy.HashEmbedCNN.v2",
                        "width": width,
                        "depth": depth,
                        "embed_size": 2000,
                        "window_size": 1,
                        "maxout_pieces": 3,
                        "subword_features": True,
                        "pretrained_vectors": None,
                    },
                }
            },
        )
        for lab in labels:
            ner.add_label(lab)
    return nlp


def train(
    items: list[tuple],
    out: Path,
    labels: list[str],
    lang: str = "en",
    seed: int = 0,
    holdout: float = 0.1,
    epochs: int = 10,
    progress=None,
    data: dict | None = None,
    width: int = WIDTH,
    depth: int = DEPTH,
    languages: dict | None = None,
) -> dict:
    """Train on items (article_id, text, spans, relations) outside the held-out split; save the
    pipeline and a model card (data version, labels, held-out scores) in `out`, whole or not at
    all (replacing only an earlier model); returns the card. `languages` (article_id -> language)
    leaves held-out articles `predict` would not tag out of the scores, as --eval does."""
    from spacy.util import fix_random_seed, minibatch

    from spanbank import outdir

    if not items:
        raise SpanbankError("no gold to train on; pull or import annotations first")
    out = Path(os.path.abspath(out))
    outdir.check(out, "model", _not_a_model, SpanbankError)  # before the work; again at the end
    if (folder := outdir.corpus_around(out.parent)) is not None:  # as preannotate --out
        raise SpanbankError(
            f"--out {out} is inside the spanbank corpus {folder}; write the model outside it"
        )
    fix_random_seed(seed)
    rng = random.Random(seed)
    train_ids, held = split_articles(
        [it[0] for it in items], holdout, seed, [it[1] for it in items]
    )
    probe = build_pipeline(lang, labels)
    per_layer, dropped = _examples(probe, [it for it in items if it[0] in train_ids], set(labels))
    nlp = build_pipeline(lang, labels, n_layers=len(per_layer), width=width, depth=depth)
    names = nlp.pipe_names
    t0 = time.perf_counter()
    opt = nlp.initialize(lambda: [e for exs in per_layer for e in exs])
    for epoch in range(epochs):
        losses: dict = {}
        for name, exs in zip(names, per_layer, strict=True):
            rng.shuffle(exs)
            others = [n for n in names if n != name]
            for batch in minibatch(exs, size=8):
                nlp.update(batch, sgd=opt, losses=losses, drop=0.1, exclude=others)
        if progress:
            progress(epoch + 1, epochs, losses)
    seconds = time.perf_counter() - t0
    left_out = heldout_left_out(sorted(held), languages or {}, lang)
    held_items = [it for it in items if it[0] in held and it[0] not in left_out]
    card = {
        "kind": KIND,
        "labels": labels,
        "lang": lang,
        "pipeline_lang": nlp.lang,  # spaCy's "xx" for a language it has no class for
        "seed": seed,
        "epochs": epochs,
        "layers": len(per_layer),
        "width": width,
        "depth": depth,
        "data": data or {},
        "train_articles": len(train_ids),
        "gold_spans_not_learned": dropped,
        "train_seconds": round(seconds, 1),
        "heldout_scores": heldout_scores(nlp, held_items) if held_items else {},
        "heldout_articles": sorted(held),
        "heldout_left_out": left_out,
    }
    with outdir.replacing(out, "model", _not_a_model, SpanbankError) as tmp:
        nlp.to_disk(tmp / "pipeline")
        (tmp / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return card


def _not_a_model(path: Path) -> str | None:
    """Why `path` is not a model `train` wrote (of any kind: an older one is replaced too), or None."""
    try:
        json.loads((path / CARD).read_text())["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {CARD}"
    other = sorted(p.name for p in path.iterdir() if p.name not in (CARD, "pipeline"))
    if other or not (path / "pipeline").is_dir():
        return f"{other[0]} is not a model's" if other else "no pipeline/"
    return None


def heldout_left_out(held: list[str], languages: dict, model_lang: str | None) -> dict:
    """{article_id: why} for the held-out articles the model does not tag (another language):
    the card's scores and `preannotate --model --eval` both leave them out, so they agree."""
    from spanbank.preannotate import language_code
    from spanbank.predict import skip_reason

    out = {}
    for aid in held:
        if aid in languages:
            why = skip_reason(languages[aid], language_code(model_lang))
            if why is not None:
                out[aid] = why
    return out


def heldout_scores(nlp, held: list[tuple]) -> dict:
    """IoU >= 0.5 P/R/F1 per label and link type over the held-out articles."""
    from spanbank.tagger_eval import score_items

    preds = predict(nlp, [it[1] for it in held])
    return score_items(preds, held)["overlap"]


def check(path: str | Path) -> Path:
    """`path` as a Path; NotAModel when it holds no model, or one that does not load."""
    path = Path(path)
    card(path)
    loaded(str(path))
    return path


def card(path: Path) -> dict:
    """The model card in `path`; NotAModel when there is none, it is damaged or of another kind."""
    missing = [
        n
        for n, ok in ((CARD, (path / CARD).is_file()), ("pipeline/", (path / "pipeline").is_dir()))
        if not ok
    ]
    if missing:  # name what is missing: a copy without pipeline/ was said to have no card.json
        raise NotAModel(
            f"{path} is not a spanbank model (no {' and no '.join(missing)}); "
            "train one with spanbank train"
        )
    try:
        found = json.loads((path / CARD).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(path, CARD, exc) from None
    if not isinstance(found, dict):
        raise _damaged(path, CARD, "it holds no JSON object")
    if found.get("kind") != KIND:
        raise NotAModel(
            f"{path} is a {found.get('kind')} model; this spanbank reads {KIND}: train it again"
        )
    return found


def load(path: str | Path):
    """(pipeline, card) from a model directory; NotAModel when it is not one or does not load."""
    import spacy

    path = Path(path)
    found = card(path)
    collecting = gc.isenabled()
    try:
        nlp = spacy.load(path / "pipeline")
    except Exception as exc:  # noqa: BLE001 - spaCy, srsly and confection each fail their own way
        if collecting:  # srsly pauses the collector around msgpack and skips resuming on error
            gc.enable()
        raise _damaged(path, "pipeline", exc) from None
    why = _not_our_pipeline(nlp, found)
    if why:
        raise NotAModel(f"{path} is not a spanbank model ({why}); train one with spanbank train")
    return nlp, found


def _not_our_pipeline(nlp, found: dict) -> str | None:
    """Why a loaded pipeline is not one `train` writes, or None: each component must be an `ner`
    whose labels are the card's (a sentencizer crashed predict; a PERSON ner wrote PERSON spans)."""
    if not nlp.pipe_names:
        return "its pipeline has no ner"
    card_labels = found.get("labels") if isinstance(found.get("labels"), list) else []
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        if factory != "ner":
            return f"its pipeline's {name!r} is a {factory}, not an ner"
        extra = sorted(set(nlp.get_pipe(name).labels) - set(card_labels))
        if extra:
            return f"its ner labels {', '.join(extra)} are not in card.json's labels"
    return None


def check_labels(path: str | Path, schema) -> None:
    """NotAModel when the model in `path` predicts labels the corpus's schema lacks: its spans
    could not be stored, pushed or scored there."""
    bad = [x for x in card(Path(path)).get("labels") or [] if x not in schema.labels]
    if bad:
        raise NotAModel(
            f"{path}: the model's labels {', '.join(bad)} are not in this corpus's schema "
            f"(known: {', '.join(sorted(schema.labels))})"
        )


def _damaged(path: Path, part: str, why) -> NotAModel:
    """The one-line error for a model whose `part` is damaged (a truncated copy, a hand edit)."""
    lines = [ln.strip() for ln in str(why).splitlines() if ln.strip()]
    first = lines[0][:200] if lines else type(why).__name__
    return NotAModel(f"{path}: a damaged model ({part}: {first}); train it again")


def _gap(a: dict, b: dict) -> int:
    return max(0, max(a["start"], b["start"]) - min(a["end"], b["end"]))


def link(spans: list[dict]) -> list[dict]:
    """Rules over predicted spans: a quote's cue is the nearest CUE; its speaker the SPEAKER
    nearest that cue (or the quote, when it has no cue)."""
    cues = [s for s in spans if s["label"] == "CUE"]
    speakers = [s for s in spans if s["label"] == "SPEAKER"]
    rels = []
    for q in (s for s in spans if s["label"] == "QUOTE"):
        cue = min(cues, key=lambda c: _gap(q, c), default=None)
        if cue is not None and _gap(q, cue) > _CUE_GAP:
            cue = None
        anchor, limit = (cue, _SPEAKER_GAP) if cue else (q, _CUE_GAP)
        spk = min(speakers, key=lambda s: _gap(anchor, s), default=None)
        if spk is not None and _gap(anchor, spk) <= limit:
            rels.append(
                {"from_span_id": q["span_id"], "to_span_id": spk["span_id"], "label": "said_by"}
            )
        if cue is not None:
            rels.append(
                {"from_span_id": q["span_id"], "to_span_id": cue["span_id"], "label": "cue"}
            )
    return rels


def _parse(ner, docs) -> list[np.ndarray]:
    """Run one `ner` on docs (setting doc.ents, as ner(doc) would) and return, per doc, its
    confidence at each token: the largest probability of a softmax over all moves' scores."""
    batch = ner.moves.init_batch(docs)
    step = ner.model.predict(docs)
    todo = [s for s in batch if not s.is_final()]
    conf: list[list[float]] = [[] for _ in docs]
    index = {id(s): i for i, s in enumerate(batch)}
    while todo:
        scores = np.ascontiguousarray(step.predict(todo), dtype="float32")
        z = np.exp(scores - scores.max(1, keepdims=True))
        p = z / z.sum(1, keepdims=True)
        rows = [index[id(s)] for s in todo]
        todo = ner.transition_states(todo, scores)
        taken = p.max(1)
        for r, c in zip(rows, taken, strict=True):
            conf[r].append(float(c))
    step.clear_memory()
    ner.set_annotations(docs, batch)
    return [np.asarray(c) for c in conf]


def _spans(doc, conf: np.ndarray) -> list[dict]:
    """The doc's entities as span dicts, each scored by the mean confidence over its tokens and
    trimmed of leading and trailing whitespace (as gold is learned): the ner takes in "\n\n" and
    "\r\n" tokens, which annotators would see and store. A span of only whitespace is dropped."""
    text, out = doc.text, []
    for e in doc.ents:
        a, b = e.start_char, e.end_char
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a == b:
            continue
        c = conf[e.start : e.end] if len(conf) >= e.end else conf
        out.append(
            {
                "label": e.label_,
                "start": a,
                "end": b,
                "score": round(float(c.mean()) if len(c) else 1.0, 4),
            }
        )
    return out


def _result(text: str, spans: list[dict]) -> dict:
    """Spans with ids, texts and quote types, and their links. A quote the model found in pieces
    stays in pieces: joining pieces around a cue scored lower on PolNeAR (0.59 vs 0.63 F1)."""
    out = []
    for s in spans:
        row = {**s, "text": text[s["start"] : s["end"]], "fragments": None, "attributes": {}}
        if row["label"] == "QUOTE":
            row["attributes"] = {"type": quote_type(row["text"])}
        out.append(row)
    out.sort(key=lambda s: (s["start"], s["end"], s["label"]))
    for i, s in enumerate(out):
        s["span_id"] = f"m{i + 1}"
    return {"spans": out, "relations": link(out)}


def quote_type(text: str) -> str:
    """direct when the quote opens or closes with a quote mark, else indirect."""
    t = text.strip()
    return "direct" if t[:1] in _QMARKS or t[-1:] in _QMARKS else "indirect"


def predict(nlp, texts) -> list[dict]:
    """{spans, relations} per text, as the rule tagger returns them; each span has a score."""
    texts = list(texts)
    out = []
    for i in range(0, len(texts), _BATCH):
        chunk = texts[i : i + _BATCH]
        docs = [make_doc(nlp, t) for t in chunk]
        found: list[list[dict]] = [[] for _ in docs]
        doubt = [0.0] * len(docs)
        for name in nlp.pipe_names:
            confs = _parse(nlp.get_pipe(name), docs)
            for k, (doc, conf) in enumerate(zip(docs, confs, strict=True)):
                found[k].extend(_spans(doc, conf))
                doubt[k] += float((1.0 - conf).sum())
                doc.ents = ()
        for t, f, d in zip(chunk, found, doubt, strict=True):
            out.append({**_result(t, f), "uncertainty": round(d, 4)})
    return out


def uncertainty(result: dict) -> float:
    """How unsure the model was of an article: 1 - confidence, summed over its tokens."""
    return result["uncertainty"]


_LOADED: dict = {}


def loaded(model_dir: str):
    """The pipeline of a model directory, loaded once per process."""
    key = os.path.abspath(model_dir)
    if key not in _LOADED:
        _LOADED[key] = load(model_dir)[0]
    return _LOADED[key]
