"""Memory of the commands that need a few articles' texts, as the corpus around them grows.

`pull`, `adjudicate`, `agree` and `preannotate --eval` each read every article's text until
2026-12-07; now only those of the articles they work on (`spanbank.corpus.articles.texts_of`).
A corpus of N synthetic articles (`spanbank.synth`) of which the first 200 are annotated by two
annotators; for `pull`, 20 of them are pushed to the local benchmark Label Studio and annotated
there, and each run pulls them all (`full`). Each command runs in a fresh child process at N and
at `--factor` x N articles; printed: its peak RSS (VmHWM) and seconds, and the RSS slope per
1,000 articles. With `--baseline-ref`, the code at that git ref runs too, in the same rounds.
With `--imported` every other article carries one annotator's imported spans.
Usage: python benchmarks/bench_texts.py --n 100000 --baseline-ref HEAD~1
       python benchmarks/bench_texts.py --n 50000 --imported --commands adjudicate,agree
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _common import CACHE, corpus_from_synth, synth_annotations
from bench_parallel import _baseline_src, run_json

ANNOTATED = 200
PULLED = 20

RUN = """
import json, sys, time
from spanbank.corpus import Corpus
command, path = sys.argv[1], sys.argv[2]
corpus = Corpus(path)
t0 = time.perf_counter()
if command == "pull":
    from spanbank.labelstudio import pull, workflow
    from spanbank.labelstudio.client import LabelStudioClient
    client = LabelStudioClient(sys.argv[3], sys.argv[4])
    got = workflow.run(pull.pull(corpus, sys.argv[5], client=client, full=True))
    n = got["tasks_fetched"]
elif command == "adjudicate":
    from spanbank.gold import run_adjudication
    n = run_adjudication(corpus, "majority")["articles"]
elif command == "agree":
    from spanbank.agreement.report import agreement_report
    n = agreement_report(corpus, bootstrap=0)["coverage"]["articles_with_2plus"]
else:
    from spanbank.tagger_eval import gold_items
    n = len(gold_items(corpus, gold="ann1"))
s = time.perf_counter() - t0
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at the fork
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
rss = int(hwm.split()[1]) / 1024
print(json.dumps({"s": s, "rss": rss, "n": n}))
"""


def build(n: int, imported: bool = False) -> Path:
    """A corpus of n synthetic articles, the first ANNOTATED of them annotated by ann1 and ann2;
    `imported`: each of the others carries one annotator's spans, imported (an archive brought
    in from another tool), which agree and adjudicate have no second annotator to compare with."""
    root = CACHE / f"texts-{n}{'-imported' if imported else ''}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        corpus_from_synth(root / "corpus", n, annotators=2, annotated=ANNOTATED)
        if imported:
            _import_truth(root / "corpus", n)
        (root / "done").write_text("ok\n")
    return root / "corpus"


def _import_truth(path: Path, n: int) -> None:
    import pandas as pd

    from spanbank.corpus.store import Corpus
    from spanbank.corpus.tables import TABLES
    from spanbank.synth import synth_chunks

    now = pd.Timestamp("2025-06-01", tz="UTC")
    corpus = Corpus(path)
    with corpus.writer() as w:
        for i, (arts, spans, rels) in enumerate(synth_chunks(n, 0, 0, chunk=20_000)):
            if not i:
                spans = spans[~spans["article_id"].isin(set(arts["article_id"].iloc[:ANNOTATED]))]
                rels = rels[rels["annotation_id"].isin(set(spans["annotation_id"]))]
            ann = synth_annotations(spans, now, origin="import", annotator="import")
            for name, df in (
                ("spans", spans.drop(columns="annotator")),
                ("relations", rels),
                ("annotations", ann),
            ):
                w.append(name, df.reindex(columns=TABLES[name].names))


def pushed(path: Path) -> tuple[str, str, str]:
    """Push PULLED annotated articles to a new project on the benchmark server and annotate each
    there once (a quote over its first 20 characters); (url, key, project)."""
    import uuid

    from bench_sync import server_info

    from spanbank.corpus.store import Corpus
    from spanbank.labelstudio import push, workflow
    from spanbank.labelstudio.client import LabelStudioClient

    info = server_info()
    corpus = Corpus(path)
    marker = path.parent / "pushed"
    if not marker.exists():
        project = f"texts-{uuid.uuid4().hex[:8]}"
        client = LabelStudioClient(info["url"], info["key"])
        ids = sorted(corpus.read("annotations")["article_id"].unique())[:PULLED]
        workflow.run(push.push_batch(corpus, project, client=client, ids=ids, create=True))
        tasks = corpus.read("tasks")
        texts = corpus.read_in("articles", "article_id", ids, ["article_id", "text"]).to_pylist()
        text = {r["article_id"]: r["text"] for r in texts}
        for aid, tid in zip(tasks["article_id"], tasks["ls_task_id"], strict=True):
            region = {
                "id": "q",
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": 0, "end": 20, "text": text[aid][:20], "labels": ["QUOTE"]},
            }
            client.create_annotation(int(tid), [region])
        marker.write_text(project)
    return info["url"], info["key"], marker.read_text().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--baseline-ref", default=None)
    ap.add_argument("--commands", default="pull,adjudicate,agree,eval")
    ap.add_argument("--imported", action="store_true", help="the others carry imported spans")
    args = ap.parse_args()
    sizes = [args.n, args.n * args.factor]
    corpora = {n: build(n, args.imported) for n in sizes}
    commands = args.commands.split(",")
    conn = {n: pushed(corpora[n]) for n in sizes} if "pull" in commands else {}
    here = str(Path(__file__).resolve().parents[1] / "src")
    sides = {"now": here}
    base = _baseline_src(args.baseline_ref) if args.baseline_ref else None
    if base:
        sides[f"{args.baseline_ref} (before)"] = str(base / "src")
    print(f"peak RSS of a command over {ANNOTATED} annotated articles among N (fresh process each)")
    try:
        for command in commands:
            for side, path in sides.items():
                got = {}
                for n in sizes:
                    extra = list(conn[n]) if command == "pull" else []
                    got[n] = run_json(RUN, command, str(corpora[n]), *extra, path=path)
                lo, hi = (got[n] for n in sizes)
                slope = (hi["rss"] - lo["rss"]) / ((sizes[1] - sizes[0]) / 1000)
                print(
                    f"  {command:<10} {side:<18} "
                    + "  ".join(
                        f"{n:>9,}: {g['rss']:7.0f} MB {g['s']:6.2f} s" for n, g in got.items()
                    )
                    + f"  slope {slope:6.3f} MB per 1,000 articles  ({json.dumps(lo['n'])})"
                )
                sys.stdout.flush()
    finally:
        if base:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
