"""Several processes (hosts) training one run together, on Keras's JAX backend.

Every process runs the same command, `python -m olr train --run-id NAME ...` (or `--resume NAME`), in a
workspace all of them see (a shared file system), with Keras's own environment variables:

- `KERAS_DISTRIBUTION_JOB_ADDRESSES`: host:port of process 0, the coordinator (or every process's
  address, comma-separated, the first being the coordinator's);
- `KERAS_DISTRIBUTION_NUM_PROCESSES`: how many processes train the run;
- `KERAS_DISTRIBUTION_PROCESS_ID`: this process's number, 0 to N-1.

Process 0 plans the run, creates its folder and writes every file of it (status, metrics, console,
checkpoints), as a single-process run would. The others (followers) wait for it in
`keras.distribution.initialize` (the processes meet there; `olr.training.devices`), then train the run
it planned, reading its config.json, and write their copies of the run's files into a scratch folder
removed at the end: every process takes the same decisions (validation, checkpoints, early stopping,
a stop request agreed after each step) and so makes the same collective calls, saving included.

A process that dies stalls the others inside a collective. So each process beats in
`<run>/processes/<id>.json` every few seconds while it trains and watches the others' beats
(`ProcessWatch`); one that stays silent for `OLR_PROCESS_TIMEOUT_S` seconds (default 60, under JAX's own
100 s after which it aborts the process with no record) ends the run "failed" in status.json with a
sentence naming the silent process, and the watching process exits with code 1. Its last complete
checkpoint stays; `--resume` continues the run once every process runs again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from olr import atomic
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout, RunState
from olr.training.console import log
from olr.workspace import env_number

#: Keras's environment variables naming the processes of a multi-process run (see the module docstring)
JOB_ADDRESSES_ENV = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
NUM_PROCESSES_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"
#: seconds a process may stay silent before the others end the run (see the module docstring)
TIMEOUT_ENV = "OLR_PROCESS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
#: exit code of a process that ended the run because another went silent
EXIT_PROCESS_LOST = 1


@dataclass(frozen=True)
class ProcessRole:
    """This process's place among the processes training the run: `process_id` of `process_count`."""

    process_id: int = 0
    process_count: int = 1
    coordinator: str | None = None

    @property
    def distributed(self) -> bool:
        return self.process_count > 1

    @property
    def follower(self) -> bool:
        return self.process_id > 0


def role_from_env(env=None) -> ProcessRole:
    """The `ProcessRole` Keras's environment variables describe (one process when they are unset)."""
    env = os.environ if env is None else env
    count = env_number(NUM_PROCESSES_ENV, None, int, env)
    if count is None or count == 1:
        return ProcessRole()
    process_id = env_number(PROCESS_ID_ENV, None, int, env)
    coordinator = env.get(JOB_ADDRESSES_ENV, "").strip()
    if count < 1:
        raise OLRError(f"{NUM_PROCESSES_ENV}={count} must be at least 1; give the number of processes.")
    if process_id is None or not 0 <= process_id < count:
        raise OLRError(
            f"{NUM_PROCESSES_ENV}={count} needs {PROCESS_ID_ENV} set to this process's number, 0 to {count - 1} "
            f"(it is {env.get(PROCESS_ID_ENV, 'unset')!r})."
        )
    if not coordinator:
        raise OLRError(
            f"{NUM_PROCESSES_ENV}={count} needs {JOB_ADDRESSES_ENV}, the host:port of process 0 (the coordinator)."
        )
    return ProcessRole(process_id, count, coordinator.split(",")[0])


def check_backend(role: ProcessRole, backend: str) -> None:
    """Several processes train together on JAX only (TensorFlow's multi-worker strategy does not work
    with Keras 3: keras-team/keras issue 20585)."""
    if role.distributed and backend != "jax":
        raise OLRError(
            f"{NUM_PROCESSES_ENV}={role.process_count} asks for several processes, which train together only on "
            f"Keras's JAX backend (this process runs {backend}); set KERAS_BACKEND=jax on every process."
        )


def timeout_s(env=None) -> float:
    value = env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, float, env)
    if value <= 0:
        raise OLRError(f"The environment variable {TIMEOUT_ENV}={value:g} must be a positive number of seconds.")
    return value


@contextlib.contextmanager
def follower_folder(run_dir: Path):
    """A scratch copy of the run folder's config.json for a follower to write its copies of the run's files
    into (see the module docstring); removed on the way out."""
    scratch = Path(tempfile.mkdtemp(prefix=f"olr-follower-{run_dir.name}-"))
    try:
        shutil.copy2(RunLayout(run_dir).config, RunLayout(scratch).config)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _beat_file(run_dir: Path, process_id: int) -> Path:
    return RunLayout(run_dir).processes / f"{process_id}.json"


class ProcessWatch:
    """While training: this process's beats in `<run>/processes/<id>.json`, and a watch on the others'
    (see the module docstring). A context manager; nothing happens for a single process."""

    def __init__(self, run_dir: Path, role: ProcessRole, *, beat_s: float = 2.0, timeout: float | None = None):
        self.run_dir = run_dir
        self.role = role
        self.beat_s = beat_s
        self.timeout = timeout_s() if timeout is None else timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self.role.distributed:
            RunLayout(self.run_dir).processes.mkdir(exist_ok=True)
            self._beat()
            self._thread = threading.Thread(target=self._run, name="olr-process-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return False

    def _beat(self) -> None:
        with contextlib.suppress(OSError):  # a full or flaky disk: the next beat retries
            atomic.write_json(
                _beat_file(self.run_dir, self.role.process_id),
                {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()},
            )

    def silent(self, started: float) -> list[tuple[int, float]]:
        """(process id, seconds silent) of the other processes silent for longer than the timeout; a process
        that has not beaten yet counts from `started` (when this one began to watch)."""
        now = time.time()
        found = []
        for other in range(self.role.process_count):
            if other == self.role.process_id:
                continue
            last = store.read_json(_beat_file(self.run_dir, other)).get("time", started)
            last = max(float(last), started)
            if now - last > self.timeout:
                found.append((other, now - last))
        return found

    def _run(self) -> None:
        started = time.time()
        while not self._stop.wait(self.beat_s):
            self._beat()
            silent = self.silent(started)
            if silent and not self._stop.is_set():
                self._end_run(silent)

    def _end_run(self, silent: list[tuple[int, float]]) -> None:
        """Record the run as failed and leave at once: the main thread is stuck in a collective that will
        never complete."""
        names = ", ".join(f"process {pid} (silent {age:.0f} s)" for pid, age in silent)
        sentence = (
            f"The run lost {names} of its {self.role.process_count} processes, so it stopped; "
            "resume it (`--resume`) once every process runs again."
        )
        log(sentence)
        record_failure(self.run_dir, sentence)
        leave(EXIT_PROCESS_LOST)


def record_failure(run_dir: Path, sentence: str) -> None:
    """The run "failed" with `sentence` in the status.json of the run folder all processes share (written
    by whichever process sees the failure: process 0 may be the one that is gone)."""
    with contextlib.suppress(OSError):
        status = store.read_status(run_dir)
        now = time.time()
        status.update(state=RunState.FAILED, error=sentence, ended=now, heartbeat=now, phase=None)
        store.write_status(run_dir, status)


#: what JAX's errors say when a collective or the coordination service lost another process (a JaxRuntimeError
#: from a training step, a ValueError from an allgather: "Gloo AllGather failed: ... Connection reset by peer")
LOST_CONTACT_MARKERS = ("Gloo", "Connection reset by peer", "heartbeat timeout", "coordination service")


def lost_contact_sentence(error: BaseException, role: ProcessRole) -> str | None:
    """The sentence of a multi-process run whose collective step failed because another process ended or
    lost its connection (`LOST_CONTACT_MARKERS`); None for other errors and for one process."""
    if not role.distributed or not any(marker in str(error) for marker in LOST_CONTACT_MARKERS):
        return None
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"The run lost contact with another of its {role.process_count} processes ({first_line}), so it stopped; "
        "resume it (`--resume`) once every process runs again."
    )


def leave(code: int) -> None:
    """End this process now with `code`, its output flushed. A multi-process run that failed leaves this
    way: at a normal exit JAX waits for every process at a shutdown barrier and, one being gone, aborts
    the process (exit code 134), hiding the failure already recorded."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
