"""Run folders `models/<run-id>/`: list them, read their status/metrics/config, compare them.

Readers never crash on a half-written or foreign folder: hidden folders (`.name`, e.g. the
launcher's `.launches`) and plain files are skipped; a folder without a readable
`config.json` is still listed (its state from `status.json`, e.g. "queued" while the
launcher waits for the process to start, or "incomplete" when neither file is readable),
so a run that failed during start-up stays visible.

Liveness: a run whose status says "running" is reported as state "dead" when its heartbeat
is older than `stale_after_s` (default 30 s, env `OLR_STALE_AFTER_S`) or, on this host, its
process is gone; a "queued" run whose process is gone is "dead" too. Status times
(`started`, `ended`, `heartbeat`) are unix seconds.

No TensorFlow at import time; `load_model` imports Keras when called.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from olr import workspace
from olr.errors import OLRError

FINAL_STATES = ("finished", "failed", "stopped")
LIVE_STATES = ("queued", "running")
#: config keys shown by `compare_runs` (when present in a run's config)
KEY_CONFIG = (
    "model", "trunk", "width", "depth", "scheme", "prune_below", "loss", "focal_gamma", "focal_alpha", "shuffle",
    "augment", "threshold", "epochs", "batch_size", "learning_rate", "optimizer", "checkpoint_metric", "max_train_tiles",
    "classifier_run", "embedding_dim", "occlusion_min", "occlusion_max", "occlusion_fill",
)


def stale_after_default() -> float:
    try:
        return float(os.environ.get("OLR_STALE_AFTER_S", "30"))
    except ValueError:
        return 30.0


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Run:
    """One run folder. `state` includes liveness ("dead"); `status["state"]` is as written."""

    path: Path
    id: str
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    state: str = "incomplete"

    @property
    def kind(self) -> str:
        return str(self.config.get("kind", "unknown"))

    @property
    def dataset(self) -> str | None:
        return self.config.get("dataset")

    @property
    def label_names(self) -> list[str]:
        return [d["name"] for d in self.config.get("labels", [])]

    @property
    def train_state(self) -> dict:
        return read_json(self.path / "train_state.json")

    @property
    def started(self) -> float:
        value = self.status.get("started")
        return float(value) if isinstance(value, (int, float)) else _mtime(self.path)

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def process_alive(pid: int) -> bool:
    """True if `pid` runs on this machine and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:  # no /proc: a signal-0 probe
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except OSError:
            return True


def liveness(status: dict, stale_after_s: float | None = None, check_pid: bool = True, now: float | None = None) -> str:
    """The state to show for a status dict: as written, or "dead" (see the module docstring)."""
    state = str(status.get("state") or "incomplete")
    if state not in LIVE_STATES:
        return state
    stale_after_s = stale_after_default() if stale_after_s is None else stale_after_s
    now = time.time() if now is None else now
    pid = status.get("pid")
    local = status.get("host") in (None, socket.gethostname())
    if check_pid and local and isinstance(pid, int) and pid > 0 and not process_alive(pid):
        return "dead"
    heartbeat = status.get("heartbeat")
    if state == "running" and isinstance(heartbeat, (int, float)) and now - heartbeat > stale_after_s:
        return "dead"
    return state


def _read_run(path: Path, stale_after_s: float | None = None) -> Run:
    config = read_json(path / "config.json")
    status = read_json(path / "status.json")
    return Run(path=path, id=path.name, config=config, status=status, state=liveness(status, stale_after_s))


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


def load_run(run: "str | os.PathLike | Run", stale_after_s: float | None = None) -> Run:
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


def read_metrics(run: "Run | str") -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per line, columns = union of keys).

    Torn or corrupt lines are skipped; their count is in `df.attrs["skipped_lines"]`.
    """
    run = run if isinstance(run, Run) else load_run(run)
    rows, skipped = [], 0
    try:
        with open(run.path / "metrics.jsonl", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    skipped += 1
                    continue
                if isinstance(row, dict):
                    rows.append(row)
                else:
                    skipped += 1
    except FileNotFoundError:
        pass
    df = pd.DataFrame(rows)
    df.attrs["skipped_lines"] = skipped
    return df


def epoch_metrics(run: "Run | str", split: str) -> pd.DataFrame:
    """The per-epoch metrics lines of one split ("train"/"val"); empty when there are none."""
    df = read_metrics(run)
    if df.empty or "split" not in df or "loss" not in df:
        return pd.DataFrame()
    rows = df[(df["split"] == split) & df["loss"].notna()]
    if "scope" in rows:
        rows = rows[rows["scope"] == "epoch"]
    return rows


def load_model(run: "Run | str", which: str = "best"):
    """The run's `best.keras` or `last.keras` as a keras.Model (Siamese: the pair model)."""
    if which not in ("best", "last"):
        raise OLRError(f"Unknown checkpoint {which!r}; use 'best' or 'last'.")
    run = run if isinstance(run, Run) else load_run(run)
    path = run.path / f"{which}.keras"
    if not path.is_file():
        raise OLRError(f"The run {run.id} has no {which}.keras yet; wait for its first epoch to end or pick another run.")
    import keras

    import olr.training.losses  # noqa: F401  (registers the custom losses and layers)
    import olr.training.models  # noqa: F401

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # a corrupt or foreign file
        raise OLRError(f"The checkpoint {path} could not be loaded ({type(e).__name__}: {e}); retrain the run.") from None


def tail_log(run: "Run | str", n: int = 20) -> list[str]:
    """The last `n` lines of the run's console.log (empty list when there is none)."""
    run = run if isinstance(run, Run) else load_run(run)
    try:
        with open(run.path / "console.log", "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max(4096, 400 * n)))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[-n:] if n > 0 else []


def _last_values(df: pd.DataFrame, split: str) -> dict:
    if df.empty or "split" not in df:
        return {}
    rows = df[df["split"] == split]
    if "scope" in rows:
        rows = rows[rows["scope"] == "epoch"]
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    skip = {"step", "epoch", "split", "time", "scope"}
    return {f"{split}_{k}": last[k] for k in rows.columns if k not in skip and pd.notna(last[k])}


def _agreement(run: Run) -> dict:
    data = read_json(run.path / "correlations" / "agreement.json")
    out = {}
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"agreement_{key}"] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"agreement_{key}_{sub}"] = v
    return out


def compare_runs(runs: list["Run | str"]) -> pd.DataFrame:
    """One row per run: id, kind, state, dataset, labels, key config values, epochs done,
    best checkpoint score, the last epoch's train/val metrics, and agreement numbers when
    `correlations/agreement.json` exists."""
    rows = []
    for r in runs:
        run = r if isinstance(r, Run) else load_run(r)
        cfg = run.config
        ts = run.train_state
        row = {
            "id": run.id,
            "kind": run.kind,
            "state": run.state,
            "dataset": run.dataset,
            "labels": len(cfg.get("labels", [])) or None,
        }
        for key in KEY_CONFIG:
            if key in cfg:
                value = cfg[key]
                row[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        row["epochs_done"] = ts.get("epoch")
        row["best_metric"] = ts.get("monitor")
        row["best_score"] = ts.get("best")
        metrics = read_metrics(run)
        row.update(_last_values(metrics, "train"))
        row.update(_last_values(metrics, "val"))
        row.update(_agreement(run))
        rows.append(row)
    return pd.DataFrame(rows)


def config_differences(runs: list["Run | str"]) -> list[str]:
    """Config keys whose values differ between the given runs (a missing key counts as a value)."""
    configs = [(r if isinstance(r, Run) else load_run(r)).config for r in runs]
    from olr.training.options import DERIVED_KEYS

    keys = sorted({k for c in configs for k in c} - set(DERIVED_KEYS))
    missing = object()
    return [k for k in keys if len({json.dumps(c.get(k, missing), sort_keys=True, default=str) for c in configs}) > 1]


# --- CLI: python -m olr runs ---------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the runs as JSON lines")
    parser.add_argument("--tail", metavar="RUN", help="print the last lines of one run's console log")
    parser.add_argument("-n", type=int, default=20, help="number of log lines for --tail")


def run(args) -> int:
    if args.tail:
        print("\n".join(tail_log(args.tail, args.n)))
        return 0
    runs = list_runs()
    if args.json:
        for r in runs:
            print(json.dumps({"id": r.id, "kind": r.kind, "state": r.state, "dataset": r.dataset, "epoch": r.status.get("epoch")}))
        return 0
    if not runs:
        print(f"No runs in {workspace.models_dir()}; start one with python -m olr train --help.")
        return 0
    print(f"{'run id':<44} {'kind':<10} {'state':<10} {'epoch':>5}  dataset")
    for r in runs:
        print(f"{r.id:<44} {r.kind:<10} {r.state:<10} {str(r.status.get('epoch', '')):>5}  {r.dataset or ''}")
    return 0
