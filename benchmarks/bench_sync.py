"""Push and pull benchmarks against baselines.

push: `ls_push.push_batch` of N synthetic articles into a new project on the local Label Studio
(read from the corpus, tasks built, imported in chunks, each chunk recorded in `tasks`) vs one
raw bulk POST of the same task JSON to a fresh project on the same server. Goal: ours / raw
time <= 1.25 (>= 0.8 of the raw rate). Ours also finds and creates its project (two requests,
about 0.1 s: the baseline's project is made before its clock starts), which is most of the gap
at small N. Label Studio's own import time is bimodal (some imports take ~1.5x as long, in
runs), so compare medians of several repeats.

pull: the pull-side conversion of N annotated tasks (`labelstudio.convert.convert_annotation`
on every annotation of a JSON payload shaped as Label Studio returns it: offsets verified
against the text, spans/relations/rejects built) vs plain `json.loads` of the same payload.

The server is the local one (`spanbank.labelstudio.server`, data dir `<cache>/bench-server`); it is started
if needed and left running. Usage: python benchmarks/bench_sync.py --n 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import fmt_row, measure, synth_corpus

_server = None


def server_info() -> dict:
    """URL and key of the local benchmark Label Studio (started once, reused)."""
    global _server
    if _server is None:
        from spanbank.labelstudio import server

        info = server.start(data_dir=server.cache_dir() / "bench-server")
        _server = {"url": info.url, "key": server.read_env_file(info.env_file)[server.ENV_KEY]}
    return _server


def _articles(n: int):
    import pandas as pd
    import pyarrow.parquet as pq

    arts = pq.read_table(synth_corpus(n) / "articles.parquet").to_pandas()
    now = pd.Timestamp("2025-06-01", tz="UTC")
    return arts.assign(url=None, language="en", origin="synth", text_sha256=None, ingested_at=now)


# ------------------------------------------------------------------------------------- push


def prepare(n: int, work: Path) -> dict:
    from spanbank.corpus import Corpus

    info = server_info()
    root = Path(tempfile.mkdtemp(prefix=f"push-{n}-", dir=work))
    corpus = Corpus.init(root / "corpus")
    with corpus.writer() as w:
        w.append("articles", _articles(n))
    return {
        "n": n,
        "root": str(root),
        "corpus": str(corpus.path),
        "tag": uuid.uuid4().hex[:6],
        **info,
    }


def ours(p: dict, rep: int) -> dict:
    import shutil

    from spanbank.corpus import Corpus
    from spanbank.labelstudio import push as ls_push
    from spanbank.labelstudio import workflow
    from spanbank.labelstudio.client import LabelStudioClient

    fresh = Path(p["root"]) / f"rep{rep}"
    shutil.copytree(p["corpus"], fresh)  # untimed: a corpus with nothing pushed yet
    client = LabelStudioClient(p["url"], p["key"])
    t0 = time.perf_counter()
    summary = workflow.run(
        ls_push.push_batch(Corpus(fresh), f"bench-ours-{p['tag']}-{rep}", client=client)
    )
    dt = time.perf_counter() - t0
    assert summary["pushed"] == p["n"], summary
    shutil.rmtree(fresh, ignore_errors=True)
    return {"s": dt, "tasks_per_s": p["n"] / dt}


def baseline(p: dict, rep: int) -> dict:
    import httpx

    from spanbank.corpus import Corpus
    from spanbank.labelstudio.client import LabelStudioClient
    from spanbank.labelstudio.convert import article_task

    corpus = Corpus(p["corpus"])
    arts = corpus.read("articles")
    cols = ["article_id", "title", "text", "source", "url", "language"]
    tasks = [article_task(r) for r in arts[cols].to_dict("records")]
    for t in tasks:
        t["meta"]["article_id"] = t["data"]["article_id"]
    project = LabelStudioClient(p["url"], p["key"]).create_project(
        f"bench-raw-{p['tag']}-{rep}", corpus.schema.label_config()
    )
    with httpx.Client(
        base_url=p["url"], headers={"Authorization": f"Token {p['key']}"}, timeout=600
    ) as raw:
        t0 = time.perf_counter()
        raw.post(f"/api/projects/{project['id']}/import", json=tasks).raise_for_status()
        dt = time.perf_counter() - t0
    return {"s": dt, "tasks_per_s": p["n"] / dt}


def cleanup(p: dict) -> None:
    import shutil

    shutil.rmtree(p["root"], ignore_errors=True)


# ------------------------------------------------------------------------------------- pull
def pull_payload(n: int, annotators: int = 2) -> str:
    """JSON of n tasks as GET /api/tasks returns them: data, meta and `annotators` annotations each."""
    import pyarrow.parquet as pq

    from spanbank.labelstudio.convert import spans_to_result

    src = synth_corpus(n, seed=1, annotators=annotators)
    arts = pq.read_table(
        src / "articles.parquet", columns=["article_id", "text", "title"]
    ).to_pandas()
    spans = pq.read_table(src / "spans.parquet").to_pandas()
    spans["attributes"] = (
        spans["attributes"].astype(object).where(spans["attributes"].notna(), None)
    )
    rels = pq.read_table(src / "relations.parquet").to_pandas()
    sp_by = {k: g.to_dict("records") for k, g in spans.groupby("annotation_id", sort=False)}
    rl_by = {k: g.to_dict("records") for k, g in rels.groupby("annotation_id", sort=False)}
    tasks = []
    for i, (aid, text, title) in enumerate(
        zip(arts["article_id"], arts["text"], arts["title"], strict=True)
    ):
        anns = []
        for k in range(annotators):
            ann = f"{aid}-ann{k + 1}"
            anns.append(
                {
                    "id": i * annotators + k + 1,
                    "completed_by": k + 1,
                    "was_cancelled": False,
                    "created_at": "2025-06-01T10:00:00Z",
                    "updated_at": "2025-06-01T10:00:00Z",
                    "lead_time": 42.0,
                    "result": spans_to_result(text, sp_by.get(ann, []), rl_by.get(ann, [])),
                }
            )
        tasks.append(
            {
                "id": i + 1,
                "data": {"text": text, "article_id": aid, "title": title},
                "meta": {"article_id": aid},
                "annotations": anns,
            }
        )
    return json.dumps({"tasks": tasks, "total": n}, ensure_ascii=False)


def prepare_pull(n: int, work: Path) -> dict:
    path = work / f"pull-payload-{n}.json"
    if not path.exists():
        path.write_text(pull_payload(n), encoding="utf-8")
    return {"payload": str(path), "n": n}


def ours_pull(p: dict, rep: int) -> dict:
    from spanbank.labelstudio import convert
    from spanbank.schema import load_schema

    schema = load_schema()
    raw = Path(p["payload"]).read_text("utf-8")
    t0 = time.perf_counter()
    spans = rejects = 0
    for task in json.loads(raw)["tasks"]:
        text = task["data"]["text"]
        for ann in task["annotations"]:
            convert.result_sha(ann["result"])
            conv = convert.convert_annotation(
                ann["result"], text, schema, f"a{ann['id']}", task["meta"]["article_id"]
            )
            spans += len(conv.spans)
            rejects += len(conv.rejects)
    dt = time.perf_counter() - t0
    return {"s": dt, "spans": spans, "rejects": rejects}


def baseline_pull(p: dict, rep: int) -> float:
    raw = Path(p["payload"]).read_text("utf-8")
    t0 = time.perf_counter()
    json.loads(raw)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["push", "pull"], default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in args.n:
        if args.only != "pull":
            rows.append(measure("bench_sync", "push", n, args.repeat))
        if args.only != "push":
            rows.append(measure("bench_sync_pull", "pull", n, args.repeat))
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    for r in rows if not args.json else ():
        extra = (
            f"  ({r['tasks_per_s']:.0f} vs {r['baseline_tasks_per_s']:.0f} tasks/s)"
            if r["workload"] == "push"
            else ""
        )
        print(fmt_row(r) + extra)


if __name__ == "__main__":
    main()
