"""Where heavy stages run: in this process, on a local Dask cluster sized to the machine, or on an
existing Dask cluster (`--scheduler` or DASK_SCHEDULER_ADDRESS). Results always come back in
order, so a stage's output is the same wherever it ran. The driver writes the files, except in
plain ingest, whose workers write data files that the driver then commits in one transaction."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

from spanbank.errors import SpanbankError
from spanbank.fingerprint import NEED, check_same, fingerprint

log = logging.getLogger(__name__)

ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"
ENV_WORKERS = "SPANBANK_WORKERS"
IN_FLIGHT_PER_WORKER = 2  # parts submitted ahead per worker: keeps workers busy, memory bounded
SCATTER_BYTES = 1 << 20  # a shared argument this big goes to every worker once, not with each part
# the default starts a local cluster only for this much work left to hand it (seconds of parts as
# run here): its start, the workers' imports and their first parts' warm-ups (spaCy's: 1.3 s)
# cost 2-3 s on 2 cores, and 2 workers did not halve the parts' time (docs/SCALE.md)
AUTO_SECONDS = 8.0
CONNECT_SECONDS = 20.0  # to reach a --scheduler and hear it answer
# each local worker is a process of a few hundred MB: beyond this a machine runs out of memory
# first (a mistyped 100000000 made the driver grow to 11 GB before any worker started)
MAX_LOCAL_WORKERS = 256
_ADDRESS = re.compile(r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[^\s/@:\[\]]+):(\d{1,5})")


def check_address(address: str) -> str:
    """`address` if it is a Dask scheduler's (`tcp://HOST:PORT`, `tls://HOST:PORT` or
    `HOST:PORT`), else SpanbankError in one line; a user name or password in it is never shown
    (Dask's own errors printed it)."""
    address = address.strip()
    m = _ADDRESS.fullmatch(address)
    if m is None or not 0 < int(m.group(3)) < 65536:
        shown = "***@" + address.rsplit("@", 1)[1] if "@" in address else address
        raise SpanbankError(
            f"scheduler address {shown!r} is not a Dask scheduler's: give tcp://HOST:PORT "
            "(no user name, password or path)"
        )
    return address


def default_workers() -> int:
    """`SPANBANK_WORKERS`, else the cores this process may use."""
    env = os.environ.get(ENV_WORKERS)
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise SpanbankError(f"{ENV_WORKERS} must be a whole number of at least 1, got {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Engine:
    """Maps a function over parts in order. With one worker and no scheduler it runs in this
    process; otherwise a Dask client is made on first use (a local cluster of `workers`
    single-threaded processes, or the cluster at `scheduler`) and closed by `close`.

    Asked for nothing (no workers, no scheduler, neither variable set), it is `auto`: parts run
    here, timed, and a local cluster of the machine's cores starts only once the work left would
    pay for its start (`AUTO_SECONDS`); the parts left then run on it."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        if workers is not None and scheduler:
            raise SpanbankError(
                "--workers and --scheduler: choose one (a cluster's workers are its own)"
            )
        # --workers N given: N here, whatever $DASK_SCHEDULER_ADDRESS says
        self.scheduler = scheduler or (os.environ.get(ENV_SCHEDULER) if workers is None else None)
        self.scheduler = check_address(self.scheduler) if self.scheduler else None
        self.auto = _nothing_asked(workers, scheduler)
        if workers is None and self.scheduler is None and not _have_dask():
            workers = 1  # the default needs no Dask; asking for workers does
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise SpanbankError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > MAX_LOCAL_WORKERS and self.scheduler is None:
            raise SpanbankError(
                f"--workers {self.workers}: a local cluster takes at most {MAX_LOCAL_WORKERS} "
                "worker processes; for more, start a Dask cluster and pass --scheduler"
            )
        self._client = None
        self._cluster = None
        self.connected = False  # to the scheduler: a stage of one part never asks for it
        self._starting: Future | None = None
        self._modules: tuple[str, ...] = ()
        self._here_only = False  # auto, and its cluster would not start: stay in this process

    @property
    def distributed(self) -> bool:
        return self.scheduler is not None or self.workers > 1

    def describe(self) -> str:
        if self.scheduler and not self.connected:  # one part ran here: nothing asked of it
            return f"in-process (one part; the Dask scheduler {self.scheduler} was not needed)"
        if self.scheduler:
            return f"dask scheduler {self.scheduler}"
        if self.auto and self.distributed:
            return f"in-process, then {self.workers} local workers if the work is big"
        return f"{self.workers} local worker(s)" if self.workers > 1 else "in-process"

    def start(self, *modules: str) -> None:
        """Start the cluster (or connect to it) in the background and import `modules` on its
        workers, while the stage gets ready; `map` waits for it. A local cluster takes about a
        second to start and each worker as long again for its first imports. Call it only for a
        stage sure to have two parts or more: with fewer, `map` would not use the cluster. An
        `auto` engine only notes the modules: its `map` decides whether a cluster pays."""
        self._modules = modules
        if not self.auto:
            self._start()

    def _start(self) -> None:
        if not self.distributed or self._client is not None or self._starting is not None:
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="spanbank-engine-start")
        self._starting = pool.submit(self._connect_and_import, self._modules)
        pool.shutdown(wait=False)

    def _connect_and_import(self, modules: tuple[str, ...]) -> None:
        client = self._open()
        if modules:
            with contextlib.suppress(Exception):  # only a head start: a part would fail the same
                client.run(_import, modules)

    def map(
        self,
        fn: Callable,
        parts: Iterable,
        *args,
        done: Callable[[int], None] | None = None,
        total: int | None = None,
    ) -> Iterator:
        """fn(part, *args) for each part, yielded in the parts' order. A part that needs no
        second worker (fewer than two parts in all) runs here without starting a cluster.
        `total`, the number of parts (taken from `parts` if it has a length), lets an `auto`
        engine judge the work left.

        `done(n)`, if given, is called in this thread with the number of parts finished so far,
        once per part, as they finish: on a cluster in the order Dask completes them (a progress
        bar follows the workers, not the order results are taken in); here, after each call."""
        if total is None and hasattr(parts, "__len__"):
            total = len(parts)
        parts = iter(parts)
        finished = 0
        here = not self.distributed or self._here_only
        deciding = not here and self.auto and self._client is None
        if here or deciding:
            until = self._until_cluster(total) if deciding else lambda seconds, n: False
            for part in parts:
                t = time.perf_counter()
                result = run_part(fn, part, *args)
                seconds = time.perf_counter() - t
                finished += 1
                if done:
                    done(finished)
                yield result
                if until(seconds, finished):
                    break
            else:
                return
        first = next(parts, _END)
        if first is _END:
            return
        second = next(parts, _END)
        if second is _END:
            result = run_part(fn, first, *args)
            finished += 1
            if done:
                done(finished)
            yield result
            return
        client = self._connect()
        args = tuple(
            client.scatter(a, broadcast=True, hash=False)
            if getattr(a, "nbytes", 0) >= SCATTER_BYTES
            else a
            for a in args
        )
        driver = fingerprint()
        window = IN_FLIGHT_PER_WORKER * max(1, self._n_workers(client))
        pending: deque = deque()
        counted: set = set()  # keys of finished parts already reported to `done`

        def head():
            nonlocal finished
            if done:
                from distributed import wait

                while True:
                    for f in pending:
                        if f.key not in counted and f.done():
                            counted.add(f.key)
                            finished += 1
                            done(finished)
                    if pending[0].key in counted:
                        break
                    wait(
                        [f for f in pending if f.key not in counted], return_when="FIRST_COMPLETED"
                    )
            f = pending.popleft()
            counted.discard(f.key)
            return f.result()

        try:
            for part in _chain([first, second], parts):
                key = f"{getattr(fn, '__name__', 'part')}-{uuid.uuid4().hex}"  # named for fn
                pending.append(client.submit(_worker_part, driver, fn, part, *args, key=key))
                if len(pending) >= window:
                    yield head()
            while pending:
                yield head()
        except Exception as exc:
            lost = _lost(exc)
            if lost is None:
                raise
            raise lost from None
        finally:
            for f in pending:
                with contextlib.suppress(Exception):  # the client may be closing already
                    f.cancel()

    def _until_cluster(self, total: int | None) -> Callable[[float, int], bool]:
        """For an `auto` map: called after each part run here with its seconds and the parts
        done; once the work left looks worth `AUTO_SECONDS` (from the second part on, the last
        part's time times the parts left, two or more; with no `total`, once the parts run here
        took that long) it starts the cluster, waits for it and says True. It waits rather than
        goes on here: parts run here hold the GIL that the cluster's scheduler, in this process,
        needs (a start took 1.4 s waited for, 6.2 s beside them). A cluster that fails to start
        leaves the work here."""
        spent = 0.0

        def until(seconds: float, n: int) -> bool:
            nonlocal spent
            spent += seconds
            if self._here_only:
                return False
            if total is not None and (n < 2 or total - n < 2):  # the first carries warm-ups
                return False
            if (spent if total is None else seconds * (total - n)) < AUTO_SECONDS:
                return False
            self._start()  # in a thread all the same: Ctrl-C here leaves it to `close`
            try:
                self._await_start()
            except SpanbankError as exc:
                self.close()
                self._here_only = True
                log.warning("spanbank: running in this process: %s", exc)
                return False
            return True

        return until

    def _connect(self):
        """The client: the one `start` is making (waited for; its error raised here), else one
        made now."""
        self._await_start()
        return self._client if self._client is not None else self._open()

    def _await_start(self) -> None:
        """Wait for what `start` began, once; its error is raised here. Interrupted (Ctrl-C),
        it leaves the start for `close` to wait for and stop."""
        starting = self._starting
        if starting is not None:
            try:
                starting.result()
            finally:
                if starting.done():
                    self._starting = None

    def _open(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SpanbankError(
                "running on several workers needs Dask: pip install 'spanbank[dask]' "
                "(or pass --workers 1)"
            ) from None
        # parts of 10+ MiB (agree's) are sent with their task on purpose: no warning each time
        warnings.filterwarnings("ignore", "Sending large graph", UserWarning, "distributed")
        try:
            if self.scheduler:
                # a lost scheduler is our one line (`_lost`), not also Dask's log and tracebacks
                logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
                self._client = _client_for(self.scheduler)
                _check_workers(self._client, self.scheduler)
                self.connected = True
            else:
                with _local_config():
                    _preload(self._modules)
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address="127.0.0.1:0",  # loopback, any free port: no "8787 in use" warning
                        silence_logs=logging.ERROR,
                    )
                self._client = Client(self._cluster)
        # RuntimeError: LocalCluster's "Cluster failed to start" (its temp folder unusable, ...)
        except (OSError, TimeoutError, ValueError, TypeError, RuntimeError) as exc:
            where = self.scheduler or "a local cluster"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SpanbankError(f"cannot start or reach Dask ({where}): {reason}") from None
        return self._client

    def _n_workers(self, client) -> int:
        return len(client.scheduler_info().get("workers", {})) or self.workers

    def close(self) -> None:
        with contextlib.suppress(BaseException):  # let a start finish, then stop what it started
            self._await_start()
        for thing in (self._client, self._cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._client = self._cluster = None


def asked_workers(workers: int | None, scheduler: str | None) -> int | None:
    """`workers` for a stage that runs in this process unless told otherwise: 1 when neither
    --workers, --scheduler, $SPANBANK_WORKERS nor $DASK_SCHEDULER_ADDRESS asks for more (on a
    small machine such a stage was slower on a local cluster than here; see docs/SCALE.md)."""
    return 1 if _nothing_asked(workers, scheduler) else workers


def _nothing_asked(workers: int | None, scheduler: str | None) -> bool:
    """Neither --workers, --scheduler, $SPANBANK_WORKERS nor $DASK_SCHEDULER_ADDRESS given."""
    return not (
        workers is not None
        or scheduler
        or os.environ.get(ENV_SCHEDULER)
        or os.environ.get(ENV_WORKERS)
    )


@contextlib.contextmanager
def engine(workers: int | None = None, scheduler: str | None = None) -> Iterator[Engine]:
    """An Engine closed on exit (its cluster stopped when it started one)."""
    eng = Engine(workers, scheduler)
    try:
        yield eng
    finally:
        eng.close()


_END = object()
PROFILE_KEY = "distributed.worker.profile.enabled"
METHOD_KEY = "distributed.worker.multiprocessing-method"
SPAWN_ENV_KEY = "distributed.nanny.pre-spawn-environ"  # set before the worker's process starts


def run_part(fn: Callable, part, *args):
    """fn(part, *args) with Python's cyclic garbage collector paused (`paused_gc`)."""
    with paused_gc():
        return fn(part, *args)


def _client_for(address: str):
    """A Dask client of the scheduler at `address`, or an error after `CONNECT_SECONDS`: a server
    that is not a Dask scheduler (its dashboard's port, say) takes the connection and never
    answers, and Dask's own timeout does not end that wait (seen with `distributed` 2026.8)."""
    from distributed import Client

    box: dict = {}

    def connect():
        try:
            # Dask's own timeout a little shorter: a refused address gets Dask's own message
            box["client"] = Client(address, timeout=f"{max(1.0, CONNECT_SECONDS - 5)}s")
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    # a daemon thread: one stuck in Dask's handshake must not hold the process at exit
    thread = threading.Thread(target=connect, name="spanbank-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_SECONDS)
    if thread.is_alive():
        raise TimeoutError(f"nothing there answered as a Dask scheduler in {CONNECT_SECONDS:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["client"]


def _check_workers(client, scheduler: str) -> None:
    """Refuse a cluster whose workers cannot import spanbank or run other code or libraries than
    this process (`spanbank.fingerprint`), before any part goes out: a worker that cannot
    unpickle a part's function or tables leaves the cluster, and its parts would wait forever.
    A worker that joins later is checked by each part it runs (`_worker_part`)."""
    seen = client.run(fingerprint, on_error="return")
    if not seen:
        log.warning(
            "spanbank: the Dask scheduler at %s has no workers yet; waiting for some", scheduler
        )
    for address, fp in sorted(seen.items()):
        where = f"the Dask worker at {address}"
        if isinstance(fp, BaseException):
            raise SpanbankError(f"{where} cannot run spanbank ({fp}); {NEED}")
        check_same(fingerprint(), where, mine=fp)


def _worker_part(driver: dict, fn: Callable, part, *args):
    """run_part on a worker, which first checks that it runs the driver's code and libraries (a
    worker of another install could return other rows or bytes)."""
    try:
        from distributed import get_worker

        where = f"the Dask worker at {get_worker().address}"
    except (ImportError, ValueError):
        where = "a Dask worker"
    check_same(driver, where)
    return run_part(fn, part, *args)


@contextlib.contextmanager
def paused_gc():
    """No cyclic garbage collection inside: a part builds many dicts and lists that live until it
    ends, and each full pass of the collector, which they trigger as the heap grows, walks every
    live object: building PolNeAR's export documents took 0.29 s paused, 0.52 s not. What a part
    leaves is freed by reference counting; cycles wait for the next pass after it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _local_config():
    """Dask settings for the local cluster we start, each unless the environment sets it
    (DASK_DISTRIBUTED__...):
    - no statistical profiler in the workers: it samples the running task's stack every 10 ms
      under the GIL; on 2 cores, export chunks took about 6% longer with it;
    - workers forked from a forkserver, which imports Dask, numpy, pandas and pyarrow once,
      instead of each spawned interpreter importing them: less CPU to start, and the pages
      those imports fill are shared (a worker's own memory 35 MB instead of 115 with spaCy).
      Not plain fork: this process has threads (Dask's event loop, deltalake's tokio runtime,
      which refuses to run in a forked child);
    - Arrow's pool (`arrowpool`) set in the environment before the forkserver starts: pyarrow
      reads it as it is imported there (docs/SCALE.md)."""
    import dask

    from spanbank import arrowpool

    settings: dict = {PROFILE_KEY: False, METHOD_KEY: "forkserver"}
    settings = {k: v for k, v in settings.items() if _env_name(k) not in os.environ}
    if pool := arrowpool.chosen():
        settings[SPAWN_ENV_KEY] = {**dask.config.get(SPAWN_ENV_KEY, {}), arrowpool.ENV: pool}
    return dask.config.set(settings)


def _preload(modules: tuple[str, ...]) -> None:
    """Have the forkserver, unless it runs already, import the libraries among `modules` once
    for all the workers it forks, instead of each worker on its first part (spaCy: about a
    second per worker). Not spanbank's own: the forkserver searches the interpreter's path, not
    this process's, and could find another copy."""
    from distributed.utils import get_mp_context

    ctx = get_mp_context()  # Dask sets its own list here, once; ours replaces it
    libraries = [m for m in modules if m.partition(".")[0] != "spanbank"]
    if libraries and ctx.get_start_method() == "forkserver":
        # Dask's list held these: every part's Arrow tables bring pandas and pyarrow
        ctx.set_forkserver_preload(["distributed", "numpy", "pandas", "pyarrow", *libraries])


def _env_name(key: str) -> str:
    """The environment variable Dask reads a config key from."""
    return "DASK_" + key.upper().replace(".", "__").replace("-", "_")


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


def _have_dask() -> bool:
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def _lost(exc: Exception) -> SpanbankError | None:
    """Dask's word that parts will not come back (their workers kept dying, the scheduler is
    gone) as one line; None for any other error (a part's own, raised as it is)."""
    if type(exc).__name__ == "KilledWorker":
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return SpanbankError(f"a Dask worker died running a part: {first}")
    if isinstance(exc, CancelledError):
        groups = getattr(exc, "error_groups", None) or [exc]
        reasons = sorted({getattr(g, "reason", None) or "unknown" for g in groups})
        if "scheduler-connection-lost" in reasons:
            return SpanbankError(
                "lost the connection to the Dask scheduler; run the command again once it is back"
            )
        if reasons == ["unknown"]:  # seen when the scheduler was killed: said with no reason
            return SpanbankError(
                "Dask cancelled parts of this stage without a reason (the scheduler may be "
                "gone); run the command again once it is back"
            )
        return SpanbankError(f"Dask cancelled parts of this stage ({', '.join(reasons)})")
    return None
