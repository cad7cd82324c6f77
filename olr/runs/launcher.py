"""Starting `python -m olr ...` runs as detached processes, and stopping them.

The app never trains inside its own process: a run is the same command line a user would
type (`python -m olr train --config ... --run-id ...`), started in its own session so it
outlives the browser tab and the Streamlit server's reruns. The run id is chosen here,
so the caller knows the run folder immediately. A study (`python -m olr study`, classifier ->
Siamese -> report) is started the same way into a folder among the runs.

Duplicates: every form submission carries an idempotency key. The first launch for a key
creates `models/.launches/<key>.json` atomically (a complete file is hard-linked into
place, which fails if the name exists), so repeated clicks, reruns or a second browser
session with the same key get the first launch's run id back instead of a new process.

Device: `CUDA_VISIBLE_DEVICES` of the child ("" for CPU, "0" or "0,1" for GPUs); GPUs are
found with `nvidia-smi -L` so the caller never imports TensorFlow to list them.

Keras backend: `KERAS_BACKEND` of the child (`BACKENDS`; None leaves the environment's, else Keras's
default, TensorFlow). The installed ones are found without importing them, for the same reason. A launch
on another device or backend is another launch: both are part of its fingerprint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from olr import atomic, workspace
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import FINAL_STATES, RunLayout, RunState, read_json

#: `models/.launches/<key>.json`, one per launch key, and the `.lock` that serialises launches
LAUNCHES_FOLDER = ".launches"

#: the Keras backends training runs on (`KERAS_BACKEND` of the training process), Keras's default first, each
#: with how it trains, for people choosing one
BACKENDS = {
    "tensorflow": "TensorFlow, the default: several GPUs train with tf.distribute.MirroredStrategy.",
    "jax": "JAX, XLA-compiled: several devices or hosts train with keras.distribution data parallelism.",
}
DEFAULT_BACKEND = next(iter(BACKENDS))

_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*(\(UUID:.*\))?$")
# Children started by this process, so they are reaped (no zombies) and their exit seen.
_children: dict[str, subprocess.Popen] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class Device:
    """A place to run: `id` is "cpu", "gpu:0" or "gpu:0,1"; `label` is for people."""

    id: str
    label: str


def list_gpus() -> list[Device]:
    """GPUs reported by `nvidia-smi -L` (empty when there is no NVIDIA driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        m = _GPU_LINE.match(line.strip())
        if m:
            gpus.append(Device(f"gpu:{m.group(1)}", f"GPU {m.group(1)}: {m.group(2)}"))
    return gpus


def list_devices() -> list[Device]:
    """Every device choice: each GPU, all GPUs together when there are several, and the CPU."""
    gpus = list_gpus()
    devices = list(gpus)
    if len(gpus) > 1:
        ids = ",".join(g.id.split(":")[1] for g in gpus)
        devices.append(Device(f"gpu:{ids}", f"All {len(gpus)} GPUs ({ids}), mirrored"))
    devices.append(Device("cpu", "CPU"))
    return devices


def cuda_visible_devices(device: str) -> str:
    """The CUDA_VISIBLE_DEVICES value for a device id ("cpu" -> "", "gpu:0,1" -> "0,1")."""
    if device == "cpu":
        return ""
    m = re.fullmatch(r"gpu:(\d+(?:,\d+)*)", device or "")
    if not m:
        raise OLRError(f"Unknown device {device!r}; use 'cpu', 'gpu:0' or a list like 'gpu:0,1'.")
    return m.group(1)


def available_backends() -> list[str]:
    """The `BACKENDS` whose package is installed, in that order (the default first); none is imported."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def _check_backend(backend: str | None) -> str | None:
    """`backend` if training can run on it here; None stays None (the environment's backend)."""
    installed = available_backends()
    if backend is None or backend in installed:
        return backend
    names = ", ".join(installed) or "none"
    if backend in BACKENDS:
        raise OLRError(
            f"The Keras backend {backend!r} is not installed; pick an installed one ({names}) or install {backend}."
        )
    raise OLRError(f"Unknown Keras backend {backend!r}; pick an installed one ({names}).")


def recorded_backend(run, default: str | None = DEFAULT_BACKEND) -> str | None:
    """The Keras backend `run` (an `olr.runs.store.Run`) trains on, as its status records it (its process, once
    Keras has resolved it; the launcher, when asked for one); else `default`: runs from before that record
    trained on TensorFlow, and a display may rather show nothing (`default=None`)."""
    backend = run.status.get("backend")
    return backend if isinstance(backend, str) and backend else default


def _child_backend(backend: str | None) -> str | None:
    """The `KERAS_BACKEND` the child will see: `backend` when given (checked), else the one it inherits."""
    return _check_backend(backend) if backend is not None else os.environ.get("KERAS_BACKEND") or None


def new_key() -> str:
    """A fresh idempotency key for one form submission."""
    return secrets.token_hex(8)


def launch_training(
    config: dict,
    device: str = "cpu",
    *,
    key: str | None = None,
    run_id: str | None = None,
    wait_for_device: bool = False,
    backend: str | None = None,
) -> str:
    """Start `python -m olr train` for `config` on `device` in a detached process; return its run id.

    `config` holds training options as `olr.training.options` names them (kind, dataset, ...). The same
    `key` always returns the run id of its first launch without starting anything, and so
    does a launch of exactly the same config on the same device and backend while an earlier one is
    still live (two sessions pressing Launch at once start one run; see `launched_by`).
    `backend` is the Keras backend it trains with (`BACKENDS`; None: the environment's, else TensorFlow).
    `wait_for_device` queues the run until no other run trains on the device
    (`olr.runs.device_queue`). The run's stdout/stderr go to `models/<run-id>/console.log`.
    """
    if not isinstance(config, dict):
        raise OLRError("The training configuration must be a mapping of option names to values.")
    kind = str(config.get("kind", "run"))
    backend = _child_backend(backend)
    run_id = workspace.check_name(run_id, "run id") if run_id else store.new_run_id(kind)

    def command(run_dir: Path) -> list[str]:
        request = RunLayout(run_dir).launch_config
        atomic.write_json(request, config)
        return [
            "train",
            "--config",
            str(request),
            "--run-id",
            run_id,
            *(["--wait-for-device"] if wait_for_device else []),
        ]

    return _launch(
        command,
        device=device,
        backend=backend,
        key=key,
        run_id=run_id,
        what="start a training run",
        fingerprint=_fingerprint("train", config, device, backend),
    )


def launch_study(
    dataset: str, quick: bool = False, device: str = "cpu", *, key: str | None = None, backend: str | None = None
) -> str:
    """Start `python -m olr study --dataset DATASET [--quick] --study-id ID` detached; return the study id.

    The study folder `models/<study-id>/` is made here, among the runs: its `console.log` holds the
    study's output, `study.json` its stages as they go and `report.html` the report at the end; the
    classifier and Siamese runs it trains appear in the run list as they start. Until the process
    writes its first file the folder holds only the launcher's files; `launch_config.json` then
    says what was asked for (kind "study", dataset, quick), so readers know it for a study at once.
    While an identical study (same dataset, quick or not, device, Keras backend) is live, its id is
    returned instead of starting another; the same `key` always returns its first launch's id.
    `backend` is the Keras backend its runs train with, as for `launch_training`.
    """
    dataset = workspace.check_name(dataset, "dataset name")
    backend = _child_backend(backend)
    quick = bool(quick)
    study_id = store.new_run_id(store.STUDY_KIND)

    def command(run_dir: Path) -> list[str]:
        atomic.write_json(
            RunLayout(run_dir).launch_config, {"kind": store.STUDY_KIND, "dataset": dataset, "quick": quick}
        )
        return ["study", "--dataset", dataset, *(["--quick"] if quick else []), "--study-id", study_id]

    return _launch(
        command,
        device=device,
        backend=backend,
        key=key,
        run_id=study_id,
        what="start a study",
        fingerprint=_fingerprint(store.STUDY_KIND, dataset, quick, device, backend),
    )


def resumable(run) -> str | None:
    """Why `run` (an `olr.runs.store.Run`) cannot be resumed, or None when it can."""
    if run.is_live:
        return f"The run {run.id} is still {run.state}."
    if run.state == RunState.FINISHED:
        return f"The run {run.id} finished; start a new run to train more."
    if run.kind not in ("classifier", "siamese"):
        return f"{run.id} is not a training run."
    state = run.train_state
    if not state or not RunLayout(run.path).last.is_file():
        return f"The run {run.id} ended before its first checkpoint (after epoch 1); start it again as a new run."
    if state.get("epoch", 0) >= int(run.config.get("epochs", 0)):
        return f"The run {run.id} has trained all its {run.config.get('epochs')} epochs; start a new run to train more."
    return None


def resume_run(
    run_id: str,
    device: str | None = None,
    *,
    key: str | None = None,
    wait_for_device: bool = False,
    backend: str | None = None,
) -> str:
    """Continue a stopped, failed or dead run from its last checkpoint (`python -m olr train --resume`).

    `device` and `backend` (the Keras backend) default to those the run used (`recorded_backend`). The run
    keeps its folder and id; it shows as "queued" until the new process has loaded its checkpoint.
    """
    workspace.require_writable("resume a run")
    earlier = launched_run(key) if key is not None else None
    if earlier is not None:  # a repeated click: that resume already started
        return earlier
    run = store.load_run(workspace.check_name(run_id, "run id"))
    reason = resumable(run)
    if reason:
        raise OLRError(reason)
    if device is None:
        device = read_json(run.files.launch).get("device") or _device_from_env(run.status.get("cuda_visible_devices"))
    backend = _check_backend(backend or recorded_backend(run))
    run.files.stop_request.unlink(missing_ok=True)  # an earlier stop must not mark this process stopped
    return _launch(
        lambda run_dir: ["train", "--resume", run.id, *(["--wait-for-device"] if wait_for_device else [])],
        device=device,
        backend=backend,
        key=key,
        run_id=run.id,
        what="resume a training run",
        existing=True,
        fingerprint=_fingerprint("resume", run.id, device, backend),
    )


def _device_from_env(visible) -> str:
    return f"gpu:{visible}" if isinstance(visible, str) and visible.strip() else "cpu"


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def launched_by(run_id: str, key: str) -> bool:
    """True if `run_id` was started by the launch with this key (False: an identical live run was reused)."""
    return read_json(RunLayout(workspace.run_path(run_id)).launch).get("key") == key


def _live_twin(fingerprint: str) -> str | None:
    """A live run launched with this fingerprint, if any."""
    for run in store.list_runs():
        if run.is_live and read_json(run.files.launch).get("fingerprint") == fingerprint:
            return run.id
    return None


@contextlib.contextmanager
def _launch_lock():
    """Serialise launches across processes (app sessions, CLIs) so a twin check and its launch are one step."""
    fd = os.open(_launches_dir() / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _launch(
    command,
    *,
    device: str,
    backend: str | None,
    key: str | None,
    run_id: str,
    what: str,
    fingerprint: str,
    existing: bool = False,
) -> str:
    workspace.require_writable(what)
    env_devices = cuda_visible_devices(device)
    key = workspace.check_name(key or new_key(), "launch key")
    with _launch_lock():
        twin = _live_twin(fingerprint)
        marker = _claim(key, twin or run_id)
        if marker is not None:  # this key was launched before: nothing new starts
            return marker
        if twin is not None:  # the same thing is already running: show it instead of a duplicate
            return twin
        return _start(
            command,
            device=device,
            env_devices=env_devices,
            backend=backend,
            key=key,
            run_id=run_id,
            fingerprint=fingerprint,
            existing=existing,
        )


def _start(
    command,
    *,
    device: str,
    env_devices: str,
    backend: str | None,
    key: str,
    run_id: str,
    fingerprint: str,
    existing: bool,
) -> str:
    run_dir = workspace.run_path(run_id)
    try:
        run_dir.mkdir(parents=True, exist_ok=existing)
        args = command(run_dir)
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = env_devices
        if backend is not None:
            env["KERAS_BACKEND"] = backend
        env["OLR_HOME"] = str(workspace.home())
        env["PYTHONUNBUFFERED"] = "1"
        argv = [sys.executable, "-m", "olr", *args]
        with open(RunLayout(run_dir).console, "ab") as log:
            told = f"CUDA_VISIBLE_DEVICES={env_devices!r}" + (f", KERAS_BACKEND={backend!r}" if backend else "")
            log.write(f"$ {' '.join(argv[1:])}  ({told})\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                cwd=workspace.REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: survives the app, stoppable as a group
                close_fds=True,
            )
    except OSError as e:
        _release(key)
        raise OLRError(
            f"Could not start the run {run_id} ({e.strerror or e}); check that the workspace is writable."
        ) from None
    launch = {
        "run_id": run_id,
        "key": key,
        "fingerprint": fingerprint,
        "pid": proc.pid,
        "pgid": proc.pid,
        "host": socket.gethostname(),
        "device": device,
        "cuda_visible_devices": env_devices,
        "backend": backend,
        "command": argv[1:],
        "launched": time.time(),
        "start_ticks": store.process_start_ticks(proc.pid),
    }
    atomic.write_json(RunLayout(run_dir).launch, launch)
    queued = {
        "state": RunState.QUEUED,
        "pid": proc.pid,
        "host": launch["host"],
        "device": device,
        **({"backend": backend} if backend else {}),  # until the process records the one Keras resolved
        "heartbeat": launch["launched"],
    }
    if existing:  # a resumed run: live again from now on, not dead until its process writes
        store.merge_status(run_dir, {**queued, "ended": None, "error": None})
    elif not RunLayout(run_dir).status.exists():
        store.merge_status(run_dir, {**queued, "started": launch["launched"]}, only_if_missing=True)
    with _children_lock:
        _children[run_id] = proc
    threading.Thread(target=_reap, args=(run_id, proc, run_dir), name=f"olr-reap-{run_id}", daemon=True).start()
    return run_id


def _launches_dir() -> Path:
    d = workspace.models_dir() / LAUNCHES_FOLDER
    d.mkdir(parents=True, exist_ok=True)
    return d


def _claim(key: str, run_id: str) -> str | None:
    """Create the marker for `key`; return None if we own it now, else the earlier run id."""
    folder = _launches_dir()
    marker = folder / f"{key}.json"
    tmp = atomic.temp_sibling(marker)
    try:
        tmp.write_text(json.dumps({"key": key, "run_id": run_id, "created": time.time()}), encoding="utf-8")
        try:
            os.link(tmp, marker)  # atomic: fails if another launch already holds the key
            return None
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    for _ in range(50):  # the marker is complete when linked; a short retry covers slow disks
        with contextlib.suppress(OSError, ValueError):
            return str(json.loads(marker.read_text(encoding="utf-8"))["run_id"])
        time.sleep(0.02)
    raise OLRError(f"The launch marker {marker} is unreadable; delete it and launch again.")


def _release(key: str) -> None:
    (_launches_dir() / f"{key}.json").unlink(missing_ok=True)


def launched_run(key: str) -> str | None:
    """The run id launched for `key`, or None if that key was never launched."""
    marker = workspace.models_dir() / LAUNCHES_FOLDER / f"{workspace.check_name(key, 'launch key')}.json"
    try:
        return str(json.loads(marker.read_text(encoding="utf-8"))["run_id"])
    except (OSError, ValueError, KeyError):
        return None


def _tail(path: Path, n: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


def _reap(run_id: str, proc: subprocess.Popen, run_dir: Path) -> None:
    """Wait for a child we started; if it died without saying so, record why in its status."""
    code = proc.wait()
    with _children_lock:
        _children.pop(run_id, None)
    _record_exit(run_dir, code)


def _record_exit(run_dir: Path, code: int | None) -> None:
    files = RunLayout(run_dir)
    launch = read_json(files.launch)
    if launch and not (code is None and "exit_code" in launch):
        launch.update({"exit_code": code, "exited": time.time()})
        with contextlib.suppress(OSError):
            atomic.write_json(files.launch, launch)
    if files.stop_request.exists():
        state, error = RunState.STOPPED, None
    elif code == 0:
        # A clean exit that left the status unfinished (e.g. the demo pipeline) counts as finished.
        state, error = RunState.FINISHED, None
    else:
        state, error = RunState.FAILED, f"The process exited with code {code}.\n" + _tail(files.console)
    status = {"state": state, "ended": time.time()}
    if error:
        status["error"] = error
    with contextlib.suppress(OSError):
        store.merge_status(run_dir, status, unless_final=True)


def run_process(run_id: str) -> int | None:
    """The pid of run `run_id` if its process is alive on this machine, else None.

    For a run this module launched the pid is also its process-group id.
    """
    files = RunLayout(workspace.run_path(run_id))
    launch = read_json(files.launch)
    status = read_json(files.status)
    with _children_lock:
        child = _children.get(run_id)
    if child is not None:
        # returncode, not poll(): the reaper thread holds the wait lock, so poll() would say "alive".
        return child.pid if child.returncode is None else None
    host = status.get("host") or launch.get("host")
    if host not in (None, socket.gethostname()):
        return None
    # Only an olr process counts: a pid the system reused for something else is not the run.
    if isinstance(launch.get("pgid"), int) and store.process_alive(
        launch["pgid"], launch.get("start_ticks"), olr_only=True
    ):
        return launch["pgid"]
    pid = status.get("pid")
    if (
        isinstance(pid, int)
        and pid > 0
        and status.get("state") not in FINAL_STATES
        and store.process_alive(pid, olr_only=True)
    ):
        return pid
    return None


def stop_run(run_id: str, grace_s: float = 10.0, *, wait: bool = False) -> bool:
    """Ask run `run_id` to stop: SIGTERM to its process group, SIGKILL after `grace_s` seconds.

    Training catches SIGTERM, writes a checkpoint and sets state "stopped". The kill after the
    grace period runs in a background thread (or inline with `wait=True`). Returns False when
    the run has no live process on this machine (already ended, or running elsewhere).
    """
    workspace.require_writable("stop a run")
    run_dir = workspace.run_path(run_id)
    if not run_dir.is_dir():
        raise OLRError(f"There is no run {run_id!r} in {workspace.models_dir()}; pick an existing run.")
    pid = run_process(run_id)
    if pid is None:
        return False
    # Our own launches lead their process group (data loaders and helpers go too); a run
    # started from a shell gets the signal alone, so the shell's job is not hit.
    group = read_json(RunLayout(run_dir).launch).get("pgid") == pid
    with _children_lock:
        ours = run_id in _children  # our reaper thread records its exit; others are recorded here
    atomic.write_text(RunLayout(run_dir).stop_request, f"{time.time()}\n")
    _signal(pid, group, signal.SIGTERM)
    args = (run_id, pid, group, run_dir, grace_s, ours)
    if wait:
        _kill_after(*args)
    else:
        threading.Thread(target=_kill_after, args=args, name=f"olr-stop-{run_id}", daemon=True).start()
    return True


def _signal(pid: int, group: bool, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig) if group else os.kill(pid, sig)


def _kill_after(run_id: str, pid: int, group: bool, run_dir: Path, grace_s: float, ours: bool) -> None:
    deadline = time.monotonic() + max(0.0, grace_s)
    while time.monotonic() < deadline:
        if run_process(run_id) is None:
            break
        time.sleep(0.1)
    else:
        _signal(pid, group, signal.SIGKILL)
        for _ in range(50):
            if run_process(run_id) is None:
                break
            time.sleep(0.1)
    if not ours:
        _record_exit(run_dir, None)
