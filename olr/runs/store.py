"""The run store: one folder `models/<run-id>/` per run, its file layout, states and status.

This module owns the run folder: the names of its files (`RunLayout`), the states a run can
be in (`RunState`), how `status.json` and `metrics.jsonl` are read and written, how run ids
and folders are made, and whether a run's process is alive. Every other module reaches run
files through it.

Readers never crash on a half-written or foreign folder: hidden folders (`.name`, e.g. the
launcher's `.launches`) and plain files are skipped; a folder without a readable
`config.json` is still listed (its state from `status.json`, e.g. "queued" while the
launcher waits for the process to start, or "incomplete" when neither file is readable),
so a run that failed during start-up stays visible.

Liveness: a run whose status says "running" is reported as state "dead" when its heartbeat
is older than `stale_after_s` (default 30 s, env `OLR_STALE_AFTER_S`) or, on this host, its
process is gone; a "queued" run whose process is gone is "dead" too. Status times
(`started`, `ended`, `heartbeat`) are unix seconds.

No TensorFlow here (the app's pages list runs before anything heavy is imported).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from olr import atomic, workspace
from olr.errors import OLRError


class RunState(StrEnum):
    """The `state` of `status.json` ("dead" is never written: readers derive it).

    A str, so `RunState.FINISHED == "finished"`, JSON holds the plain word and f-strings show it.
    """

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    DEAD = "dead"
    INCOMPLETE = "incomplete"


#: the process is (or should be) working on the run
LIVE_STATES = (RunState.QUEUED, RunState.RUNNING)
#: the process ended and said how
FINAL_STATES = (RunState.FINISHED, RunState.FAILED, RunState.STOPPED)
#: the process is gone, whether it said how it ended or not
ENDED_STATES = (*FINAL_STATES, RunState.DEAD)
#: the run ended with a usable best checkpoint
USABLE_STATES = (RunState.FINISHED, RunState.STOPPED)
#: the run broke off: an error, or a process that vanished
FAILED_STATES = (RunState.FAILED, RunState.DEAD)
#: the run ended before its last epoch (its error, log and a resume are worth showing)
ENDED_EARLY_STATES = (*FAILED_STATES, RunState.STOPPED)

#: the `kind` in config.json of a study folder (`olr study`: classifier -> Siamese -> report), which
#: lives among the runs so the launcher, the run list and liveness treat it like one
STUDY_KIND = "study"

#: status.json["flags"] kind: the best checkpoint's validation accuracy does not beat predicting every label absent
BELOW_BASELINE = "below_baseline"
#: each flag kind in a few words, for run lists
FLAG_TITLES = {BELOW_BASELINE: "below the all-absent baseline"}

#: metrics logged under an older name: Keras's interpolated precision-recall AUC was once called "AP"
RENAMED_METRICS = {"macro_ap": "macro_pr_auc", "micro_ap": "micro_pr_auc"}


def current_metric_name(name: str) -> str:
    """A metric name (with or without the `val_` prefix) as runs log it now (`val_macro_ap` -> `val_macro_pr_auc`)."""
    prefix = "val_" if name.startswith("val_") else ""
    return prefix + RENAMED_METRICS.get(name.removeprefix(prefix), name.removeprefix(prefix))


def _path(*parts: str) -> property:
    """A RunLayout property: the path `parts` inside the run folder."""
    return property(lambda self: self.root.joinpath(*parts), doc=f"`<run>/{'/'.join(parts)}`")


@dataclass(frozen=True, init=False)
class RunLayout:
    """Where each file of one run folder lives (docs/ARCHITECTURE.md says what each holds).

    File names are class constants (for a folder being staged: `tmp / RunLayout.SUMMARY`);
    the properties are the paths inside `root`.
    """

    root: Path

    CONFIG: ClassVar[str] = "config.json"
    STATUS: ClassVar[str] = "status.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    CONSOLE: ClassVar[str] = "console.log"
    TRAIN_STATE: ClassVar[str] = "train_state.json"
    CHECKPOINTS: ClassVar[tuple[str, ...]] = ("best", "last")  # <which>.keras
    LAUNCH: ClassVar[str] = "launch.json"  # the launcher's record of the process
    LAUNCH_CONFIG: ClassVar[str] = "launch_config.json"  # the config the launcher passed
    STOP_REQUEST: ClassVar[str] = ".stop_requested"  # the launcher asked the process to stop
    STUDY: ClassVar[str] = "study.json"  # a study folder's record: dataset, stages, runs, figures
    REPORT: ClassVar[str] = "report.html"  # a study folder's self-contained report
    EVALUATION: ClassVar[str] = "evaluation"  # folder, replaced as a whole
    SUMMARY: ClassVar[str] = "summary.json"
    PER_LABEL: ClassVar[str] = "per_label.csv"
    THRESHOLDS: ClassVar[str] = "thresholds.json"
    TEST_PREDICTIONS: ClassVar[str] = "test_predictions.npz"
    CORRELATIONS: ClassVar[str] = "correlations"  # the test split's folder, replaced as a whole
    CORRELATION_SPLITS: ClassVar[tuple[str, ...]] = ("test", "val", "train")  # one folder each
    MATRICES: ClassVar[str] = "matrices.npz"
    AGREEMENT: ClassVar[str] = "agreement.json"
    EMBEDDINGS: ClassVar[str] = "embeddings"  # folder of exported embeddings
    EXPORTS: ClassVar[str] = "exports"  # GIS export of the test split (`olr.analysis.exports`), replaced as a whole
    PREDICTIONS: ClassVar[str] = "predictions"  # folder of predictions on images (`olr.analysis.predict`)
    PROCESSES: ClassVar[str] = "processes"  # a multi-process run's beats, a file per process (`olr.training.processes`)

    config = _path(CONFIG)
    status = _path(STATUS)
    metrics = _path(METRICS)
    console = _path(CONSOLE)
    train_state = _path(TRAIN_STATE)
    launch = _path(LAUNCH)
    launch_config = _path(LAUNCH_CONFIG)
    stop_request = _path(STOP_REQUEST)
    processes = _path(PROCESSES)
    study = _path(STUDY)
    report = _path(REPORT)
    evaluation = _path(EVALUATION)
    summary = _path(EVALUATION, SUMMARY)
    per_label = _path(EVALUATION, PER_LABEL)
    thresholds = _path(EVALUATION, THRESHOLDS)
    test_predictions = _path(EVALUATION, TEST_PREDICTIONS)
    correlations = _path(CORRELATIONS)
    matrices = _path(CORRELATIONS, MATRICES)
    agreement = _path(CORRELATIONS, AGREEMENT)
    embeddings = _path(EMBEDDINGS)
    exports = _path(EXPORTS)
    predictions = _path(PREDICTIONS)

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def correlations_for(self, split: str = "test") -> Path:
        """The correlations folder of one evaluation split: `correlations/` for test (the record every
        run folder has always had), `correlations-<split>/` for the others (val, train)."""
        if split not in self.CORRELATION_SPLITS:
            raise OLRError(f"Unknown split {split!r} for correlations; use {', '.join(self.CORRELATION_SPLITS)}.")
        return self.correlations if split == "test" else self.root / f"{self.CORRELATIONS}-{split}"

    def matrices_for(self, split: str = "test") -> Path:
        return self.correlations_for(split) / self.MATRICES

    def agreement_for(self, split: str = "test") -> Path:
        return self.correlations_for(split) / self.AGREEMENT

    def exports_for(self, split: str = "test") -> Path:
        """The default GIS export folder of one evaluated split: `exports/` for test, `exports-<split>/`
        for the others (as `correlations_for` names them)."""
        if split not in self.CORRELATION_SPLITS:
            raise OLRError(f"Unknown split {split!r} for an export; use {', '.join(self.CORRELATION_SPLITS)}.")
        return self.exports if split == "test" else self.root / f"{self.EXPORTS}-{split}"

    def prediction_for(self, name: str) -> Path:
        """The folder of one prediction on an image, `predictions/<name>/`, replaced as a whole (the name is
        validated as a folder name)."""
        return self.predictions / workspace.check_name(name, "prediction name")

    def checkpoint(self, which: str = "best") -> Path:
        """`best.keras` (best validation score) or `last.keras` (end of the last epoch)."""
        if which not in self.CHECKPOINTS:
            raise OLRError(f"Unknown checkpoint {which!r}; use 'best' or 'last'.")
        return self.root / f"{which}.keras"

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def last(self) -> Path:
        return self.checkpoint("last")


def stale_after_default() -> float:
    try:
        return float(os.environ.get("OLR_STALE_AFTER_S", "30"))
    except ValueError:
        return 30.0


_MISSING, _UNREADABLE = object(), object()


def _decode(path: Path):
    """The decoded JSON value in `path`; `_MISSING` when there is no file, `_UNREADABLE` when it cannot be decoded."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _MISSING
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
        return _UNREADABLE


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when missing, unreadable or not an object."""
    data = _decode(path)
    return data if isinstance(data, dict) else {}


_NUMBER = (int, float)
_TEXT = (str,)
#: the type each known key of status.json must have when present (None is always allowed)
STATUS_TYPES = {
    "state": _TEXT,
    "pid": (int,),
    "host": _TEXT,
    "device": _TEXT,
    "backend": _TEXT,  # the Keras backend it trains on (olr.training.lifecycle)
    "processes": (int,),  # how many processes train it together (olr.training.processes)
    "started": _NUMBER,
    "ended": _NUMBER,
    "heartbeat": _NUMBER,
    "epoch": (int,),
    "step": (int,),
    "error": _TEXT,
    "flags": (list,),
    # progress while training (olr.runs.progress)
    "phase": _TEXT,
    "epochs": (int,),
    "epoch_step": (int,),
    "epoch_steps": (int,),
    "steps_per_s": _NUMBER,
    "samples_per_s": _NUMBER,
    "sample_unit": _TEXT,
    "epoch_end_s": _NUMBER,
    "val_samples": (int,),
}
#: the same for the keys of config.json that readers use without the option schema
CONFIG_TYPES = {
    "kind": _TEXT,
    "dataset": _TEXT,
    "dataset_path": _TEXT,
    "dataset_checksum": _TEXT,
    "classifier_run": _TEXT,
    "labels": (list,),
    "tile_shape": (list,),
    "epochs": (int,),
    "min_fraction": _NUMBER,
    "threshold": _NUMBER,
}
TRAIN_STATE_TYPES = {"epoch": (int,), "step": (int,), "best": _NUMBER, "monitor": _TEXT}


def _type_problems(data: dict, types: dict) -> list[str]:
    """The keys of `data` whose value is not of the type `types` gives (bools are not numbers)."""
    bad = []
    for key, allowed in types.items():
        value = data.get(key)
        if value is None:
            continue
        wrong = not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        if not wrong and isinstance(value, float) and not math.isfinite(value):
            wrong = True
        if wrong:
            bad.append(key)
    return bad


def _label_problem(labels: list) -> str | None:
    """Why config.json's `labels` is not a list of {name, codes, color}, or None."""
    for d in labels:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"].strip():
            return "a label without a name"
        codes = d.get("codes", [])
        if not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            return f"label {d['name'][:40]!r} with codes that are not whole numbers"
        if not isinstance(d.get("color", ""), str):
            return f"label {d['name'][:40]!r} with a colour that is not text"
    return None


def _read_checked(path: Path, types: dict, run_id: str) -> tuple[dict, str | None]:
    """(content, None), ({}, None) when missing, or ({}, sentence) when damaged."""
    data = _decode(path)
    if data is _MISSING:
        return {}, None
    if data is _UNREADABLE:
        return {}, _damaged(path, run_id, "is not readable JSON")
    if not isinstance(data, dict):
        return {}, _damaged(path, run_id, "does not hold a JSON object")
    bad = _type_problems(data, types)
    if bad:
        return {}, _damaged(path, run_id, f"has values of the wrong type ({', '.join(bad)})")
    if isinstance(data.get("labels"), list):
        labels = _label_problem(data["labels"])
        if labels:
            return {}, _damaged(path, run_id, f"lists {labels}")
    return data, None


def _damaged(path: Path, run_id: str, what: str) -> str:
    return (
        f"The file {path.name} of run {run_id} {what}, so the run cannot be shown; "
        "restore the file or delete the run folder."
    )


def read_result_json(path: Path, run_id: str, remedy: str) -> dict | None:
    """A result file's JSON object (None when missing); OLRError naming the file when it is not one.

    `remedy`: what to do, e.g. "evaluate the run again (python -m olr evaluate RUN)".
    """
    data = _decode(path)
    if data is _MISSING:
        return None
    if not isinstance(data, dict):
        raise damaged_result(path, run_id, "is not a readable JSON object", remedy)
    return data


def read_npz(path: Path, run_id: str, remedy: str) -> dict:
    """Every array of an `.npz` result file (no pickles); OLRError naming the file when it is no readable npz."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    # NotImplementedError: zipfile's answer to a damaged compression-method field in a member's header.
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
        raise damaged_result(path, run_id, f"is not a readable .npz file ({type(error).__name__})", remedy) from None


def damaged_result(path: Path, run_id: str, what: str, remedy: str) -> OLRError:
    """The one-sentence error for a damaged result file of a run (the file named relative to the run)."""
    name = f"{Path(path).parent.name}/{Path(path).name}"
    return OLRError(f"The file {name} of run {run_id} {what}; {remedy}.")


@dataclass
class Run:
    """One run folder. `state` includes liveness ("dead"); `status["state"]` is as written."""

    path: Path
    id: str
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    state: str = RunState.INCOMPLETE.value
    #: one sentence when config.json or status.json is damaged (the damaged file then reads as {})
    problem: str | None = None

    @property
    def files(self) -> RunLayout:
        return RunLayout(self.path)

    @property
    def request(self) -> dict:
        """What the launcher asked for (launch_config.json; {} for runs started from a shell): it names the kind
        and dataset of a run whose process failed before writing config.json."""
        return read_json(self.files.launch_config)

    @property
    def kind(self) -> str:
        return str(self.config.get("kind") or self.request.get("kind") or "unknown")

    @property
    def is_study(self) -> bool:
        """A study folder (`olr study`), not a training run: its config says so or, before its process
        wrote one, the launcher's request does. Run pickers and comparisons leave studies out."""
        return self.kind == STUDY_KIND

    @property
    def dataset(self) -> str | None:
        if self.config:
            return self.config.get("dataset")
        dataset = self.request.get("dataset")
        return dataset if isinstance(dataset, str) else None

    @property
    def label_names(self) -> list[str]:
        return [d["name"] for d in self.config.get("labels", [])]

    @property
    def train_state(self) -> dict:
        """train_state.json; {} when missing or damaged (a damaged one cannot be resumed from)."""
        state = read_json(self.files.train_state)
        if _type_problems(state, TRAIN_STATE_TYPES):
            return {}
        if state.get("monitor"):
            state["monitor"] = current_metric_name(state["monitor"])
        return state

    @property
    def flags(self) -> list[dict]:
        """status.json's warnings about a run that ended (each {"kind", "message"}; e.g. `BELOW_BASELINE`)."""
        return [
            f
            for f in self.status.get("flags") or []
            if isinstance(f, dict) and isinstance(f.get("kind"), str) and isinstance(f.get("message"), str)
        ]

    @property
    def started(self) -> float:
        value = self.status.get("started")
        return float(value) if isinstance(value, (int, float)) else _mtime(self.path)

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def console_tail(self, n: int = 20) -> list[str]:
        """The last `n` lines of console.log (`tail_log`)."""
        return tail_log(self, n)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- status.json ---------------------------------------------------------------------------


def read_status(run_dir: str | os.PathLike) -> dict:
    """The status dict of a run folder as written ({} when missing or unreadable)."""
    return read_json(RunLayout(run_dir).status)


def write_status(run_dir: str | os.PathLike, status: dict) -> None:
    """Replace `status.json` atomically (readers see the old or the new file, never a mix)."""
    atomic.write_json(RunLayout(run_dir).status, status)


def merge_status(
    run_dir: str | os.PathLike, fields: dict, *, only_if_missing: bool = False, unless_final: bool = False
) -> None:
    """Write `fields` over the current status; skipped when a status exists and `only_if_missing`,
    or when the run already reached a final state and `unless_final`."""
    current = read_status(run_dir)
    if only_if_missing and current:
        return
    if unless_final and current.get("state") in FINAL_STATES:
        return
    write_status(run_dir, {**current, **fields})


# --- processes -----------------------------------------------------------------------------


def process_start_ticks(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: int | None = None, *, olr_only: bool = False) -> bool:
    """True if `pid` runs on this machine and is not a zombie.

    `start_ticks` (from `process_start_ticks`): it must also have started then, so a reused
    pid does not count. `olr_only`: its command line must mention olr, and without /proc a
    process we may not signal counts as gone (it is not one we started); otherwise it counts
    as alive.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if olr_only else b""
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return _signal_probe(pid, unknown_is_alive=not olr_only)
    if fields[0] == "Z" or (olr_only and b"olr" not in cmdline):
        return False
    return start_ticks is None or int(fields[19]) == int(start_ticks)


def _signal_probe(pid: int, unknown_is_alive: bool) -> bool:
    """No /proc (not Linux): a signal-0 probe; a permission error means "exists, not ours"."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:
        return unknown_is_alive


def liveness(status: dict, stale_after_s: float | None = None, check_pid: bool = True, now: float | None = None) -> str:
    """The state to show for a status dict: as written, or "dead" (see the module docstring)."""
    state = str(status.get("state") or RunState.INCOMPLETE)
    if state not in LIVE_STATES:
        return state
    stale_after_s = stale_after_default() if stale_after_s is None else stale_after_s
    now = time.time() if now is None else now
    pid = status.get("pid")
    local = status.get("host") in (None, socket.gethostname())
    if check_pid and local and isinstance(pid, int) and pid > 0 and not process_alive(pid):
        return RunState.DEAD.value
    heartbeat = status.get("heartbeat")
    if state == RunState.RUNNING and isinstance(heartbeat, (int, float)) and now - heartbeat > stale_after_s:
        return RunState.DEAD.value
    return state


# --- run ids and folders -------------------------------------------------------------------


def _fresh_run_id(kind: str) -> str:
    safe_kind = re.sub(r"[^A-Za-z0-9]+", "-", str(kind)).strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{safe_kind}-{secrets.token_hex(3)}"


def new_run_id(kind: str = "run") -> str:
    """A unique, sortable run id such as `20250101-120000-classifier-3f2a1b` (UTC time) that no folder uses yet."""
    while True:
        run_id = _fresh_run_id(kind)
        if not workspace.run_path(run_id).exists():
            return run_id


def check_new_run_id(run_id: str) -> None:
    """OLRError if `run_id` is not a valid name or names a run that already has a config."""
    path = workspace.run_path(run_id)  # validates the name
    if RunLayout(path).config.exists():
        raise OLRError(
            f"The run {run_id} already exists; choose another --run-id, or continue it with --resume {run_id}."
        )


def create_run_folder(run_id: str | None, kind: str) -> Path:
    """Make the folder of a new run: `run_id`, or a fresh id of `kind`.

    A named folder that exists without a config.json (one the launcher made, holding
    console.log and a queued status) is adopted.
    """
    root = workspace.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    if run_id:
        path = workspace.run_path(run_id)
        check_new_run_id(run_id)
        path.mkdir(exist_ok=True)
        return path
    while True:
        path = root / _fresh_run_id(kind)
        try:
            path.mkdir()  # exclusive: two processes never share a fresh id
            return path
        except FileExistsError:
            continue


def _read_run(path: Path, stale_after_s: float | None = None) -> Run:
    files = RunLayout(path)
    config, config_problem = _read_checked(files.config, CONFIG_TYPES, path.name)
    status, status_problem = _read_checked(files.status, STATUS_TYPES, path.name)
    state = liveness(status, stale_after_s)
    if state not in set(RunState):
        state, status_problem = RunState.INCOMPLETE.value, _damaged(files.status, path.name, "names no known state")
    problem = config_problem or status_problem
    return Run(path=path, id=path.name, config=config, status=status, state=state, problem=problem)


def list_runs(models_dir: str | os.PathLike | None = None, stale_after_s: float | None = None) -> list[Run]:
    """All run folders, newest first (by start time, else folder time)."""
    root = Path(models_dir) if models_dir else workspace.models_dir()
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if p.name.startswith(".") or not p.is_dir():
            continue
        try:
            runs.append(_read_run(p, stale_after_s))
        except OSError:  # vanished or unreadable while listing
            continue
    return sorted(runs, key=lambda r: (r.started, r.id), reverse=True)


def load_run(run: str | os.PathLike | Run, stale_after_s: float | None = None) -> Run:
    """A run by id (in the workspace's models/), by folder path, or a Run (re-read)."""
    if isinstance(run, Run):
        path = run.path
    else:
        text = str(run)
        p = Path(text)
        if os.sep in text or p.is_absolute():
            path = p
        else:
            path = workspace.run_path(text)
    if not path.is_dir():
        raise OLRError(f"There is no run {str(run)!r} in {path.parent}; pick one from python -m olr runs.")
    return _read_run(path, stale_after_s)


# --- metrics.jsonl -------------------------------------------------------------------------


class MetricsLog:
    """metrics.jsonl opened for appending. Each line is one `write`, so a reader never sees half a line."""

    def __init__(self, run_dir: str | os.PathLike):
        self._fd = os.open(RunLayout(run_dir).metrics, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, row: dict) -> None:
        os.write(self._fd, (json.dumps(row) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_metrics(run: Run | str) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per line, columns = union of keys), metrics by their
    current names (an older run's `macro_ap` reads as `macro_pr_auc`: `RENAMED_METRICS`).

    Torn or corrupt lines (not an object, or a value of the wrong type: see `_metrics_row_ok`)
    are skipped; their count is in `df.attrs["skipped_lines"]`.
    """
    run = run if isinstance(run, Run) else load_run(run)
    rows, skipped = [], 0
    try:
        with open(run.files.metrics, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    skipped += 1
                    continue
                if _metrics_row_ok(row):
                    rows.append(_current_names(row))
                else:
                    skipped += 1
    except FileNotFoundError:
        pass
    df = pd.DataFrame(rows)
    df.attrs["skipped_lines"] = skipped
    return df


METRICS_ROW_TYPES = {"step": (int,), "epoch": (int,), "time": _NUMBER, "split": _TEXT, "scope": _TEXT}


def _current_names(row: dict) -> dict:
    """A metrics line with the metrics an older run logged under another name renamed (`RENAMED_METRICS`)."""
    if not RENAMED_METRICS.keys() & row.keys():
        return row
    return {
        (RENAMED_METRICS[k] if k in RENAMED_METRICS and RENAMED_METRICS[k] not in row else k): v for k, v in row.items()
    }


def _metrics_row_ok(row) -> bool:
    """A metrics line is an object whose bookkeeping keys have their types and whose other values are numbers."""
    if not isinstance(row, dict) or _type_problems(row, METRICS_ROW_TYPES):
        return False
    try:  # a lone surrogate (a JSON "\ud800" escape) in a name or text cannot become a table column
        "".join(row).encode("utf-8")
        "".join(v for v in row.values() if isinstance(v, str)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    # NaN and infinities stay: a diverged loss is worth seeing
    values = (v for k, v in row.items() if k not in METRICS_ROW_TYPES)
    return all(v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool)) for v in values)


def epoch_metrics(run: Run | str, split: str) -> pd.DataFrame:
    """The per-epoch metrics lines of one split ("train"/"val"); empty when there are none."""
    df = read_metrics(run)
    if df.empty or "split" not in df or "loss" not in df:
        return pd.DataFrame()
    rows = df[(df["split"] == split) & df["loss"].notna()]
    if "scope" in rows:
        rows = rows[rows["scope"] == "epoch"]
    return rows


def trim_metrics(run_dir: Path, epoch: int, step: int) -> int:
    """Drop metrics lines logged after the checkpoint a run resumes from; return how many.

    A run killed mid-epoch logged steps (and perhaps an epoch summary) that its checkpoint
    does not hold; the resumed run logs them again, so the old ones would double the curves.
    Torn lines go too. The file is replaced atomically.
    """
    path = RunLayout(run_dir).metrics
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if _logged_by_checkpoint(line, epoch, step)]
    dropped = len(lines) - len(kept)
    if dropped:
        atomic.write_bytes(path, b"".join(line + b"\n" for line in kept))
    return dropped


def _logged_by_checkpoint(line: bytes, epoch: int, step: int) -> bool:
    """True for a readable metrics line logged no later than the checkpoint at (`epoch`, `step`)."""
    try:
        row = json.loads(line)
    except ValueError:
        return False
    if not isinstance(row, dict):
        return False
    row_epoch, row_step = row.get("epoch", 0), row.get("step", 0)
    if not isinstance(row_epoch, (int, float)) or not isinstance(row_step, (int, float)):
        return False
    return not (row_step > step or (row.get("scope") == "epoch" and row_epoch > epoch))


def tail_log(run: Run | str, n: int = 20) -> list[str]:
    """The last `n` lines of the run's console.log (empty list when there is none)."""
    run = run if isinstance(run, Run) else load_run(run)
    try:
        with open(run.files.console, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max(4096, 400 * n)))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[-n:] if n > 0 else []


# --- CLI: python -m olr runs ---------------------------------------------------------------
