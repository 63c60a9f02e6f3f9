"""Benchmark push and pull against the local Label Studio, each against a raw HTTP baseline.

Usage: python benchmarks/bench_sync.py [--n 5000] [--seed 0] [--repeat 3] [--data-dir DIR]

push: `sync.push_batch` of N articles (read from the corpus, tasks built, imported in
chunks, each chunk recorded in `tasks`) vs one raw bulk POST of the same task JSON to a
fresh project on the same server. Goal: rate ratio >= 0.8.

pull: `sync.pull --full` of N annotated tasks (list, fetch, verify offsets, convert, store
versions) vs fetching the same tasks raw (paged GET /api/tasks, JSON decoded). Goal: rate
ratio >= 0.5. Peak RSS of this process is printed too.

The server is the local one (`spanbank.server`, data dir `<cache>/bench-server` unless
--data-dir); it is started if needed and left running for the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd

from spanbank import server, sync
from spanbank.corpus import Corpus
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.labelstudio.convert import article_task, spans_to_result
from spanbank.preannotate import preannotate
from spanbank.schema import load_schema

NAMES = ["Dmitry Peskov", "Ana López", "Zoë Martínez", "Olaf Scholz", "Kaja Kallas", "Li Qiang"]
VERBS = ["said", "told reporters", "added", "warned", "confirmed"]


def synthetic_articles(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows, now = [], pd.Timestamp.now(tz="UTC")
    for i in range(n):
        paras = []
        for _ in range(rng.randint(4, 8)):
            name, verb = rng.choice(NAMES), rng.choice(VERBS)
            emoji = rng.choice(["", "", " 😀", " 🎉"])
            paras.append(
                f"The talks in Geneva{emoji} went on for {rng.randint(2, 9)} hours. "
                f"“We will not accept this proposal,” {name} {verb}. "
                f"{name.split()[-1]} {verb} that the sanctions would stay in place."
            )
        text = "\r\n\r\n".join(paras) if i % 7 == 0 else "\n\n".join(paras)
        rows.append({
            "article_id": f"bench-{i:06d}", "title": f"Story {i}", "text": text,
            "source": rng.choice(["reuters", "ap", "afp"]), "url": f"https://example.org/{i}",
            "published_at": now, "language": "en", "origin": "bench",
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(), "ingested_at": now,
        })
    return pd.DataFrame(rows)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="push repetitions (best of)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    info = server.start(data_dir=args.data_dir or server.cache_dir() / "bench-server")
    url, key = info.url, server.read_env_file(info.env_file)[server.ENV_KEY]
    client = LabelStudioClient(url, key)
    raw = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=300)
    tag = uuid.uuid4().hex[:6]
    articles = synthetic_articles(args.n, args.seed)
    print(f"server {url}; {args.n} articles, {articles['text'].str.len().mean():.0f} chars on average")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Corpus.init(Path(tmp) / "corpus")
        with corpus.writer() as w:
            w.append("articles", articles)

        # --- push ---------------------------------------------------------------------
        config = load_schema().label_config()
        tasks = [article_task(r) for r in articles[["article_id", "title", "text", "source", "url", "language"]].to_dict("records")]
        t_raw = t_ours = float("inf")
        for rep in range(args.repeat):  # alternate, best of: the server shares the machine
            base = client.create_project(f"bench-raw-{tag}-{rep}", config)
            t0 = time.perf_counter()
            raw.post(f"/api/projects/{base['id']}/import", json=tasks).raise_for_status()
            t_raw = min(t_raw, time.perf_counter() - t0)
            fresh = Corpus.init(Path(tmp) / f"push-{rep}")
            with fresh.writer() as w:
                w.append("articles", articles)
            t0 = time.perf_counter()
            summary = sync.run(sync.push_batch(fresh, f"bench-ours-{tag}-{rep}", client=client))
            t_ours = min(t_ours, time.perf_counter() - t0)
            assert summary["pushed"] == args.n, summary
        print(f"push: raw bulk POST {args.n / t_raw:,.0f} tasks/s ({t_raw:.2f} s); "
              f"push_batch {args.n / t_ours:,.0f} tasks/s ({t_ours:.2f} s, chunks of 1000, each recorded); "
              f"ratio {t_raw / t_ours:.2f} (goal >= 0.8); best of {args.repeat}")

        # --- pull ---------------------------------------------------------------------
        user = client.create_user(f"bench-{tag}@example.org", f"bench{tag}")
        annotated = []
        for t, text in zip(tasks, articles["text"], strict=True):
            tagged = preannotate(text)
            result = spans_to_result(text, tagged["spans"], tagged["relations"])
            annotated.append({**t, "annotations": [{"result": result, "completed_by": user["id"]}]})
        proj = client.create_project(f"bench-pull-{tag}", config)
        raw.post(f"/api/projects/{proj['id']}/import", json=annotated).raise_for_status()
        n_regions = sum(sum(1 for x in a["annotations"][0]["result"] if x["type"] == "labels") for a in annotated)
        del annotated

        t0 = time.perf_counter()
        fetched, page = 0, 1
        while fetched < args.n:
            r = raw.get("/api/tasks", params={"project": proj["id"], "fields": "all", "page_size": 500, "page": page})
            r.raise_for_status()
            fetched += len(r.json()["tasks"])
            page += 1
        t_raw = time.perf_counter() - t0
        # in a child process, so its peak RSS is the pull's own
        env = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": key}
        cmd = [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path), "pull",
               "--project", f"bench-pull-{tag}", "--full", "--json"]
        import psutil  # dev dependency

        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        child, child_rss = psutil.Process(proc.pid), 0.0
        while proc.poll() is None:  # sampled: ru_maxrss of a forked child counts the parent's pages
            try:
                child_rss = max(child_rss, child.memory_info().rss / 2**20)
            except psutil.Error:
                break
            time.sleep(0.05)
        stdout, stderr = proc.communicate()
        t_ours = time.perf_counter() - t0
        assert proc.returncode == 0, stderr
        summary = json.loads(stdout)
        assert summary["new"] == args.n, summary
        print(f"pull: raw fetch {args.n / t_raw:,.0f} tasks/s ({t_raw:.2f} s); "
              f"`spanbank pull --full` (fetch+verify+convert+store) {args.n / t_ours:,.0f} tasks/s "
              f"({t_ours:.2f} s); ratio {t_raw / t_ours:.2f} (goal >= 0.5)")
        print(f"pull stored {summary['spans']} spans of {n_regions} regions, {summary['relations']} relations, "
              f"{summary['rejected']} rejects, repaired {summary['repaired']}; peak RSS of the pull "
              f"process {child_rss:.0f} MB (this process: {peak_rss_mb():.0f} MB)")
        again = time.perf_counter()
        summary = sync.run(sync.pull(corpus, f"bench-pull-{tag}", client=client))
        print(f"incremental re-pull with nothing changed: {time.perf_counter() - again:.2f} s, "
              f"{summary['tasks_fetched']} tasks fetched")


if __name__ == "__main__":
    main()
