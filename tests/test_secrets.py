"""Secrets and people: the API key appears nowhere; annotator e-mails only in the local annotators table.

The whole workflow runs as CLI subprocesses against a local Label Studio whose outbound
traffic all goes to a recording proxy sink (tests/_sink.py); its key (generated, read from
its env file) and the annotators' e-mails are searched for in every output stream, Label
Studio's own log, everything the sink received and every file under the corpus and the
exports (Parquet cells decoded, compressed files inflated). Also: the server listens on
loopback only and its env file is mode 0600.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _helpers import region
from _sink import private_server
from conftest import _test_data_dir
from spanbank.labelstudio import server
from spanbank.labelstudio.client import LabelStudioClient

pytestmark = pytest.mark.labelstudio
SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def _contents(path: Path) -> list[bytes]:
    """A file's bytes, plus decoded forms where it is compressed (Parquet cells, zlib, gzip)."""
    data = path.read_bytes()
    out = [data]
    if data[:4] == b"PAR1":
        table = pq.read_table(path)
        out.append(json.dumps(table.to_pylist(), default=str, ensure_ascii=False).encode())
        out.append(str(table.schema.metadata).encode())
    for inflate in (zlib.decompress, gzip.decompress):
        try:
            out.append(inflate(data))
        except Exception:  # not compressed that way
            pass
    return out


def _hits(root: Path, needles: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        blobs = _contents(f)
        for n in needles:
            if any(n.encode() in b for b in blobs):
                found.setdefault(n, []).append(str(f.relative_to(root)))
    return found


@pytest.fixture
def private(request):
    """(ServerInfo, Sink): a Label Studio whose outbound traffic all goes to the sink."""
    return private_server(request.config, Path(f"{_test_data_dir()}-private"))


def test_key_and_emails_stay_private(tmp_path, private):
    ls_server, sink = private
    key = server.connection(env_file=ls_server.env_file)[1]
    ls_client = LabelStudioClient(ls_server.url, key)
    assert len(key) >= 20
    tag = uuid.uuid4().hex[:6]
    emails = [f"alice.secret-{tag}@people.example", f"bob.secret-{tag}@people.example"]
    users = [ls_client.create_user(e, f"sec{i}{tag}") for i, e in enumerate(emails)]
    project = f"sec-{tag}"
    corpus, exports = tmp_path / "corpus", tmp_path / "exports"
    # the key reaches spanbank only through the environment, as a user would set it
    env = {k: v for k, v in os.environ.items() if k not in (server.ENV_URL, server.ENV_KEY)}
    env |= {
        server.ENV_URL: ls_server.url,
        server.ENV_KEY: key,
        "SPANBANK_CACHE": str(tmp_path / "cache"),
    }
    streams: list[tuple[str, str]] = []

    def sb(*args):
        out = subprocess.run(
            [sys.executable, "-m", "spanbank", "--corpus", str(corpus), *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert out.returncode == 0, (args, out.stderr)
        streams.append((" ".join(map(str, args[:2])), out.stdout + out.stderr))
        return out

    sb("init")
    sb("ingest", SEEDS)
    sb("status")
    sb("push", "--project", project, "--create", "--overlap", "2", "--preannotate", "rules")
    sb("push", "--project", project, "--json")
    from spanbank.corpus import Corpus

    tasks = Corpus(corpus).read("tasks")
    texts = Corpus(corpus).read("articles").set_index("article_id")["text"]
    for aid, tid in zip(tasks["article_id"], tasks["ls_task_id"], strict=True):
        text = texts[aid]
        words = [w for w in text.split() if len(w) > 3][:3]
        for k, u in enumerate(users):
            result = [
                region(f"r{j}", text, w, ("SPEAKER", "CUE", "EVENT")[(j + k) % 3])
                for j, w in enumerate(words[: 2 + k])
            ]
            ls_client.create_annotation(int(tid), result, completed_by=u["id"])
    sb("pull", "--project", project)
    sb("pull", "--project", project, "--json", "--full")
    sb("status")
    sb("agree", "--project", project)
    sb("agree", "--project", project, "--json")
    exports.mkdir()
    sb("agree", "--project", project, "--html", exports / "agreement.html")
    sb("adjudicate", "--project", project)
    sb("adjudicate", "--project", project, "--json")
    sb(
        "export",
        "--format",
        "jsonl,spacy,hf,conll,brat,quotes",
        "--project",
        project,
        "--out",
        exports / "ds",
    )
    sb("export", "--format", "jsonl", "--project", project, "--out", exports / "ds2", "--json")
    # a wrong key is reported without echoing it
    bad = "wrongkey" + uuid.uuid4().hex
    out = subprocess.run(
        [sys.executable, "-m", "spanbank", "--corpus", str(corpus), "pull", "--project", project],
        env={**env, server.ENV_KEY: bad},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and bad not in out.stdout + out.stderr
    streams.append(("pull (bad key)", out.stdout + out.stderr))

    for name, text in streams:
        assert key not in text, f"the API key appears in the output of `{name}`"
        for e in emails:
            assert e not in text, f"an e-mail appears in the output of `{name}`"
    log = Path(ls_server.log_file).read_text("utf-8", errors="replace")
    assert key not in log, "key in the server log"
    assert not [e for e in emails if e in log], "an e-mail in the server log"
    assert sink.first_lines() == [], "Label Studio reached outside the machine"
    assert not [n for n in (key, *emails) if n.encode() in sink.blob()], "a secret reached the sink"
    for root in (corpus, exports):
        hits = _hits(root, [key, *emails])
        assert key not in hits, hits
        for e in emails:
            where = {h.split("/")[0] for h in hits.get(e, [])}
            assert where == ({"annotators"} if root == corpus else set()), hits
    assert set(Corpus(corpus).read("annotators")["email"]) >= set(emails)
    files = sum(1 for r in (corpus, exports) for p in r.rglob("*") if p.is_file())
    print(f"\nSECRETS FIGURES {json.dumps({'streams': len(streams), 'files_searched': files})}")


def test_server_binds_loopback_and_env_file_is_private(ls_server):
    mode = stat.S_IMODE(os.stat(ls_server.env_file).st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(os.stat(ls_server.data_dir).st_mode) & 0o077 == 0
    port = int(ls_server.url.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, lport = fields[1].split(":")
            if int(lport, 16) == port and fields[3] == "0A":  # LISTEN
                listening.append((table, addr))
    assert listening, "nothing listens on the server's port"
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert all(addr in loopback for _, addr in listening), listening
