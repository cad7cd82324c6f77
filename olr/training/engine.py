"""`python -m olr train`: classifier and Siamese training runs, and their lifecycle.

    python -m olr train --dataset demo --epochs 5 --loss focal
    python -m olr train --config my.json --set shuffle=false --run-id study-inorder
    python -m olr train --kind siamese --classifier-run <run id> --embedding-dim 16
    python -m olr train --resume <run id> [--set epochs=20]

Order of work: the config, dataset, labels and classifier run are validated *before* the
run folder exists, so bad input (exit 2, one sentence) leaves nothing behind. Then
`models/<run-id>/` is created (id `<UTC yyyymmdd-HHMMSS>-<kind>-<random>` or `--run-id`;
a folder pre-created by `olr.launcher`, holding no config.json yet, is adopted) with the
files listed in docs/ARCHITECTURE.md.

- console.log: stdout/stderr are copied into it unless stdout already *is* that file (the
  launcher redirects the process there), so nothing is written twice. TensorFlow's C++
  messages reach it only in the launcher case (they bypass Python's streams).
- metrics.jsonl: a "train" line every `log_every_steps` steps (running means over the epoch
  so far, `"scope": "step"`), and at each epoch end a "train" and a "val" line
  (`"scope": "epoch"`); metric names without the `val_` prefix; `epoch` is 1-based.
- status.json: a background thread rewrites it every `--heartbeat-s` seconds (default 2)
  with the heartbeat, epoch and step.
- best.keras / last.keras (for a Siamese run: the pair model, with its "embedder"):
  saved to a temporary name in the run folder, then renamed. train_state.json holds the
  completed epochs, step count, best score and early-stopping counter for `--resume`.
- SIGTERM (or Ctrl-C): the current step finishes, last.keras and train_state.json are
  written, state "stopped", exit code 143. A second Ctrl-C interrupts at once.
- Any other exception: state "failed", the traceback's last lines in status["error"],
  exit code 1 (an OLRError: its sentence, exit code 2).
- Devices: CUDA_VISIBLE_DEVICES chooses GPUs; with more than one visible, training uses
  tf.distribute.MirroredStrategy. `--logical-cpus N` (or OLR_LOGICAL_CPUS=N) splits the
  CPU into N logical devices and mirrors over them (to exercise that path without GPUs).
- After a finished run, `olr.analysis.evaluation.evaluate_run(run_path)` and
  `olr.analysis.correlations.compute_for_run(run_path)` run when those modules exist (`--no-evaluate`
  skips them); their failure is logged and kept in status["followup_errors"], the run
  stays "finished".
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from olr import __version__, atomic, workspace
from olr.runs import device_queue
from olr.training import options
from olr.runs import store
from olr.data.label_schemes import Label, get_scheme
from olr.data.dataset import Dataset, load_dataset, presence_from_fractions
from olr.errors import OLRError

EXIT_STOPPED = 143  # 128 + SIGTERM: stopped on request, cleanly (status.json says "stopped")
RESUMABLE_KEYS = ("epochs", "early_stopping_patience", "log_every_steps")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON file of options (see the flags below for their names)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set one option (repeatable)")
    parser.add_argument("--run-id", metavar="NAME", help="name of the run folder (default: <UTC time>-<kind>-<random>)")
    parser.add_argument("--resume", metavar="RUN", help="continue a stopped/failed run from its last checkpoint")
    parser.add_argument(
        "--logical-cpus", type=int, default=_env_number("OLR_LOGICAL_CPUS", 0, int), metavar="N",
        help="split the CPU into N logical devices and train mirrored over them (env OLR_LOGICAL_CPUS)",
    )
    parser.add_argument("--heartbeat-s", type=float, default=_env_number("OLR_HEARTBEAT_S", 2.0, float), help=argparse.SUPPRESS)
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluation and correlations at the end")
    parser.add_argument("--wait-for-device", action="store_true",
                        help="stay queued until no other run trains on this run's device (one run per device)")
    options.add_option_flags(parser.add_argument_group("options (also settable with --set or in --config)"))


def _env_number(name: str, default, kind):
    text = os.environ.get(name, "").strip()
    try:
        return kind(text) if text else default
    except ValueError:
        raise OLRError(f"The environment variable {name}={text!r} is not a number; unset it or give e.g. {default}.") from None


def raw_config(args) -> dict:
    """Options from --config, then --set, then explicit flags (later wins)."""
    raw = options.load_file(args.config) if args.config else {}
    raw.update(options.parse_assignments(args.set))
    raw.update(options.flag_values(args))
    return raw


def run(args) -> int:
    workspace.require_writable("start a training run")
    overrides = raw_config(args)
    if args.logical_cpus < 0:
        raise OLRError(f"--logical-cpus {args.logical_cpus} is negative; give 0 (off) or a number of devices such as 2.")
    if args.resume:
        if args.run_id:
            raise OLRError("--run-id and --resume cannot be combined; --resume continues the named run in its own folder.")
        plan = prepare_resume(args.resume, overrides)
    else:
        if args.run_id:
            check_new_run_id(args.run_id)
        plan = prepare(overrides)
        plan.run_dir = create_run_folder(args.run_id, plan.cfg["kind"])
        plan.cfg["run_id"] = plan.run_dir.name
        atomic.write_json(plan.run_dir / "config.json", plan.cfg)
    return execute(plan, args)


# --- validation: everything before the run folder exists ---------------------------------------


@dataclass
class Plan:
    """A validated run: resolved config (with derived keys), data, and where it goes."""

    cfg: dict
    dataset: Dataset
    train_idx: np.ndarray
    val_idx: np.ndarray
    y_train: np.ndarray | None = None  # (n_train, L) float32 presence (classifier)
    y_val: np.ndarray | None = None
    classifier_run: store.Run | None = None
    run_dir: Path | None = None
    train_state: dict | None = None  # set when resuming
    notes: list[str] = field(default_factory=list)


def meta_checksum(ds: Dataset) -> str:
    return "sha256:" + hashlib.sha256((ds.path / "meta.json").read_bytes()).hexdigest()


def split_indices(ds: Dataset, split: str, cap: int, seed: int) -> np.ndarray:
    """Rows of one split, at most `cap` (a seeded random subset kept in index order)."""
    idx = ds.split_indices(split)
    if cap and len(idx) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))
    return idx


def label_presence(ds: Dataset, labels: list[Label], min_fraction: float | None) -> np.ndarray:
    """(N, L) bool presence of `labels` from the dataset's area fractions."""
    mf = ds.meta.get("min_fraction", 0.0) if min_fraction is None else min_fraction
    return presence_from_fractions(ds.fractions_for(labels), mf).astype(bool)


def prepare(raw: dict) -> Plan:
    cfg = options.resolve(raw)
    return prepare_classifier(cfg) if cfg["kind"] == "classifier" else prepare_siamese(cfg)


def _open_splits(ds: Dataset, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    train_idx = split_indices(ds, "train", cfg["max_train_tiles"], cfg["seed"])
    val_idx = split_indices(ds, "val", cfg["max_val_tiles"], cfg["seed"] + 1)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        if len(idx) == 0:
            raise OLRError(f"The dataset {ds.name} has no {split} tiles; prepare it again with a split that has some.")
    return train_idx, val_idx


def _derived(ds: Dataset, train_idx, val_idx) -> dict:
    return {
        "dataset": ds.name,
        "dataset_path": str(ds.path),
        "dataset_checksum": meta_checksum(ds),
        "tile_shape": list(ds.tile_shape),
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "created": time.time(),
        "olr_version": __version__,
    }


def prepare_classifier(cfg: dict, fixed_labels: list[Label] | None = None) -> Plan:
    """Open the dataset, resolve and prune the labels, build the targets."""
    ds = load_dataset(cfg["dataset"])
    notes = []
    if fixed_labels is not None:  # resuming: exactly the labels the run started with
        labels = fixed_labels
    else:
        labels = list(ds.labels if cfg["scheme"] is None else get_scheme(cfg["scheme"]).labels)
    presence = label_presence(ds, labels, cfg["min_fraction"])
    train_idx, val_idx = _open_splits(ds, cfg)
    pruned = []
    if fixed_labels is None:
        counts = presence[train_idx].sum(axis=0)
        keep = np.ones(len(labels), dtype=bool)
        missing = [lab.name for lab, c in zip(labels, counts) if c == 0]
        if missing:
            where = f"the training split of dataset {ds.name}"
            if cfg["on_missing_label"] == "error":
                raise OLRError(
                    f"The label{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} never occur{'' if len(missing) > 1 else 's'} "
                    f"in {where}; set on_missing_label=prune or warn, or choose another scheme."
                )
            if cfg["on_missing_label"] == "prune":
                keep &= counts > 0
                notes.append(f"pruned labels absent from {where}: {', '.join(missing)}")
            else:
                notes.append(f"WARNING: labels absent from {where} (kept, they cannot be learned): {', '.join(missing)}")
        if cfg["prune_below"] > 0:
            rare = [lab.name for lab, c, k in zip(labels, counts, keep) if k and c < cfg["prune_below"]]
            keep &= counts >= cfg["prune_below"]
            if rare:
                notes.append(f"pruned labels in fewer than {cfg['prune_below']} training tiles: {', '.join(rare)}")
        if not keep.any():
            raise OLRError(
                f"No label of dataset {ds.name} is left after pruning (prune_below={cfg['prune_below']}); lower prune_below or choose another scheme."
            )
        pruned = [lab.name for lab, k in zip(labels, keep) if not k]
        labels = [lab for lab, k in zip(labels, keep) if k]
        presence = presence[:, keep]
    y = presence.astype(np.float32)
    cfg = {**cfg, **_derived(ds, train_idx, val_idx)}
    cfg["labels"] = [lab.to_json() for lab in labels]
    cfg["pruned_labels"] = pruned
    cfg["val_all_absent_accuracy"] = float(1.0 - y[val_idx].mean())
    if cfg["batch_size"] > len(train_idx):
        notes.append(f"batch_size {cfg['batch_size']} is larger than the {len(train_idx)} training tiles; using {len(train_idx)}")
    return Plan(cfg, ds, train_idx, val_idx, y[train_idx], y[val_idx], notes=notes)


def _finished_classifier(run_id: str) -> store.Run:
    crun = store.load_run(run_id)
    if crun.kind != "classifier":
        raise OLRError(f"The run {crun.id} is a {crun.kind} run, not a classifier run; set classifier_run to a classifier run.")
    if crun.state != "finished":
        raise OLRError(f"The classifier run {crun.id} is {crun.state}, not finished; wait for it to finish or pick a finished classifier run.")
    if not (crun.path / "best.keras").is_file() or not crun.config.get("labels") or not crun.config.get("tile_shape"):
        raise OLRError(f"The classifier run {crun.id} has no best.keras or no label list; train the classifier again.")
    return crun


def prepare_siamese(cfg: dict, resuming: bool = False) -> Plan:
    """Check the classifier run and that the dataset fits it (tile shape and labels)."""
    crun = _finished_classifier(cfg["classifier_run"])
    ccfg = crun.config
    ds = load_dataset(cfg["dataset"] or ccfg["dataset"])
    if tuple(ds.tile_shape) != tuple(ccfg["tile_shape"]):
        raise OLRError(
            f"The dataset {ds.name} has tiles of shape {tuple(ds.tile_shape)} but the classifier run {crun.id} takes "
            f"{tuple(ccfg['tile_shape'])}; use the classifier's dataset or one with the same tile size and bands."
        )
    labels = [Label.from_json(d) for d in ccfg["labels"]]
    own = set(ds.label_names)
    # A label of another scheme is regrouped from the per-code fractions; codes the scene lacks
    # just add nothing, so each label needs at least one of its codes in the dataset.
    present = set(ds.codes)
    codes_ok = ds.code_fractions is not None and all(present.intersection(lab.codes) for lab in labels)
    missing = [lab.name for lab in labels if lab.name not in own]
    if missing and not codes_ok:
        raise OLRError(
            f"The dataset {ds.name} does not have the labels {', '.join(map(repr, missing))} of the classifier run {crun.id}; "
            "use a dataset prepared with the same labels."
        )
    notes = []
    if meta_checksum(ds) != ccfg.get("dataset_checksum") and ds.name == ccfg.get("dataset"):
        notes.append(f"WARNING: dataset {ds.name} changed since classifier run {crun.id} was trained")
    train_idx, val_idx = _open_splits(ds, cfg)
    if not resuming:
        cfg = {**cfg, **_derived(ds, train_idx, val_idx)}
        cfg["labels"] = ccfg["labels"]
        cfg["classifier_run"] = crun.id
        cfg["trunk"] = cfg["trunk"] or ccfg.get("model", "resnet")
    return Plan(cfg, ds, train_idx, val_idx, classifier_run=crun, notes=notes)


def prepare_resume(run_id: str, overrides: dict) -> Plan:
    run = store.load_run(run_id)
    # The launcher marks a resumed run "queued" with this process's pid before it starts.
    if run.state in store.LIVE_STATES and run.status.get("pid") != os.getpid():
        raise OLRError(f"The run {run.id} is still {run.state}; stop it first or wait until it ends.")
    if not run.config:
        raise OLRError(f"The run {run.id} has no config.json, so it cannot be resumed; start a new run.")
    state = run.train_state
    if not state or not (run.path / "last.keras").is_file():
        raise OLRError(f"The run {run.id} has no checkpoint yet (last.keras), so it cannot be resumed; start a new run.")
    stored = {k: v for k, v in run.config.items() if k not in options.DERIVED_KEYS}
    for key, value in overrides.items():
        if key not in RESUMABLE_KEYS and stored.get(key) != value:
            raise OLRError(
                f"The option {key} cannot change when resuming run {run.id}; only {', '.join(RESUMABLE_KEYS)} can (start a new run for other changes)."
            )
    cfg = options.resolve({**stored, **overrides})
    if state.get("epoch", 0) >= cfg["epochs"]:
        raise OLRError(
            f"The run {run.id} has already trained {state.get('epoch')} of {cfg['epochs']} epochs; resume with --set epochs=N (N > {state.get('epoch')})."
        )
    full = {**run.config, **cfg}
    if cfg["kind"] == "classifier":
        plan = prepare_classifier({**cfg, "dataset": run.config.get("dataset_path") or cfg["dataset"]},
                                  fixed_labels=[Label.from_json(d) for d in run.config["labels"]])
    else:
        plan = prepare_siamese({**cfg, "dataset": run.config.get("dataset_path") or cfg["dataset"]}, resuming=True)
    if meta_checksum(plan.dataset) != run.config.get("dataset_checksum"):
        plan.notes.append(f"WARNING: dataset {plan.dataset.name} changed since this run started")
    plan.cfg = full
    plan.run_dir = run.path
    plan.train_state = state
    atomic.write_json(run.path / "config.json", full)
    trim_metrics(run.path, state.get("epoch", 0), state.get("step", 0))
    return plan


def trim_metrics(run_dir: Path, epoch: int, step: int) -> int:
    """Drop metrics lines logged after the checkpoint a run resumes from; return how many.

    A run killed mid-epoch logged steps (and perhaps an epoch summary) that its checkpoint
    does not hold; the resumed run logs them again, so the old ones would double the curves.
    Torn lines go too. The file is replaced atomically.
    """
    path = run_dir / "metrics.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        row_epoch, row_step = row.get("epoch", 0), row.get("step", 0)
        if not isinstance(row_epoch, (int, float)) or not isinstance(row_step, (int, float)):
            continue
        if row_step > step or (row.get("scope") == "epoch" and row_epoch > epoch):
            continue
        kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        atomic.write_bytes(path, b"".join(line + b"\n" for line in kept))
    return dropped


def check_new_run_id(run_id: str) -> None:
    path = workspace.run_path(run_id)  # validates the name
    if (path / "config.json").exists():
        raise OLRError(f"The run {run_id} already exists; choose another --run-id, or continue it with --resume {run_id}.")


def create_run_folder(run_id: str | None, kind: str) -> Path:
    root = workspace.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    if run_id:
        path = workspace.run_path(run_id)
        check_new_run_id(run_id)
        path.mkdir(exist_ok=True)  # a folder the launcher made (console.log, queued status) is adopted
        return path
    while True:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{kind}-{secrets.token_hex(3)}"
        try:
            (root / run_id).mkdir()
            return root / run_id
        except FileExistsError:
            continue


# --- the run's life: status, console, signals ------------------------------------------------


class StatusFile:
    """status.json, rewritten atomically by `update` and by a heartbeat thread."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def progress(self, **fields) -> None:
        """Remember fields for the next heartbeat (cheap: called every step)."""
        with self.lock:
            self.data.update(fields)

    def update(self, **fields) -> None:
        with self.lock:
            self.data.update(fields)
            self.data["heartbeat"] = time.time()
            atomic.write_json(self.path, self.data)

    def start_heartbeat(self, interval_s: float) -> None:
        def beat():
            while not self._stop.wait(interval_s):
                try:
                    self.update()
                except OSError:
                    pass  # a full disk must not kill training; the next beat retries

        self._thread = threading.Thread(target=beat, name="olr-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Tee:
    """A text stream that also appends everything to a file."""

    def __init__(self, stream, file):
        self._stream, self._file = stream, file

    def write(self, text):
        self._stream.write(text)
        try:
            self._file.write(text)
            self._file.flush()
        except (OSError, ValueError):
            pass
        return len(text)

    def flush(self):
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def start_console_log(run_dir: Path):
    """Copy stdout/stderr into console.log unless stdout already writes there. Returns an undo."""
    path = run_dir / "console.log"
    try:
        if path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path)):
            return lambda: None
    except (OSError, ValueError, AttributeError):
        pass
    file = open(path, "a", encoding="utf-8")
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, file), _Tee(sys.stderr, file)

    def undo():
        sys.stdout, sys.stderr = old
        file.close()

    return undo


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


def execute(plan: Plan, args) -> int:
    run_dir = plan.run_dir
    resuming = plan.train_state is not None
    previous = store.read_json(run_dir / "status.json")
    now = time.time()
    wait = getattr(args, "wait_for_device", False)
    status = StatusFile(run_dir / "status.json", {
        **previous,
        "state": "queued" if wait else "running", "pid": os.getpid(), "host": socket.gethostname(), "device": None,
        "started": previous.get("started", now) if resuming else now, "ended": None, "error": None,
        "epoch": (plan.train_state or {}).get("epoch", 0), "step": (plan.train_state or {}).get("step", 0),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    })
    if resuming:
        status.data["resumed"] = now
    status.data.pop("followup_errors", None)
    status.update()
    (run_dir / "metrics.jsonl").touch()
    undo_console = start_console_log(run_dir)
    stop = StopFlag()
    stop.install()
    status.start_heartbeat(args.heartbeat_s)
    devices = device_queue.device_names(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if wait and any(device_queue.busy(name) for name in devices):
        log(f"queued: waiting until no other run trains on {', '.join(devices)}")
    with device_queue.hold_devices(devices, wait=wait, should_stop=lambda: stop.requested) as turn:
        return _execute_held(plan, args, status, stop, undo_console, turn)


def _execute_held(plan: Plan, args, status: StatusFile, stop: StopFlag, undo_console, turn: bool) -> int:
    run_dir = plan.run_dir
    resuming = plan.train_state is not None
    try:
        if not turn:
            log(f"{stop.signal_name}: stopped while queued for its device")
            status.stop_heartbeat()
            status.update(state="stopped", ended=time.time())
            return EXIT_STOPPED
        if status.data["state"] == "queued":
            status.update(state="running", started=status.data["started"] if resuming else time.time())
        cfg = plan.cfg
        log(f"{'resuming' if resuming else 'starting'} {cfg['kind']} run {run_dir.name} (olr {__version__}, pid {os.getpid()})")
        log(f"dataset {plan.dataset.name}: {len(plan.train_idx)} train / {len(plan.val_idx)} val tiles of {tuple(plan.dataset.tile_shape)}; "
            f"{len(cfg['labels'])} labels: {', '.join(d['name'] for d in cfg['labels'])}")
        for note in plan.notes:
            log(note)
        strategy, device = setup_devices(args.logical_cpus)
        status.update(device=device)
        log(f"device: {device}")
        train = train_classifier if cfg["kind"] == "classifier" else train_siamese
        outcome = train(plan, strategy, status, stop)
        if outcome == "finished" and not args.no_evaluate:
            status.update(phase="evaluating")
            errors = run_followups(run_dir)
            if errors:
                status.progress(followup_errors=errors)
        status.stop_heartbeat()
        status.update(state=outcome, ended=time.time(), phase=None)
        log(f"run {run_dir.name} {outcome}")
        return 0 if outcome == "finished" else EXIT_STOPPED
    except OLRError as e:
        status.stop_heartbeat()
        status.update(state="failed", ended=time.time(), error=str(e))
        raise
    except BaseException as e:  # noqa: BLE001 - every failure must be recorded in status.json
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        status.stop_heartbeat()
        status.update(state="failed", ended=time.time(), error="\n".join(text.strip().splitlines()[-12:]))
        if isinstance(e, KeyboardInterrupt):
            return 130
        return 1
    finally:
        stop.uninstall()
        undo_console()


def run_followups(run_dir: Path) -> list[str]:
    """Evaluation and correlations for a finished run, when those modules exist.

    Called before the status says "finished" (hence check_finished=False). Correlations run
    only if evaluation did not already write them (it does for Siamese runs).
    """
    errors = []
    for module_name, func_name in (("olr.analysis.evaluation", "evaluate_run"), ("olr.analysis.correlations", "compute_for_run")):
        if module_name == "olr.analysis.correlations" and (run_dir / "correlations" / "agreement.json").exists():
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            log(f"{module_name} is not available; skipped")
            continue
        func = getattr(module, func_name, None)
        if func is None:
            log(f"{module_name}.{func_name} is not available; skipped")
            continue
        log(f"running {module_name}.{func_name}")
        kwargs = {"check_finished": False} if "check_finished" in inspect.signature(func).parameters else {}
        try:
            func(run_dir, **kwargs)
        except Exception as e:  # noqa: BLE001 - training succeeded; keep it finished, report the rest
            message = str(e) if isinstance(e, OLRError) else f"{type(e).__name__}: {e}"
            log(f"{module_name}.{func_name} failed: {message}")
            if not isinstance(e, OLRError):
                traceback.print_exc()
            errors.append(f"{module_name}.{func_name}: {message}")
    return errors


def setup_devices(logical_cpus: int = 0):
    """(strategy, device description). Must run before TensorFlow executes anything."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass
    if gpus:
        names = []
        for i, gpu in enumerate(gpus):
            try:
                detail = tf.config.experimental.get_device_details(gpu).get("device_name", "")
            except (RuntimeError, ValueError):
                detail = ""
            names.append(f"GPU:{i}" + (f" ({detail})" if detail else ""))
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(), f"{', '.join(names)} (MirroredStrategy)"
        return tf.distribute.get_strategy(), names[0]
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
        except RuntimeError:
            raise OLRError("The CPU can only be split into logical devices before TensorFlow starts; run the training in a fresh process.") from None
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices), f"CPU x{len(devices)} (logical devices, MirroredStrategy)"
    return tf.distribute.get_strategy(), "CPU"


# --- training ---------------------------------------------------------------------------------


def make_optimizer(cfg: dict, total_steps: int):
    """The configured optimizer; with lr_schedule=cosine the rate decays over `total_steps`."""
    import keras

    lr = cfg["learning_rate"]
    if cfg.get("lr_schedule", "constant") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.05)
    name = cfg["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    return keras.optimizers.SGD(lr, momentum=0.9)


def classifier_metrics(n_labels: int, threshold: float) -> list:
    """Binary accuracy, micro/macro F1 and F2 at `threshold`, macro AP (mean per-label PR-AUC), micro AP."""
    import keras

    m = keras.metrics
    return [
        m.BinaryAccuracy(threshold=threshold, name="binary_accuracy"),
        m.FBetaScore(average="micro", beta=1.0, threshold=threshold, name="micro_f1"),
        m.FBetaScore(average="macro", beta=1.0, threshold=threshold, name="macro_f1"),
        m.FBetaScore(average="micro", beta=2.0, threshold=threshold, name="micro_f2"),
        m.FBetaScore(average="macro", beta=2.0, threshold=threshold, name="macro_f2"),
        m.AUC(curve="PR", multi_label=True, num_labels=n_labels, name="macro_ap"),
        m.AUC(curve="PR", multi_label=False, name="micro_ap"),
    ]


def _clean(values: dict) -> dict:
    out = {}
    for k, v in (values or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if np.isfinite(f) else None
    return out


def save_atomic(model, path: Path) -> None:
    """model.save to a temporary name in the same folder, then rename over `path`."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _run_callback_class():
    import keras

    class RunCallback(keras.callbacks.Callback):
        """Metrics lines, progress, validation, best/last checkpoints, early stopping, stop flag."""

        def __init__(self, plan: Plan, save_model, val_data, status: StatusFile, stop: StopFlag):
            super().__init__()
            cfg = plan.cfg
            self.run_dir = plan.run_dir
            self.save_model = save_model
            self.val_data = val_data
            self.status = status
            self.stop = stop
            self.epochs = cfg["epochs"]
            self.monitor = cfg["checkpoint_metric"]
            self.minimize = self.monitor.endswith("loss")
            self.patience = cfg["early_stopping_patience"]
            self.log_every = cfg["log_every_steps"]
            self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "wait": 0, "monitor": self.monitor,
                          **(plan.train_state or {})}
            if self.state.get("early_stopped"):  # resumed after early stopping: the user wants more epochs
                self.state.update(early_stopped=False, wait=0)
            self.epoch = self.state["epoch"]
            self._fd = os.open(self.run_dir / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

        def write(self, split: str, values: dict, scope: str) -> None:
            line = {"step": self.state["step"], "epoch": self.epoch + 1, "split": split, "time": time.time(), "scope": scope}
            line.update(_clean(values))
            os.write(self._fd, (json.dumps(line) + "\n").encode())  # one write: a reader never sees half a line

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.status.progress(epoch=epoch + 1, step=self.state["step"])

        def on_train_batch_end(self, batch, logs=None):
            self.state["step"] += 1
            self.status.progress(epoch=self.epoch + 1, step=self.state["step"])
            if self.state["step"] % self.log_every == 0:
                values = _clean(logs)
                self.write("train", values, "step")
                log(f"epoch {self.epoch + 1} step {self.state['step']}: " + " ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None))
            if self.stop.requested:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if self.stop.requested:
                log(f"{self.stop.signal_name}: stopping in epoch {epoch + 1} after step {self.state['step']}")
                save_atomic(self.save_model, self.run_dir / "last.keras")
                self._write_state()
                return
            val = _clean(self.model.evaluate(self.val_data, verbose=0, return_dict=True))
            self.write("train", logs, "epoch")
            self.write("val", val, "epoch")
            logs.update({f"val_{k}": v for k, v in val.items()})
            score = logs.get(self.monitor)
            best = self.state["best"]
            improved = score is not None and (best is None or (score < best if self.minimize else score > best))
            if improved:
                save_atomic(self.save_model, self.run_dir / "best.keras")
                self.state.update(best=score, best_epoch=epoch + 1, wait=0)
            else:
                self.state["wait"] += 1
            self.state["epoch"] = epoch + 1
            save_atomic(self.save_model, self.run_dir / "last.keras")
            if self.patience and self.state["wait"] >= self.patience:
                self.state["early_stopped"] = True
                self.model.stop_training = True
            self._write_state()
            shown = " ".join(f"{k} {v:.4f}" for k, v in _clean(logs).items() if v is not None)
            log(f"epoch {epoch + 1}/{self.epochs} done: {shown}{'  * best' if improved else ''}")
            if self.state.get("early_stopped"):
                log(f"early stopping: {self.monitor} did not improve for {self.patience} epochs (best {self.state['best']} at epoch {self.state['best_epoch']})")

        def _write_state(self):
            atomic.write_json(self.run_dir / "train_state.json", {**self.state, "time": time.time()})
            self.status.update(epoch=self.state["epoch"], step=self.state["step"])

        def on_train_end(self, logs=None):
            os.close(self._fd)

    return RunCallback


def _per_replica_multiple(n: int, replicas: int) -> int:
    """`n` rounded down to a multiple of the replica count (at least one per replica).

    Under MirroredStrategy every batch, the last one too, must split evenly between the
    replicas (Keras 3 fails on uneven splits), so batch sizes and the number of validation
    tiles/pairs are multiples of the replica count; at most replicas-1 validation tiles drop.
    """
    return max(replicas, n - n % replicas)


def train_classifier(plan: Plan, strategy, status: StatusFile, stop: StopFlag) -> str:
    import keras

    from olr.training import losses
    from olr.training import models
    from olr.training import pipelines

    cfg, ds = plan.cfg, plan.dataset
    initial_epoch = (plan.train_state or {}).get("epoch", 0)
    keras.utils.set_random_seed(cfg["seed"] + initial_epoch)
    n_labels = len(cfg["labels"])
    replicas = strategy.num_replicas_in_sync
    batch = _per_replica_multiple(min(cfg["batch_size"], len(plan.train_idx)), replicas)
    n_val = len(plan.val_idx) - len(plan.val_idx) % replicas
    if batch != min(cfg["batch_size"], len(plan.train_idx)):
        log(f"batch size {batch}: a multiple of the {replicas} replicas")
    with strategy.scope():
        if plan.train_state is not None:
            model = keras.models.load_model(plan.run_dir / "last.keras")  # compiled, with optimizer state
        else:
            model = models.classifier(cfg, ds.tile_shape, n_labels, ds.meta["bands"])
            pos_weight = losses.pos_weights(plan.y_train, cfg["pos_weight_max"]) if cfg["loss"] == "weighted_bce_global" else None
            total_steps = cfg["epochs"] * max(1, len(plan.train_idx) // batch)
            model.compile(optimizer=make_optimizer(cfg, total_steps), loss=losses.make_loss(cfg, pos_weight),
                          metrics=classifier_metrics(n_labels, cfg["threshold"]), jit_compile=cfg.get("jit_compile", "auto"))
    log(f"model {model.name}: {model.count_params():,} parameters; loss {cfg['loss']}; batches {'shuffled' if cfg['shuffle'] else 'in order'}")
    train_data = pipelines.tile_batches(ds.images, plan.train_idx, plan.y_train, batch_size=batch, shuffle=cfg["shuffle"],
                                     augment=cfg["augment"], seed=cfg["seed"], drop_remainder=True)
    val_data = pipelines.tile_batches(ds.images, plan.val_idx[:n_val], plan.y_val[:n_val], batch_size=_per_replica_multiple(max(batch, 256), replicas))
    callback = _run_callback_class()(plan, model, val_data, status, stop)
    model.fit(train_data, epochs=cfg["epochs"], initial_epoch=initial_epoch, callbacks=[callback], verbose=0, shuffle=False)
    return "stopped" if stop.requested else "finished"


def train_siamese(plan: Plan, strategy, status: StatusFile, stop: StopFlag) -> str:
    import keras

    from olr.training import models
    from olr.training import pipelines

    cfg, ds = plan.cfg, plan.dataset
    state = plan.train_state or {}
    initial_epoch = state.get("epoch", 0)
    keras.utils.set_random_seed(cfg["seed"] + initial_epoch)
    n_labels = len(cfg["labels"])
    replicas = strategy.num_replicas_in_sync
    batch = _per_replica_multiple(cfg["batch_size"], replicas)
    val_pairs = max(replicas, cfg["val_pairs"] - cfg["val_pairs"] % replicas)
    if batch != cfg["batch_size"]:
        log(f"batch size {batch}: a multiple of the {replicas} replicas")
    with strategy.scope():
        classifier = keras.models.load_model(plan.classifier_run.path / "best.keras", compile=False)
        if tuple(classifier.input_shape[1:]) != tuple(ds.tile_shape) or classifier.output_shape[-1] != n_labels:
            raise OLRError(
                f"The classifier run {plan.classifier_run.id}'s model takes {classifier.input_shape[1:]} and gives "
                f"{classifier.output_shape[-1]} labels, which does not match its config; train the classifier again."
            )
        if plan.train_state is not None:
            siamese = keras.models.load_model(plan.run_dir / "last.keras")  # compiled, with optimizer state
        else:
            embedder = models.siamese_embedder(ds.tile_shape, n_labels, cfg["embedding_dim"], ds.meta["bands"],
                                               cfg["trunk"], cfg["width"], cfg["depth"])
            if cfg.get("init_from_classifier"):
                copied = models.copy_trunk_weights(classifier, embedder)
                log(f"Siamese trunk initialised from the classifier: {copied} layers copied" if copied > 1 else
                    "Siamese trunk trained from scratch: its architecture differs from the classifier's")
            siamese = models.siamese_pair_model(embedder)
            total_steps = cfg["epochs"] * max(1, (cfg["pairs_per_epoch"] or len(plan.train_idx)) // batch)
            siamese.compile(optimizer=make_optimizer(cfg, total_steps), loss="mse")  # so checkpoints carry the optimizer state
        fill = [b["mean"] for b in ds.meta["bands"]] if cfg["occlusion_fill"] == "mean" else [0.0] * ds.tile_shape[2]
        trainer = models.SiameseTrainer(siamese, classifier, fill)
        # The fused step XLA-compiles as a whole (bench siamese: ~1.7x less CPU per pair on CPU);
        # Keras's "auto" would leave XLA off on CPU. Off with several replicas, as Keras does.
        jit = cfg.get("jit_compile", "auto")
        trainer.compile(optimizer=siamese.optimizer, loss="mse", jit_compile=replicas == 1 if jit == "auto" else jit)
    pairs = cfg["pairs_per_epoch"] or len(plan.train_idx)
    steps = max(1, pairs // batch)
    occlusion = (cfg["occlusion_min"], cfg["occlusion_max"])
    log(f"Siamese {cfg['trunk']} trunk, k={cfg['embedding_dim']}: {siamese.count_params():,} parameters; "
        f"{steps} steps of {batch} pairs per epoch; occlusion {occlusion[0]:g}-{occlusion[1]:g} of the tile side, fill {cfg['occlusion_fill']}")
    train_data = pipelines.pair_batches(ds.images, plan.train_idx, batch_size=batch, occlusion=occlusion, seed=cfg["seed"],
                                     start_step=state.get("step", 0), self_pair_share=cfg.get("self_pair_share", 0.0))
    val_data = pipelines.fixed_pair_batches(ds.images, plan.val_idx, n_pairs=val_pairs, batch_size=_per_replica_multiple(max(batch, 64), replicas),
                                         occlusion=occlusion, seed=cfg["seed"] + 1, self_pair_share=cfg.get("self_pair_share", 0.0))
    callback = _run_callback_class()(plan, siamese, val_data, status, stop)
    trainer.fit(train_data, steps_per_epoch=steps, epochs=cfg["epochs"], initial_epoch=initial_epoch, callbacks=[callback], verbose=0, shuffle=False)
    return "stopped" if stop.requested else "finished"
