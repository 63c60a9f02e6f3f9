"""Annotator pseudonyms: `ann-` + 8 hex of an HMAC keyed by the corpus's secret (light: no SDK)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from spanbank.errors import CorpusError

KEY_FILE = ".pseudonym_key"


def pseudonym(key: bytes, basis: str, user_id) -> str:
    """`ann-` + 8 hex of HMAC-SHA256(key, basis|user id): stable, not reversible without the key.

    `basis` is the server's pseudonym basis (`identity.Server.basis`): its URL for a server
    first seen before fingerprints, else its fingerprint, so a new URL keeps every pseudonym;
    `brat` for e-mails named by imported files.
    """
    msg = f"{basis.rstrip('/')}|{user_id}".encode()
    return "ann-" + hmac.new(key, msg, hashlib.sha256).hexdigest()[:8]


def stored_key(corpus_path: Path) -> bytes | None:
    """The corpus's pseudonym key, if it has one (read, never made)."""
    try:
        return bytes.fromhex((Path(corpus_path) / KEY_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def pseudonym_key(corpus) -> bytes:
    """The corpus's secret for annotator pseudonyms (`<corpus>/.pseudonym_key`, 0600, made once,
    before the first pseudonym: a new key would give people who have one a second)."""
    path = corpus.path / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    made = len(corpus.read("annotators", columns=["annotator"]))
    if made:
        raise CorpusError(
            f"{path} is missing, yet {made} annotator pseudonym(s) of this corpus were made with "
            "it; restore it from where the corpus came from (`cp -r corpus/*` leaves dot files "
            "behind): a new key would give the same people new pseudonyms"
        )
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key
