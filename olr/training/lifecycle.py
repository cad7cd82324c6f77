"""The life of a training run in its process: status.json with a heartbeat, the console log,
the stop flag, the device queue, and the run's end (finished, stopped or failed).

- status.json: a background thread rewrites it every `heartbeat_s` seconds with the
  heartbeat and the progress fields of `olr.runs.progress` (epoch, step within the epoch,
  throughput); a change of phase (`olr.runs.progress.Phase`) is written at once.
- SIGTERM (or Ctrl-C): the current step finishes, last.keras and train_state.json are
  written, state "stopped", exit code 143. A second Ctrl-C interrupts at once.
- Any other exception: state "failed", the traceback's last lines in status["error"],
  exit code 1 (an OLRError: its sentence, raised on to the command line: exit code 2; so a
  loss that became NaN or infinite, see `olr.training.run_callback`).
- status["flags"]: warnings about a run that ended, e.g. a best checkpoint below the
  all-absent baseline (`olr.runs.store.BELOW_BASELINE`); the run still finishes.
- A full disk anywhere in the run: state "failed" with the sentence "The disk is full (N MB
  free); free space and resume the run." (no traceback), raised on as an OLRError (exit code 2);
  half-written checkpoints are removed first, so status.json has room, and its write is retried.
  The last complete checkpoint stays, so `--resume` continues once there is space.
- Temporary checkpoints left by a killed process are removed when the run (re)starts.
- `after_training(run_dir)`: work done after a finished training and before the status
  says "finished" (status["phase"] is "evaluating" meanwhile); it returns the messages of
  the steps that failed, kept in status["followup_errors"]; the run stays "finished".
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from olr import __version__, atomic
from olr.errors import OLRError
from olr.runs import device_queue, store
from olr.runs.progress import Phase
from olr.runs.store import RunLayout, RunState
from olr.training import checkpoints, devices, processes
from olr.training.console import log, start_console_log
from olr.training.fit import compute_policy_scope, train_classifier, train_siamese
from olr.training.plan import Plan

EXIT_STOPPED = 143  # 128 + SIGTERM: stopped on request, cleanly (status.json says "stopped")
# A status write that failed for lack of space is tried again this often, this far apart: other
# processes (or the removed temporary checkpoint's blocks being released) may free room meanwhile.
END_WRITE_ATTEMPTS = 5
END_WRITE_PAUSE_S = 0.5

AfterTraining = Callable[[Path], list[str]]


class StatusFile:
    """status.json, rewritten atomically by `update` and by a heartbeat thread."""

    def __init__(self, run_dir: Path, data: dict):
        self.run_dir = run_dir
        self.data = data
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def progress(self, **fields) -> None:
        """Remember fields for the next heartbeat (cheap: called every step)."""
        with self.lock:
            self.data.update(fields)

    def snapshot(self) -> dict:
        """The fields as the next write would hold them."""
        with self.lock:
            return dict(self.data)

    def update(self, **fields) -> None:
        with self.lock:
            self.data.update(fields)
            self.data["heartbeat"] = time.time()
            store.write_status(self.run_dir, self.data)

    def phase(self, phase: str, **fields) -> None:
        """Write a change of phase (`olr.runs.progress.Phase`) at once; a full disk must not stop training
        for it (the fields stay for the next heartbeat, which retries)."""
        try:
            self.update(phase=phase, **fields)
        except OSError as error:
            if not atomic.is_disk_full(error):
                raise

    def start_heartbeat(self, interval_s: float) -> None:
        def beat():
            while not self._stop.wait(interval_s):
                with contextlib.suppress(OSError):  # a full disk must not kill training; the next beat retries
                    self.update()

        self._thread = threading.Thread(target=beat, name="olr-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def end(self, state: RunState, **fields) -> None:
        """The last write: no heartbeat after it. Retried when the disk is full; raises if it never fits."""
        self.stop_heartbeat()
        for attempt in range(END_WRITE_ATTEMPTS):
            try:
                self.update(state=state, ended=time.time(), **fields)
                return
            except OSError as e:
                if not atomic.is_disk_full(e) or attempt == END_WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(END_WRITE_PAUSE_S)


class StopFlag:
    """Set by SIGTERM/SIGINT; checked after every training step."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._old = {}

    def install(self) -> None:
        def handler(signum, frame):
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: stop at once
            self.requested = True
            self.signal_name = signal.Signals(signum).name

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, handler)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _first_status(plan: Plan, wait_for_device: bool) -> dict:
    """The status this process starts with: the previous one (a resumed run) with its own fields over it."""
    previous = store.read_status(plan.run_dir)
    now = time.time()
    state = plan.train_state or {}
    status = {
        **previous,
        "state": RunState.QUEUED if wait_for_device else RunState.RUNNING,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": None,
        "started": previous.get("started", now) if plan.resuming else now,
        "ended": None,
        "error": None,
        "epoch": state.get("epoch", 0),
        "step": state.get("step", 0),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if plan.resuming:
        status["resumed"] = now
    # about the previous process's end, or measured by it; this one judges and measures afresh
    for stale in ("followup_errors", "flags", "steps_per_s", "samples_per_s", "epoch_end_s"):
        status.pop(stale, None)
    status["phase"] = Phase.WAITING if wait_for_device else Phase.STARTING
    return status


def execute(
    plan: Plan,
    *,
    heartbeat_s: float = 2.0,
    logical_cpus: int = 0,
    wait_for_device: bool = False,
    after_training: AfterTraining | None = None,
) -> int:
    """Train the planned run (its folder and config.json exist) and record its life; returns the exit code."""
    status = StatusFile(plan.run_dir, _first_status(plan, wait_for_device))
    status.update()
    RunLayout(plan.run_dir).metrics.touch()
    undo_console = start_console_log(plan.run_dir)
    stop = StopFlag()
    stop.install()
    status.start_heartbeat(heartbeat_s)
    devices = device_queue.device_names(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if wait_for_device and any(device_queue.busy(name) for name in devices):
        log(f"queued: waiting until no other run trains on {', '.join(devices)}")
    try:
        with device_queue.hold_devices(devices, wait=wait_for_device, should_stop=lambda: stop.requested) as turn:
            if not turn:
                log(f"{stop.signal_name}: stopped while queued for its device")
                status.end(RunState.STOPPED)
                return EXIT_STOPPED
            return _run_recorded(plan, status, stop, logical_cpus, after_training)
    finally:
        stop.uninstall()
        undo_console()


def _run_recorded(
    plan: Plan, status: StatusFile, stop: StopFlag, logical_cpus: int, after_training: AfterTraining | None
) -> int:
    """Train, then record how it ended in status.json (every failure too)."""
    try:
        outcome = _train(plan, status, stop, logical_cpus)
        if outcome == RunState.FINISHED and after_training is not None:
            status.update(phase=Phase.EVALUATING)
            errors = after_training(plan.run_dir)
            if errors:
                status.progress(followup_errors=errors)
        status.end(outcome, phase=None)
        log(f"run {plan.run_dir.name} {outcome}")
        return 0 if outcome == RunState.FINISHED else EXIT_STOPPED
    except OLRError as e:
        status.end(RunState.FAILED, error=str(e))
        raise
    except BaseException as e:  # every failure must be recorded in status.json
        lost = processes.lost_contact_sentence(e, processes.role_from_env())
        if lost is not None:
            log(lost)
            status.end(RunState.FAILED, error=lost)
            if plan.shared_run_dir is not None:  # a follower: process 0 may be the one gone
                processes.record_failure(plan.shared_run_dir, lost)
            return processes.EXIT_PROCESS_LOST
        if atomic.is_disk_full(e):
            _end_disk_full(plan.run_dir, status)
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        status.end(RunState.FAILED, error="\n".join(text.strip().splitlines()[-12:]))
        if isinstance(e, KeyboardInterrupt):
            return 130
        return 1


def _end_disk_full(run_dir: Path, status: StatusFile) -> None:
    """Record a run that filled its disk as failed with one sentence, then raise that sentence."""
    checkpoints.remove_stale_temp_checkpoints(run_dir)  # gives back the space a half checkpoint took
    sentence = checkpoints.disk_full_sentence(run_dir)
    log(sentence)
    try:
        status.end(RunState.FAILED, error=sentence)
    except OSError:
        log("status.json could not be written either: the run will show as dead")
    raise OLRError(sentence) from None


def _train(plan: Plan, status: StatusFile, stop: StopFlag, logical_cpus: int) -> RunState:
    """Mark the run running, describe it, set up the devices and fit; returns FINISHED or STOPPED."""
    if status.data["state"] == RunState.QUEUED:
        status.update(
            state=RunState.RUNNING,
            started=status.data["started"] if plan.resuming else time.time(),
            phase=Phase.STARTING,
        )
    cfg = plan.cfg
    log(
        f"{'resuming' if plan.resuming else 'starting'} {cfg['kind']} run {plan.run_dir.name} "
        f"(olr {__version__}, pid {os.getpid()})"
    )
    log(
        f"dataset {plan.dataset.name}: {len(plan.train_idx)} train / {len(plan.val_idx)} val tiles "
        f"of {tuple(plan.dataset.tile_shape)}; "
        f"{len(cfg['labels'])} labels: {', '.join(d['name'] for d in cfg['labels'])}"
    )
    for note in plan.notes:
        log(note)
    for leftover in checkpoints.remove_stale_temp_checkpoints(plan.run_dir):
        log(f"removed {leftover.name}, a checkpoint a stopped process left half written")
    where = devices.setup(logical_cpus)
    with compute_policy_scope(cfg, where.on_gpu) as precision:
        status.update(
            device=where.description, precision=precision, backend=where.backend, processes=where.role.process_count
        )
        log(
            f"device: {where.description}; Keras backend {where.backend}; compute precision {precision}"
            + (" (auto)" if cfg["precision"] == "auto" else "")
        )
        train = train_classifier if cfg["kind"] == "classifier" else train_siamese
        with processes.ProcessWatch(plan.shared_run_dir or plan.run_dir, where.role):
            return train(plan, where, status, stop)
