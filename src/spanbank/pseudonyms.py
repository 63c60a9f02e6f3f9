"""Annotator pseudonyms: `ann-` + 8 hex of an HMAC keyed by the corpus's secret (light: no SDK)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

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
