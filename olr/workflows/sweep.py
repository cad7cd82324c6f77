"""`python -m olr sweep --preset thesis`: the thesis's study as one series of runs.

Preset `thesis` launches the configurations of the thesis's tables 3 and 5 on a chosen
dataset — pruned labels x weighted classes x randomized batches (all 8 combinations), then,
with randomized batches, combined labels (appendix C3), a lowered threshold of 0.2 and focal
loss — with the thesis's architecture and its accuracy-driven checkpointing, plus OLR
Studio's default configuration. Each classifier is followed by its Siamese run. Jobs run one
after another, or in parallel on the given devices (one job per device at a time).

The sweep's manifest (`<workspace>/sweeps/<sweep-id>.json`) lists its runs, so
`sweep_table` can build the thesis-style table: start and final validation accuracy and
macro AP, TP/TN/FP/FN totals on the test split, and the Siamese agreement.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from olr import atomic, workspace
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs import launcher, store
from olr.runs.store import ENDED_STATES, RunLayout, RunState
from olr.workflows import presets

# The settings (presets/thesis_sweep.json): "thesis" is the thesis's own set-up: appendix A's
# architecture, Adam at 1e-4, no augmentation, the best checkpoint chosen by validation binary
# accuracy (the metric that hid its collapse); "olr_default" is OLR Studio's; "quick" and
# "siamese_quick" shrink a sweep to minutes (for tests).
PRESET = presets.load("thesis_sweep")
THESIS_BASE, OUR_DEFAULT, SIAMESE_SETTINGS = PRESET["thesis"], PRESET["olr_default"], PRESET["siamese"]
#: The thesis pruned labels seen in fewer than 100 of 14100 tiles (0.7 %); the same share.
THESIS_PRUNE_SHARE = 100 / 14100


@dataclass
class Job:
    name: str  # row name in the table, e.g. "T3 run 1"
    description: str
    settings: dict
    classifier_run: str | None = None
    siamese_run: str | None = None
    state: str = "pending"
    notes: list[str] = field(default_factory=list)


def thesis_jobs(n_train_tiles: int, quick: bool = False) -> list[Job]:
    """Tables 3 (runs 1-8, in the thesis's order) and 5, then our default."""
    prune = max(1, round(THESIS_PRUNE_SHARE * n_train_tiles))
    jobs = []
    run = 0
    for pruned in (True, False):
        for weighted in (True, False):
            for randomized in (True, False):
                run += 1
                settings = dict(THESIS_BASE)  # the defaults are the other level of each factor
                if pruned:
                    settings["prune_below"] = prune
                if weighted:
                    settings["loss"] = "weighted_bce_batch"
                if not randomized:
                    settings["shuffle"] = False
                jobs.append(
                    Job(
                        f"T3 run {run}",
                        f"pruned={'yes' if pruned else 'no'}, weighted={'yes' if weighted else 'no'}, "
                        f"randomized={'yes' if randomized else 'no'}",
                        settings,
                    )
                )
    jobs.append(
        Job("T5 combined labels", "combined labels (appendix C3), randomized", {**THESIS_BASE, "scheme": "thesis_c3"})
    )
    jobs.append(Job("T5 lowered threshold", "threshold 0.2, randomized", {**THESIS_BASE, "threshold": 0.2}))
    jobs.append(Job("T5 focal loss", "focal loss, randomized", {**THESIS_BASE, "loss": "focal"}))
    jobs.append(
        Job("OLR Studio default", "residual network, BCE, augmentation, macro-AP checkpoint", dict(OUR_DEFAULT))
    )
    if quick:
        for job in jobs:
            job.settings.update(PRESET["quick"])
    return jobs


PRESETS = {"thesis": thesis_jobs}


def _sweeps_dir() -> Path:
    return workspace.home() / "sweeps"


def _save_manifest(sweep_id: str, payload: dict) -> None:
    _sweeps_dir().mkdir(parents=True, exist_ok=True)
    atomic.write_json(_sweeps_dir() / f"{sweep_id}.json", payload)


def list_sweeps() -> list[str]:
    d = _sweeps_dir()
    return sorted((p.stem for p in d.glob("*.json")), reverse=True) if d.is_dir() else []


def load_manifest(sweep_id: str) -> dict:
    path = _sweeps_dir() / f"{workspace.check_name(sweep_id, 'sweep id')}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise OLRError(f"There is no sweep {sweep_id!r}; list them with `python -m olr sweep --list`.") from None


def run_sweep(
    preset: str,
    dataset: str,
    devices: list[str],
    *,
    quick: bool = False,
    siamese: bool = True,
    sweep_id: str | None = None,
    poll_s: float = 2.0,
    echo=print,
) -> str:
    """Launch every job of `preset` (classifier, then its Siamese) and wait for all; return the sweep id."""

    workspace.require_writable("launch a sweep")
    if preset not in PRESETS:
        raise OLRError(f"Unknown sweep preset {preset!r}; use one of {', '.join(PRESETS)}.")
    ds = load_dataset(dataset)
    sweep_id = workspace.check_name(
        sweep_id or f"sweep-{preset}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}", "sweep id"
    )
    jobs = PRESETS[preset](len(ds.split_indices("train")), quick=quick)
    siamese_settings = {**SIAMESE_SETTINGS, **(PRESET["siamese_quick"] if quick else {})}

    def manifest() -> dict:
        return {
            "id": sweep_id,
            "preset": preset,
            "dataset": ds.name,
            "devices": devices,
            "quick": quick,
            "jobs": [job.__dict__ for job in jobs],
        }

    _save_manifest(sweep_id, manifest())
    free = list(devices)
    busy: dict[str, tuple[Job, str]] = {}  # run id -> (job, device)
    queue: list[tuple[Job, str]] = [(job, "classifier") for job in jobs]
    while queue or busy:
        while queue and free:
            job, stage = queue.pop(0)
            device = free.pop(0)
            slug = job.name.lower().replace(" ", "-")
            if stage == "classifier":
                config = {"kind": "classifier", "dataset": ds.name, **job.settings}
                job.classifier_run = launcher.launch_training(config, device, run_id=f"{sweep_id}-{slug}-classifier")
                run_id = job.classifier_run
            else:
                # Same trunk size as its classifier, so the Siamese trunk starts from the classifier's.
                trunk_size = {k: job.settings[k] for k in ("width", "depth") if k in job.settings}
                config = {"kind": "siamese", "classifier_run": job.classifier_run, **siamese_settings, **trunk_size}
                job.siamese_run = launcher.launch_training(config, device, run_id=f"{sweep_id}-{slug}-siamese")
                run_id = job.siamese_run
            job.state = f"{stage} running"
            busy[run_id] = (job, device)
            echo(f"[sweep] {job.name}: {stage} {run_id} on {device}")
            _save_manifest(sweep_id, manifest())
        time.sleep(poll_s)
        for run_id in list(busy):
            state = store.load_run(run_id).state
            if state in ENDED_STATES:
                job, device = busy.pop(run_id)
                free.append(device)
                stage = "classifier" if run_id == job.classifier_run else "siamese"
                echo(f"[sweep] {job.name}: {stage} {state}")
                if stage == "classifier" and state == RunState.FINISHED and siamese:
                    queue.insert(0, (job, "siamese"))
                    job.state = "siamese queued"
                else:
                    job.state = RunState.FINISHED.value if state == RunState.FINISHED else f"{stage} {state}"
                _save_manifest(sweep_id, manifest())
    return sweep_id


def _confusion_totals(run_dir: Path) -> dict:
    path = RunLayout(run_dir).per_label
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k.upper(): int(sum(float(r[f"{k}_configured"]) for r in rows)) for k in ("tp", "tn", "fp", "fn")}


def sweep_table(sweep_id: str) -> pd.DataFrame:
    """The thesis-style table of a sweep: one row per configuration."""

    m = load_manifest(sweep_id)
    rows = []
    for job in m["jobs"]:
        row = {"configuration": job["name"], "settings": job["description"], "state": job["state"]}
        if job.get("classifier_run"):
            try:
                run = store.load_run(job["classifier_run"])
            except OLRError:
                rows.append(row)
                continue
            val = store.epoch_metrics(run, "val")
            for metric, label in (("binary_accuracy", "accuracy"), ("macro_ap", "macro AP")):
                if metric in val and val[metric].notna().any():
                    series = val[metric].dropna()
                    row[f"start {label}"] = float(series.iloc[0])
                    row[f"final {label}"] = float(series.max())
            row["labels"] = len(run.config.get("labels", []))
            row.update(_confusion_totals(run.path))
            summary = store.read_json(run.files.summary)
            if summary:
                row["baseline accuracy"] = summary.get("baseline_accuracy")
                row["test micro F2 (tuned)"] = summary.get("modes", {}).get("per_label", {}).get("micro", {}).get("f2")
        if job.get("siamese_run"):
            agreement = store.read_json(RunLayout(workspace.run_path(job["siamese_run"])).agreement)
            view = agreement.get("siamese_self", {})
            row["agreement ρ"] = view.get("spearman")
        rows.append(row)
    return pd.DataFrame(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="thesis", choices=sorted(PRESETS), help="which series of runs")
    parser.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    parser.add_argument(
        "--devices", default="cpu", help="comma-separated devices to run on in parallel, e.g. cpu or gpu:0,gpu:1"
    )
    parser.add_argument("--quick", action="store_true", help="tiny models and few epochs (minutes; for tests)")
    parser.add_argument("--no-siamese", action="store_true", help="classifiers only")
    parser.add_argument("--sweep-id", help="name of the sweep (default sweep-<preset>-<UTC time>)")
    parser.add_argument("--table", metavar="SWEEP_ID", help="print the table of an existing sweep and exit")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")


def _print_table(df: pd.DataFrame, args) -> None:
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.markdown:
        print(df.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else df.to_string(index=False))
    else:
        with pd.option_context(
            "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format
        ):
            print(df.to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def sweep_command(args) -> int:
    if args.table:
        _print_table(sweep_table(args.table), args)
        return 0
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not devices:
        raise OLRError("--devices is empty; give cpu or GPU ids such as gpu:0,gpu:1.")
    sweep_id = run_sweep(
        args.preset, args.dataset, devices, quick=args.quick, siamese=not args.no_siamese, sweep_id=args.sweep_id
    )
    print(f"sweep {sweep_id} finished")
    _print_table(sweep_table(sweep_id), args)
    return 0
