"""`python -m olr sweep --preset thesis|siamese`: a study as one series of runs, judged on validation.

Preset `thesis` launches the configurations of the thesis's tables 3 and 5 on a chosen
dataset — pruned labels x weighted classes x randomized batches (all 8 combinations), then,
with randomized batches, combined labels (appendix C3), a lowered threshold of 0.2 and focal
loss — with the thesis's architecture and its accuracy-driven checkpointing, plus OLR
Studio's default configuration. Each classifier is followed by its Siamese run.

Preset `siamese` studies the Siamese recipe (presets/siamese_study.json): ONE classifier with
the study recipe (the option defaults; presets/study.json when quick), then Siamese variants against it — the
thesis's random pairs (self_pair_share 0), mixes, self pairs only — and, once those have
finished, occlusion sizes at the pair mix that did best on validation.

Every Siamese run of a sweep gets its label correlations computed on the VALIDATION split
(`python -m olr correlations RUN --split val`, kept in the run's `correlations-val/` beside its
test record), and those figures, never test figures, rank the variants (`best_variant`). Jobs
run one after another, or in parallel on the given devices (one run per device at a time).

The sweep's manifest (`<workspace>/sweeps/<sweep-id>.json`) lists its jobs, their runs and the
validation figures, so `sweep_table` can build the table: one row per job, every figure's
column named after its split ("val ...", "test ...").
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from olr import atomic, workspace
from olr.analysis import correlations
from olr.analysis.compare import finite_number
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs import launcher, store
from olr.runs.store import ENDED_STATES, RunLayout, RunState
from olr.training import options
from olr.workflows import presets, study

# The settings (presets/thesis_sweep.json): "thesis" is the thesis's own set-up: appendix A's
# architecture, Adam at 1e-4, no augmentation, the best checkpoint chosen by validation binary
# accuracy (the metric that hid its collapse); "olr_default" is OLR Studio's; "quick" and
# "siamese_quick" shrink a sweep to minutes (for tests).
PRESET = presets.load("thesis_sweep")
THESIS_BASE, OUR_DEFAULT, SIAMESE_SETTINGS = PRESET["thesis"], PRESET["olr_default"], PRESET["siamese"]
#: The thesis pruned labels seen in fewer than 100 of 14100 tiles (0.7 %); the same share.
THESIS_PRUNE_SHARE = 100 / 14100
#: The Siamese study's variants (presets/siamese_study.json), each over the study recipe
#: (olr.workflows.study.study_settings).
SIAMESE_STUDY = presets.load("siamese_study")
#: A study stage -> (the stage whose best variant on validation it starts from, the options it takes over).
INHERITS = {"occlusion": ("pairs", ("self_pair_share",))}
#: The job of the siamese preset that trains the classifier every variant is measured against.
STUDY_CLASSIFIER = "classifier"
#: The agreement view a Siamese variant is judged by (the correlations module's default view).
SIAMESE_VIEW = "siamese_self"

PENDING, QUEUED = "pending", "siamese queued"


@dataclass
class Job:
    name: str  # row name in the table, e.g. "T3 run 1"
    description: str
    settings: dict  # classifier options that differ from the defaults ({} when the classifier is another job's)
    classifier_run: str | None = None
    siamese_run: str | None = None
    state: str = PENDING
    notes: list[str] = field(default_factory=list)
    siamese_settings: dict | None = None  # Siamese options; None: the job trains no Siamese network
    classifier_of: str | None = None  # the job whose classifier this one reuses instead of training one
    inherit_from: list[str] = field(default_factory=list)  # jobs whose best validation variant sets `inherit`
    inherit: list[str] = field(default_factory=list)
    validation: dict = field(default_factory=dict)  # figures on the validation split, computed by the sweep


def thesis_jobs(n_train_tiles: int, quick: bool = False) -> list[Job]:
    """Tables 3 (runs 1-8, in the thesis's order) and 5, then our default; each with its Siamese run."""
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
        Job("OLR Studio default", "the recipe: residual network, BCE, augmentation, step budget", dict(OUR_DEFAULT))
    )
    siamese = {**SIAMESE_SETTINGS, **(PRESET["siamese_quick"] if quick else {})}
    for job in jobs:
        if quick:
            job.settings.update(PRESET["quick"])
        # Same trunk size as its classifier, so the Siamese trunk starts from the classifier's.
        job.siamese_settings = {**siamese, **{k: job.settings[k] for k in ("width", "depth") if k in job.settings}}
    return jobs


def siamese_jobs(n_train_tiles: int, quick: bool = False) -> list[Job]:
    """The Siamese study: the study recipe's classifier, then every variant of presets/siamese_study.json.

    Variants named "<stage>-..." of a stage in INHERITS wait for the stage they inherit from and
    take over its best variant's options (e.g. the occlusion sizes run at the best pair mix).
    """
    mode = "quick" if quick else "full"
    recipe = study.study_settings(quick)
    base = {"kind": "siamese", **recipe["siamese"]}
    jobs = [Job(STUDY_CLASSIFIER, f"the study recipe's classifier ({mode})", dict(recipe["classifier"]))]
    for name, variant in SIAMESE_STUDY.items():
        stage = name.split("-")[0]
        source, inherited = INHERITS.get(stage, (None, ()))
        jobs.append(
            Job(
                name,
                _variant_text({**base, **variant}, {k: f"that of the best {source} variant" for k in inherited}),
                {},
                siamese_settings={**base, **variant},
                classifier_of=STUDY_CLASSIFIER,
                inherit_from=[n for n in SIAMESE_STUDY if n.split("-")[0] == source],
                inherit=list(inherited),
            )
        )
    return jobs


def _variant_text(settings: dict, instead: dict | None = None) -> str:
    """What a Siamese variant is, in the options the study varies (resolved, so defaults show their value)."""
    config = options.resolve({**settings, "kind": "siamese"}, complete=False)
    values = {k: config[k] for k in ("self_pair_share", "occlusion_min", "occlusion_max")} | (instead or {})
    return ", ".join(f"{k}={v}" for k, v in values.items())


PRESETS = {"thesis": thesis_jobs, "siamese": siamese_jobs}


def build_jobs(
    preset: str,
    n_train_tiles: int,
    *,
    quick: bool = False,
    only: list[str] | None = None,
    overrides: dict | None = None,
) -> list[Job]:
    """The jobs of `preset`, restricted to `only` (with the jobs they need), `overrides` set on every run.

    An override applies to every run whose kind has that option (e.g. epochs to both, pairs_per_epoch to
    Siamese runs); each resulting configuration is validated. OLRError names an unknown preset or job.
    """
    if preset not in PRESETS:
        raise OLRError(f"Unknown sweep preset {preset!r}; use one of {', '.join(PRESETS)}.")
    jobs = PRESETS[preset](n_train_tiles, quick=quick)
    if only:
        names = [j.name for j in jobs]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise OLRError(f"The preset {preset} has no job {unknown[0]!r}; choose from {', '.join(names)}.")
        needed = set(only) | {j.classifier_of for j in jobs if j.name in only and j.classifier_of}
        jobs = [j for j in jobs if j.name in needed]
        for job in jobs:
            job.inherit_from = [n for n in job.inherit_from if n in needed]
    for key, value in (overrides or {}).items():
        if key not in options.OPTIONS or key == "kind":
            raise OLRError(f"The training option {key!r} does not exist; see python -m olr train --help for the names.")
        kinds = options.OPTIONS[key].kinds
        for job in jobs:
            if "classifier" in kinds and job.classifier_of is None:
                job.settings[key] = value
            if "siamese" in kinds and job.siamese_settings is not None:
                job.siamese_settings[key] = value
    for job in jobs:  # every configuration checked before anything is launched
        options.resolve({"kind": "classifier", **job.settings}, complete=False)
        if job.siamese_settings is not None:
            options.resolve({**job.siamese_settings, "kind": "siamese"}, complete=False)
    return jobs


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


# ------------------------------------------------------------------ scheduling


def _done(job: Job) -> bool:
    return job.state not in (PENDING, QUEUED) and not job.state.endswith("running")


def _next_stage(job: Job, by_name: dict[str, Job], ended: dict[str, str], siamese: bool) -> str | None:
    """What `job` can start now: "classifier", "siamese", or None (waiting, or nothing left).

    Sets the job's final state when what it waits for can no longer come (a failed classifier).
    """
    if _done(job) or job.state.endswith("running"):
        return None
    if job.classifier_of is None and job.classifier_run is None:
        return "classifier"
    if job.siamese_settings is None or not siamese:
        return None
    owner = by_name.get(job.classifier_of, job)
    classifier_state = ended.get(owner.classifier_run or "")
    if classifier_state is None:
        return None  # its classifier is still training
    if classifier_state != RunState.FINISHED:
        job.state = f"classifier {classifier_state}"
        return None
    if not all(_done(by_name[n]) for n in job.inherit_from):
        return None
    job.classifier_run = owner.classifier_run
    return "siamese"


def _take_over_best(job: Job, by_name: dict[str, Job], echo) -> None:
    """Set the options `job.inherit` to those of the best validation variant among `job.inherit_from`."""
    if not job.inherit_from:
        return
    best = _best_job([by_name[n] for n in job.inherit_from])
    if best is None:
        job.notes.append(f"no variant of {', '.join(job.inherit_from)} has a validation figure; kept its own settings")
        return
    for key in job.inherit:
        value = options.resolve({**best.siamese_settings, "kind": "siamese"}, complete=False)[key]
        job.siamese_settings[key] = value
        job.notes.append(f"{key}={value} taken from {best.name} (best validation Siamese ρ)")
    job.description = f"{_variant_text(job.siamese_settings)} ({'/'.join(job.inherit)} of {best.name})"
    echo(f"[sweep] {job.name}: {job.notes[-1]}")


def run_sweep(
    preset: str,
    dataset: str,
    devices: list[str],
    *,
    quick: bool = False,
    siamese: bool = True,
    sweep_id: str | None = None,
    only: list[str] | None = None,
    overrides: dict | None = None,
    poll_s: float = 2.0,
    echo=print,
) -> str:
    """Launch every job of `preset` (a classifier, then the Siamese runs against it) and wait for all.

    Each finished Siamese run's correlations are computed on the validation split and stored in the
    manifest. Returns the sweep id.
    """

    workspace.require_writable("launch a sweep")
    ds = load_dataset(dataset)
    jobs = build_jobs(preset, len(ds.split_indices("train")), quick=quick, only=only, overrides=overrides)
    sweep_id = workspace.check_name(
        sweep_id or f"sweep-{preset}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}", "sweep id"
    )
    by_name = {job.name: job for job in jobs}

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
    ended: dict[str, str] = {}  # run id -> final state
    while True:
        while free:
            ready = [(job, _next_stage(job, by_name, ended, siamese)) for job in jobs]
            # A Siamese run before the next classifier: its figures may be what a later variant waits for.
            ready = [r for r in ready if r[1] == "siamese"] + [r for r in ready if r[1] == "classifier"]
            if not ready:
                break
            job, stage = ready[0]
            device = free.pop(0)
            run_id = _launch(job, stage, ds.name, sweep_id, device, by_name, echo)
            busy[run_id] = (job, device)
            echo(f"[sweep] {job.name}: {stage} {run_id} on {device}")
            _save_manifest(sweep_id, manifest())
        if not busy:
            break
        time.sleep(poll_s)
        for run_id in list(busy):
            state = store.load_run(run_id).state
            if state not in ENDED_STATES:
                continue
            job, device = busy.pop(run_id)
            free.append(device)
            ended[run_id] = state
            stage = "siamese" if run_id == job.siamese_run else "classifier"
            echo(f"[sweep] {job.name}: {stage} {state}")
            if state != RunState.FINISHED:
                job.state = f"{stage} {state}"
            elif stage == "classifier":
                wants_siamese = siamese and job.siamese_settings is not None
                job.state = QUEUED if wants_siamese else RunState.FINISHED.value
            else:
                job.validation.update(siamese_validation(run_id, device, echo))
                job.notes += (
                    [f"no validation figures: {job.validation['val_error']}"] if "val_error" in job.validation else []
                )
                job.state = RunState.FINISHED.value
            _save_manifest(sweep_id, manifest())
    for job in jobs:
        if job.state in (PENDING, QUEUED):  # e.g. Siamese variants of a sweep run with siamese=False
            job.state = "not run"
    _save_manifest(sweep_id, manifest())
    return sweep_id


def _launch(job: Job, stage: str, dataset: str, sweep_id: str, device: str, by_name: dict, echo) -> str:
    """Start the classifier or Siamese run of `job`; returns its run id."""
    slug = job.name.lower().replace(" ", "-")
    if stage == "classifier":
        config = {"kind": "classifier", "dataset": dataset, **job.settings}
        job.classifier_run = launcher.launch_training(config, device, run_id=f"{sweep_id}-{slug}-classifier")
        job.state = "classifier running"
        return job.classifier_run
    _take_over_best(job, by_name, echo)
    config = {**job.siamese_settings, "kind": "siamese", "classifier_run": job.classifier_run}
    job.siamese_run = launcher.launch_training(config, device, run_id=f"{sweep_id}-{slug}-siamese")
    job.state = "siamese running"
    return job.siamese_run


# ------------------------------------------------------------------ validation figures


def _correlations_cli(run_id: str, split: str, device: str) -> subprocess.CompletedProcess:
    """`python -m olr correlations RUN --split SPLIT` on `device`, as the app would run it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": launcher.cuda_visible_devices(device)}
    return subprocess.run(
        [sys.executable, "-m", "olr", "correlations", run_id, "--split", split],
        cwd=str(workspace.REPO_ROOT),
        env=env,
        capture_output=True,
        text=True,
    )


def siamese_validation(run_id: str, device: str = "cpu", echo=print) -> dict:
    """{"val_agreement": the Siamese run's agreement.json computed on the validation split}, or {"val_error": why}.

    The figures go to the run's own validation folder (`RunLayout.correlations_for("val")`) and
    into the sweep's manifest; the run's test record (`correlations/`) is never touched.
    """
    proc = _correlations_cli(run_id, "val", device)
    written = store.read_json(RunLayout(workspace.run_path(run_id)).agreement_for("val"))
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip()[-300:]
        echo(f"[sweep] validation correlations of {run_id} failed: {why}")
        return {"val_error": why}
    if _split_of(written) != "val":
        return {"val_error": "the correlations command wrote no validation figures"}
    return {"val_agreement": written}


def _split_of(agreement: dict) -> str | None:
    info = agreement.get("info") if isinstance(agreement, dict) else None
    return info.get("split") if isinstance(info, dict) else None


def classifier_validation(run_id: str) -> dict:
    """Validation figures of a classifier run, keyed by their table column.

    From its evaluation's validation report (threshold-free macro AP and the accuracy at the
    run's configured threshold, with their block-bootstrap intervals, beside the all-absent
    baseline); for a run evaluated before evaluations had one, from its metrics log at the best
    checkpoint's epoch (Keras's PR-AUC, not AP, and no interval). Figures it lacks are absent.
    """
    run = store.load_run(run_id)
    summary = store.read_json(run.files.summary)
    report = summary.get("validation") if isinstance(summary.get("validation"), dict) else None
    if report is None:
        return _logged_validation(run)
    configured = (report.get("modes") or {}).get("configured") or {}
    ap = report.get("macro_ap_interval") or {}
    accuracy = (configured.get("intervals") or {}).get("accuracy") or {}
    figures = {
        "val macro AP": finite_number(ap.get("estimate", (configured.get("macro") or {}).get("ap"))),
        "val macro AP low": finite_number(ap.get("low")),
        "val macro AP high": finite_number(ap.get("high")),
        "val accuracy (configured threshold)": finite_number(report.get("binary_accuracy")),
        "val accuracy low": finite_number(accuracy.get("low")),
        "val accuracy high": finite_number(accuracy.get("high")),
        "val all-absent accuracy": finite_number(report.get("baseline_accuracy")),
    }
    return {k: v for k, v in figures.items() if v is not None}


def _logged_validation(run) -> dict:
    """Validation figures from the metrics log at the epoch the checkpoint metric liked best."""
    val = store.epoch_metrics(run, "val")
    out = {}
    baseline = finite_number(run.config.get("val_all_absent_accuracy"))
    if baseline is not None:
        out["val all-absent accuracy"] = baseline
    monitor = _logged_column(val, str(run.config.get("checkpoint_metric") or "val_loss").removeprefix("val_"))
    if monitor is None:
        return out
    best = val.loc[val[monitor].idxmin() if monitor == "loss" else val[monitor].idxmax()]
    for name, label in (
        ("binary_accuracy", "val accuracy (best epoch)"),
        ("macro_pr_auc", "val macro PR-AUC (best epoch)"),
    ):
        if name in best and pd.notna(best[name]):
            out[label] = float(best[name])
    return out


def _logged_column(val: pd.DataFrame, metric: str) -> str | None:
    """The metrics-log column of `metric` holding a number, else None (an older run's names are
    already the current ones: `store.read_metrics` renames them, `store.current_metric_name`)."""
    name = store.current_metric_name(metric)
    return name if name in val and val[name].notna().any() else None


def _entry(agreement, *path: str) -> dict:
    """The dict at `path` inside an agreement.json (e.g. "untrained", "siamese_self"); {} where absent."""
    for key in path:
        agreement = agreement.get(key) if isinstance(agreement, dict) else None
    return agreement if isinstance(agreement, dict) else {}


def agreement_figures(agreement: dict, split: str) -> dict:
    """Table columns of one agreement.json (`olr.analysis.correlations`): the Siamese view's ρ with its
    95 % block-bootstrap interval, the references (label prior, classifier view, untrained network) and
    the verdict, each column named after `split`. A file from before references and intervals gives
    what it has."""
    view = _entry(agreement, SIAMESE_VIEW)
    figures = {
        f"{split} Siamese ρ": finite_number(view.get("spearman")),
        f"{split} Siamese ρ low": finite_number(_entry(view, "interval").get("low")),
        f"{split} Siamese ρ high": finite_number(_entry(view, "interval").get("high")),
        f"{split} label-prior ρ": finite_number(_entry(agreement, "label_prior").get("spearman")),
        f"{split} classifier ρ": finite_number(_entry(agreement, "classifier_prob").get("spearman")),
        f"{split} untrained ρ": finite_number(_entry(agreement, "untrained", SIAMESE_VIEW).get("spearman")),
        f"{split} verdict": _entry(agreement, "verdict").get("text"),
    }
    return {k: v for k, v in figures.items() if v is not None}


# ------------------------------------------------------------------ the table


def _confusion_totals(run_dir: Path) -> dict:
    path = RunLayout(run_dir).per_label
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {f"test {k.upper()}": int(sum(float(r[f"{k}_configured"]) for r in rows)) for k in ("tp", "tn", "fp", "fn")}


def _classifier_columns(job: dict, test_columns: bool) -> dict:
    try:
        run = store.load_run(job["classifier_run"])
    except OLRError:
        return {}
    row = {}
    val = store.epoch_metrics(run, "val")
    for metric, label in (("binary_accuracy", "accuracy"), ("macro_pr_auc", "macro PR-AUC")):
        column = _logged_column(val, metric)
        if column:
            series = val[column].dropna()
            row[f"val start {label}"] = float(series.iloc[0])
            row[f"val final {label}"] = float(series.max())
    row.update(classifier_validation(run.id))
    row["labels"] = len(run.config.get("labels", []))
    if test_columns:  # the thesis's tables report test counts; never used to pick a row
        row.update(_confusion_totals(run.path))
        summary = store.read_json(run.files.summary)
        if summary:
            row["test all-absent accuracy"] = summary.get("baseline_accuracy")
            per_label = summary.get("modes", {}).get("per_label", {})
            row["test micro F2 (per-label-tuned)"] = per_label.get("micro", {}).get("f2")
    return row


def _siamese_columns(job: dict) -> dict:
    validation = job.get("validation") or {}
    if isinstance(validation.get("val_agreement"), dict):
        return agreement_figures(validation["val_agreement"], "val")
    # An older sweep: no validation figures in the manifest, only the run's own correlations (its
    # validation ones when computed, else its test record), named by their split.
    run_dir = workspace.run_path(job["siamese_run"])
    for split in ("val", "test"):
        folder = correlations.figures_folder(run_dir, split)
        agreement = store.read_json(folder / RunLayout.AGREEMENT) if folder is not None else {}
        if agreement:
            return agreement_figures(agreement, split)
    return {}


def sweep_table(sweep_id: str) -> pd.DataFrame:
    """The table of a sweep: one row per job; every figure's column names its split (val/test)."""

    m = load_manifest(sweep_id)
    rows = []
    for job in m["jobs"]:
        row = {"configuration": job["name"], "settings": job["description"], "state": job["state"]}
        if job.get("classifier_run") and not job.get("classifier_of"):
            row.update(_classifier_columns(job, test_columns=m.get("preset") != "siamese"))
        if job.get("siamese_run"):
            row.update(_siamese_columns(job))
        rows.append(row)
    table = pd.DataFrame(rows)
    if "labels" in table:  # a count, blank on Siamese rows
        table["labels"] = table["labels"].astype("Int64")
    return table


def _rank(figures) -> tuple[float, float]:
    """How a variant ranks (higher is better): its validation Siamese ρ, a tie going to the higher lower bound."""
    low = finite_number(figures.get("val Siamese ρ low"))
    return figures["val Siamese ρ"], -math.inf if low is None else low


def _best_job(jobs: list[Job]) -> Job | None:
    """The job whose validation figures rank best (`_rank`), or None when none has one."""
    scored = [(agreement_figures((job.validation or {}).get("val_agreement"), "val"), job) for job in jobs]
    scored = [(_rank(figures), job) for figures, job in scored if "val Siamese ρ" in figures]
    return max(scored, key=lambda s: s[0])[1] if scored else None


def best_variant(table: pd.DataFrame) -> pd.Series | None:
    """The row of `sweep_table` that ranks best on validation (`_rank`), or None; test columns are never read."""
    if "val Siamese ρ" not in table:
        return None
    rows = [row for _, row in table.iterrows() if finite_number(row["val Siamese ρ"]) is not None]
    return max(rows, key=_rank) if rows else None


def pick_line(table: pd.DataFrame) -> str:
    """One sentence naming the variant picked on validation, with its figures."""
    best = best_variant(table)
    if best is None:
        return "picked on validation: none (no Siamese run has a validation ρ)"
    extra = []
    if pd.notna(best.get("val Siamese ρ low")) and pd.notna(best.get("val Siamese ρ high")):
        extra.append(f"95% interval {best['val Siamese ρ low']:.3f} to {best['val Siamese ρ high']:.3f}")
    for key in ("val label-prior ρ", "val classifier ρ"):
        if pd.notna(best.get(key)):
            extra.append(f"{key.removeprefix('val ')} {best[key]:.3f}")
    return (
        f"picked on validation: {best['configuration']} ({best['settings']}): val Siamese ρ {best['val Siamese ρ']:.3f}"
        + (f" ({'; '.join(extra)})" if extra else "")
    )


# ------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="thesis", choices=sorted(PRESETS), help="which series of runs")
    parser.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    parser.add_argument(
        "--devices", default="cpu", help="comma-separated devices to run on in parallel, e.g. cpu or gpu:0,gpu:1"
    )
    parser.add_argument("--quick", action="store_true", help="small models and few epochs (minutes)")
    parser.add_argument("--no-siamese", action="store_true", help="classifiers only")
    parser.add_argument(
        "--only",
        metavar="JOB,JOB",
        help="run only these jobs of the preset and the classifier they use "
        f"(siamese: {', '.join(SIAMESE_STUDY)}; thesis: e.g. 'T3 run 1')",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set a training option on every run whose kind has it (repeatable), e.g. epochs=2",
    )
    parser.add_argument("--sweep-id", help="name of the sweep (default sweep-<preset>-<UTC time>)")
    parser.add_argument("--list", action="store_true", help="list the sweeps of this workspace and exit")
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
    if "val Siamese ρ" in df:
        print(pick_line(df))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def sweep_command(args) -> int:
    if args.list:
        print("\n".join(list_sweeps()) or "no sweeps yet")
        return 0
    if args.table:
        _print_table(sweep_table(args.table), args)
        return 0
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not devices:
        raise OLRError("--devices is empty; give cpu or GPU ids such as gpu:0,gpu:1.")
    only = [n.strip() for n in (args.only or "").split(",") if n.strip()]
    sweep_id = run_sweep(
        args.preset,
        args.dataset,
        devices,
        quick=args.quick,
        siamese=not args.no_siamese,
        sweep_id=args.sweep_id,
        only=only or None,
        overrides=options.parse_assignments(args.set),
    )
    print(f"sweep {sweep_id} finished")
    _print_table(sweep_table(sweep_id), args)
    return 0
