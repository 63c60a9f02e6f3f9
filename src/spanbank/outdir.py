"""An output folder (an export, a trained model) written whole or not at all: built in a temp
folder beside it and renamed into place, replacing only what provably came from us before."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from spanbank.corpus.store import PLAIN_FOLDER, flock_wait, fsync_path, sync_filesystem
from spanbank.errors import SpanbankError

NAME_MAX = 255  # bytes in a file name (Linux, macOS, Windows)
_RANDOM = 8  # characters tempfile adds to a prefix
_TAIL = len(".tmp-") + _RANDOM  # the longest ending of a name beside `out`: `.tmp-XXXXXXXX`


def stem_beside(name: str, tail: int = _TAIL) -> str:
    """The name temp and lock names beside `name` start with (after their dot): `name`
    itself while `.name` and a `tail` of bytes fit in a file name, else its first bytes, `~`
    and 12 hex of its sha256 (a legal 242..255-byte `--out` was refused when `.NAME.tmp-...`
    did not fit). The same for each `name`, so a killed writer's leftovers are found again."""
    if 1 + len(name.encode()) + tail <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    room = NAME_MAX - 1 - tail - 1 - len(digest)
    head = name.encode()[:room].decode(errors="ignore")  # whole characters only
    return f"{head}~{digest}"


def corpus_around(path: Path) -> Path | None:
    """The spanbank corpus folder `path` is in (or is), if any: its config and schema beside."""
    from spanbank.corpus.store import CONFIG_FILE, SCHEMA_FILE

    where = Path(os.path.abspath(path)).resolve()
    for folder in (where, *where.parents):
        if (folder / CONFIG_FILE).is_file() and (folder / SCHEMA_FILE).is_file():
            return folder
    return None


def check_name(out: Path, error: type[SpanbankError]) -> None:
    """Refuse an `--out` whose own name no file system holds."""
    size = len(out.name.encode())
    if size > NAME_MAX:
        raise error(f"--out {out}: its name has {size} bytes; a file name holds at most {NAME_MAX}")


@contextlib.contextmanager
def replacing(
    out: Path,
    what: str,
    ours: Callable[[Path], str | None],
    error: type[SpanbankError],
    wait: bool | float = False,
) -> Iterator[Path]:
    """Yield a temp folder to fill; when the block ends without error it is flushed and renamed
    to `out`, else removed. An `out` that is not empty is replaced only if `ours(out)` (why it is
    not a previous `what`, or None) says it is one; see `check`."""
    check_name(out, error)
    out.parent.mkdir(parents=True, exist_ok=True)
    with lock(out, wait, error):
        remove_leftovers(out)
        check(out, what, ours, error)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stem_beside(out.name)}.tmp-", dir=out.parent))
        os.chmod(tmp, PLAIN_FOLDER)  # it becomes `out`: readable as a plain mkdir's would be
        try:
            yield tmp
            fsync_tree(tmp)
            swap_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def check(
    out: Path, what: str, ours: Callable[[Path], str | None], error: type[SpanbankError]
) -> None:
    """Refuse an `out` whose replacement could delete anything but a previous `what`."""
    check_name(out, error)
    here = Path.cwd().resolve()
    if out == here or out in here.parents:
        raise error(
            f"--out {out} is the current folder or holds it; name a subfolder (e.g. --out {what}s/NAME)"
        )
    if not out.exists():
        return
    if out.is_symlink() or not out.is_dir():
        raise error(f"{out} exists and is not a directory; choose another --out")
    if os.path.ismount(out):  # found only at the end, by the swap's rename (EBUSY)
        raise error(
            f"--out {out} is a mount point, which a folder cannot be renamed onto; name a "
            f"folder inside it (e.g. --out {out / what}s)"
        )
    if not any(out.iterdir()):
        return
    problem = ours(out)
    if problem:
        raise error(
            f"{out} is not a spanbank {what} ({problem}) and would be replaced as a whole; choose another --out"
        )


@contextlib.contextmanager
def lock(out: Path, wait: bool | float, error: type[SpanbankError]):
    """Hold `.NAME.lock` beside `out` while it is written: two writers of one `--out` (exports
    of two corpora, which the corpus lock does not order) would otherwise delete each other's
    temp folders and race their swaps. The file goes with its holder (a kill leaves it, unlocked)."""
    path = out.parent / f".{stem_beside(out.name)}.lock"

    def busy() -> str:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        return (
            f"{out} is being written by another spanbank process (pid {holder}); "
            "wait for it to finish or pass --wait"
        )

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise error(f"cannot write beside {out}: {exc.strerror}") from None
        try:
            flock_wait(fd, wait, busy)
            if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
                break
        except FileNotFoundError:
            pass  # its holder removed it as we waited: lock the next one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        pid = str(os.getpid()).encode()
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))  # a killed holder's longer pid is not left behind it
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still locked: a waiter that opened it sees it gone and retries
        os.close(fd)  # closing releases the flock


def remove_leftovers(out: Path) -> None:
    """Delete temp folders a killed writer left beside `out`; restore `out` if a kill came
    mid-swap. Only under `lock`: a live writer's temp folder looks the same."""
    stem = glob.escape(stem_beside(out.name))
    for stale in out.parent.glob(f".{stem}.old-*"):
        if not out.exists() and (stale / "x").is_dir():
            os.rename(stale / "x", out)  # killed between the two renames: keep the old folder
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.parent.glob(f".{stem}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder to disk, so the renamed folder is complete after a crash too:
    by one syncfs where there is one (an fsync per file took 4 s per 20,000 brat files), else
    file by file."""
    if sync_filesystem(root):
        return
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders holding them
        fsync_path(path)
    fsync_path(root)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished temp folder to `out`, replacing an earlier one there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{stem_beside(out.name)}.old-", dir=out.parent))
        os.rename(out, old / "x")
    os.rename(tmp, out)
    fsync_path(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
