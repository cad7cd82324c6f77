"""Evaluate a finished run on its dataset's test split (CLI `python -m olr evaluate RUN`).

Classifier run: the best checkpoint predicts the validation and test tiles; a uniform
threshold and per-label thresholds are tuned on validation to maximise F-beta and applied,
together with the run's configured threshold, to the test tiles. Written atomically into
`<run>/evaluation/` (the folder is replaced as a whole, so readers never see a mix):

- `summary.json`   per threshold mode ("configured", "uniform", "per_label"): micro and macro
                   P/R/F1/F2/AP, binary accuracy beside the all-absent baseline, warnings;
                   plus label names, the probability saturation share and `diagnostics`
                   (each `{"code", "message"}`) that explain a failed model;
- `per_label.csv`  one row per label: label, codes, support (test positives), frequency, ap,
                   and for each mode m: threshold_m, tp_m, fp_m, fn_m, tn_m, precision_m,
                   recall_m, f1_m, f2_m;
- `thresholds.json` {"beta", "tuned_on", "configured", "uniform", "per_label": {label: t}};
- `test_predictions.npz` indices (rows of the dataset), y_true (n, L) uint8, probabilities
                   (n, L) float32, label_names; `metrics_at` recomputes any threshold from it.

Siamese run: its output is the label correlation matrices (`olr.analysis.correlations`); evaluating
it computes them and writes a `summary.json` holding the agreement and the last losses.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np

from olr import atomic
from olr.analysis import correlations, metrics
from olr.analysis.run_data import (
    as_run,
    check_results,
    predict_run,
    require_finished,
    run_dataset,
    run_labels,
    run_presence,
)
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training import options

MODES = ("configured", "uniform", "per_label")
#: Probabilities below / above these count as saturated (the Siamese targets become binary).
SATURATION_BOUNDS = (0.02, 0.98)
#: Share of saturated probabilities from which the diagnostic is raised.
SATURATION_ALERT = 0.9
#: Relative change of the epoch training loss under which training counts as flat.
FLAT_LOSS_TOLERANCE = 0.01


# ------------------------------------------------------------------ evaluation


def evaluate_run(run, beta: float = 2.0, batch_size: int = 256, check_finished: bool = True) -> dict:
    """Evaluate a run and write `<run>/evaluation/`; returns the summary dict.

    `check_finished=False` lets the training process evaluate its run before marking it finished.
    """
    run = as_run(run)
    if check_finished:
        require_finished(run)
    if run.config.get("kind") == "siamese":
        return _evaluate_siamese(run, batch_size)
    dataset = run_dataset(run)
    labels = run_labels(run)
    names = [lab.name for lab in labels]
    presence = run_presence(run, dataset)
    test_idx = dataset.split_indices("test")
    if len(test_idx) == 0:
        raise OLRError(f"The dataset {dataset.name} has no test tiles; prepare it again with a test split.")
    tune_split = "val" if len(dataset.split_indices("val")) else "train"
    tune_idx = dataset.split_indices(tune_split)

    # One prediction pass over both splits (one model load, one traced predict function).
    p_all = predict_run(run, dataset, np.concatenate([tune_idx, test_idx]), batch_size)
    if p_all.shape[1] != len(names):
        raise OLRError(
            f"The model of run {run.id} predicts {p_all.shape[1]} labels but its config.json lists {len(names)}; "
            "train the run again."
        )
    p_tune, p_test = p_all[: len(tune_idx)], p_all[len(tune_idx) :]
    y_tune = presence[tune_idx]
    y_test = presence[test_idx]

    configured = float(options.upgrade(run.config)["threshold"])
    uniform, _ = metrics.tune_uniform_threshold(y_tune, p_tune, beta, fallback=configured)
    per_label, _ = metrics.tune_per_label_thresholds(y_tune, p_tune, beta, fallback=uniform)
    thresholds = {"configured": configured, "uniform": uniform, "per_label": per_label}
    reports = {m: metrics.multilabel_metrics(y_test, p_test, thresholds[m], beta, names) for m in MODES}

    saturated = float(np.mean((p_test < SATURATION_BOUNDS[0]) | (p_test > SATURATION_BOUNDS[1])))
    summary = {
        "run": run.id,
        "kind": "classifier",
        "dataset": dataset.name,
        "split": "test",
        "tuned_on": tune_split,
        "n_tiles": len(test_idx),
        "n_tuning_tiles": len(tune_idx),
        "beta": float(beta),
        "labels": names,
        "created": time.time(),
        "thresholds": {"configured": configured, "uniform": uniform, "per_label": per_label.tolist()},
        "modes": {m: reports[m].summary() for m in MODES},
        # The headline numbers are those at the configured threshold (what training reported).
        "binary_accuracy": reports["configured"].accuracy,
        "baseline_accuracy": reports["configured"].baseline_accuracy,
        "warnings": reports["configured"].warnings,
        "probability_saturation": saturated,
    }
    summary["diagnostics"] = diagnostics(run, reports, saturated, tune_split)

    table = per_label_table(labels, reports)
    thresholds_json = {
        "beta": float(beta),
        "tuned_on": tune_split,
        "configured": configured,
        "uniform": uniform,
        "per_label": dict(zip(names, per_label.tolist())),
    }
    with atomic.staged_folder(RunLayout(run.path).evaluation, overwrite=True) as tmp:
        atomic.write_json(tmp / RunLayout.SUMMARY, metrics.json_ready(summary))
        atomic.write_text(tmp / RunLayout.PER_LABEL, table.to_csv(index=False))
        atomic.write_json(tmp / RunLayout.THRESHOLDS, thresholds_json)
        _write_npz(
            tmp / RunLayout.TEST_PREDICTIONS,
            indices=test_idx.astype(np.int64),
            y_true=y_test.astype(np.uint8),
            probabilities=p_test.astype(np.float32),
            label_names=np.array(names, dtype=str),
        )
    return metrics.json_ready(summary)


def per_label_table(labels: list[Label], reports: dict):
    """pandas DataFrame, one row per label, threshold-dependent columns suffixed by mode."""
    import pandas as pd

    first = reports[MODES[0]]
    df = pd.DataFrame(
        {
            "label": first.names,
            "codes": [" ".join(str(c) for c in lab.codes) for lab in labels],
            "support": first.support,
            "frequency": first.frequency,
            "ap": first.ap,
        }
    )
    for mode, r in reports.items():
        for col in ("threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2"):
            key = "thresholds" if col == "threshold" else col
            df[f"{col}_{mode}"] = getattr(r, key)
    return df


def diagnostics(run, reports: dict, saturated: float, tune_split: str) -> list[dict]:
    """Findings that explain a failed classifier, each {"code", "message"}."""
    out = []
    r = reports["configured"]
    never = [d["label"] for d in r.zero_tp_labels if d["label"] in r.never_predicted]
    if never:
        out.append(
            {
                "code": "labels_never_predicted",
                "labels": never,
                "message": f"{len(never)} of {len(r.names)} labels are never predicted present on the test tiles "
                f"at threshold {r.thresholds[0]:g}: {', '.join(never)}.",
            }
        )
    if not r.beats_baseline:
        tuned = reports["per_label"]
        out.append(
            {
                "code": "accuracy_not_above_baseline",
                "message": f"Binary accuracy {r.accuracy:.1%} does not beat the all-absent baseline "
                f"{r.baseline_accuracy:.1%}, so accuracy says nothing here; judge the model by F2 and AP "
                f"(macro F2 {_fmt(r.macro['f2'])}, {_fmt(tuned.macro['f2'])} with per-label thresholds).",
            }
        )
    if saturated >= SATURATION_ALERT:
        out.append(
            {
                "code": "probabilities_saturated",
                "share": saturated,
                "message": f"{saturated:.0%} of the test probabilities are below {SATURATION_BOUNDS[0]} or above "
                f"{SATURATION_BOUNDS[1]}: the classifier is saturated, so the Siamese targets p_i(a')·p_i(b') "
                "are nearly binary and carry little correlation signal.",
            }
        )
    flat = _flat_training_loss(run)
    if flat:
        out.append({"code": "training_loss_flat", "message": flat})
    if tune_split != "val":
        out.append(
            {
                "code": "no_validation_split",
                "message": "The dataset has no validation tiles, so thresholds were tuned on the training tiles "
                "(optimistic); prepare it with a validation split.",
            }
        )
    return out


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _flat_training_loss(run) -> str | None:
    """A sentence if the per-epoch training loss never moved from the first epoch's value."""
    rows = store.epoch_metrics(run, "train")
    if len(rows) < 2:
        return None
    losses = rows["loss"].astype(float).to_numpy()
    first = losses[0]
    change = float(np.max(np.abs(losses[1:] - first))) / max(abs(first), 1e-12)
    if change >= FLAT_LOSS_TOLERANCE:
        return None
    return (
        f"The training loss stayed within {FLAT_LOSS_TOLERANCE:.0%} of its first-epoch value ({first:.4g}) for "
        f"{len(losses)} epochs: the model stopped learning at once "
        "(try focal loss, class weights or a higher learning rate)."
    )


def _write_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(path, buf.getvalue())


def load_predictions(run) -> dict[str, np.ndarray]:
    """The arrays of `<run>/evaluation/test_predictions.npz` (OLRError if the run was not evaluated,
    or naming the file when it does not hold the arrays the module docstring lists)."""
    run = as_run(run)
    check_results(run)
    path = RunLayout(run.path).test_predictions
    if not path.exists():
        raise OLRError(
            f"The run {run.id} has no test predictions yet; evaluate it first (python -m olr evaluate {run.id})."
        )
    arrays = store.read_npz(path, run.id, _remedy(run))
    if not _predictions_ok(arrays):
        raise store.damaged_result(path, run.id, "does not hold test predictions of matching shapes", _remedy(run))
    return arrays


def _predictions_ok(arrays: dict) -> bool:
    """True when the stored predictions hold every array with the shapes and types the module docstring gives."""
    if any(k not in arrays for k in ("indices", "y_true", "probabilities", "label_names")):
        return False
    idx, y, prob, names = (arrays[k] for k in ("indices", "y_true", "probabilities", "label_names"))
    if idx.ndim != 1 or names.ndim != 1:  # len() of a 0-d array raises
        return False
    n, n_labels = len(idx), len(names)
    ok = idx.ndim == 1 and idx.dtype.kind in "iu" and (n == 0 or idx.min() >= 0)
    ok = ok and names.ndim == 1 and names.dtype.kind == "U" and n_labels > 0
    ok = ok and y.shape == (n, n_labels) and y.dtype.kind in "biu" and prob.shape == (n, n_labels)
    ok = ok and prob.dtype.kind == "f" and bool(np.all((prob >= 0) & (prob <= 1)))
    return ok


def _remedy(run) -> str:
    return f"evaluate the run again (python -m olr evaluate {run.id})"


def read_summary(run) -> dict | None:
    """`<run>/evaluation/summary.json`, or None if the run was not evaluated (OLRError naming the
    file when it lacks what the Evaluate page shows)."""
    run = as_run(run)
    check_results(run)
    path = RunLayout(run.path).summary
    summary = store.read_result_json(path, run.id, _remedy(run))
    if summary is None:
        return None
    problem = _siamese_summary_problem(summary) if run.kind == "siamese" else _summary_problem(summary)
    if problem:
        raise store.damaged_result(path, run.id, problem, _remedy(run))
    return summary


def _is_number(x, nullable: bool = False) -> bool:
    return (x is None and nullable) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _summary_problem(summary: dict) -> str | None:
    """Why a classifier's summary.json cannot be shown, or None."""
    labels = summary.get("labels")
    thresholds = summary.get("thresholds")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        return "has no list of label names"
    if not isinstance(thresholds, dict) or not all(_is_number(thresholds.get(k)) for k in ("configured", "uniform")):
        return "has no configured and uniform thresholds"
    per_label = thresholds.get("per_label")
    if not isinstance(per_label, list) or len(per_label) != len(labels) or not all(map(_is_number, per_label)):
        return "has no per-label threshold for each label"
    if not _is_number(summary.get("beta")) or not summary["beta"] > 0:
        return "has no positive beta"
    diagnostics = summary.get("diagnostics", [])
    if not isinstance(diagnostics, list) or not all(isinstance(d, dict) for d in diagnostics):
        return "has diagnostics that are not a list of findings"
    return None


def _siamese_summary_problem(summary: dict) -> str | None:
    if not all(_is_number(summary.get(k), nullable=True) for k in ("final_train_loss", "final_val_loss")):
        return "has final losses that are not numbers"
    if not isinstance(summary.get("agreement", {}), dict):
        return "has an agreement that is not an object"
    return None


def metrics_at(run, thresholds=0.5, beta: float = 2.0) -> metrics.MultilabelMetrics:
    """Test-split metrics at any threshold (scalar or (L,)) from the stored predictions, no model needed."""
    pred = load_predictions(run)
    names = [str(s) for s in pred["label_names"]]
    return metrics.multilabel_metrics(pred["y_true"], pred["probabilities"], thresholds, beta, names)


ERROR_KINDS = ("tp", "fp", "fn", "tn")


def error_tiles(
    run, label: int | str, threshold: float, kind: str, n: int | None = 8, predictions: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Example test tiles of one outcome for one label, from the stored predictions.

    kind: "tp", "fp", "fn" or "tn" at `threshold`. Returns (rows (m,) into the dataset,
    probabilities (m,)), m <= n, the most telling first: false positives and true positives
    by highest probability, false negatives and true negatives by lowest. `n=None` returns all.
    `predictions`: the run's `load_predictions` arrays when the caller already holds them (cached).
    """
    if kind not in ERROR_KINDS:
        raise OLRError(f"Unknown outcome {kind!r}; use one of {', '.join(ERROR_KINDS)}.")
    pred = load_predictions(run) if predictions is None else predictions
    names = [str(s) for s in pred["label_names"]]
    if isinstance(label, str):
        if label not in names:
            raise OLRError(f"The run has no label {label!r}; pick one of {', '.join(names)}.")
        label = names.index(label)
    y = pred["y_true"][:, int(label)].astype(bool)
    p = pred["probabilities"][:, int(label)].astype(np.float64)
    said = p >= float(threshold)
    mask = {"tp": y & said, "fp": ~y & said, "fn": y & ~said, "tn": ~y & ~said}[kind]
    pos = np.flatnonzero(mask)
    order = np.argsort(-p[pos] if kind in ("tp", "fp") else p[pos], kind="stable")[: None if n is None else int(n)]
    return pred["indices"][pos[order]], p[pos[order]]


# ------------------------------------------------------------------ Siamese


def _evaluate_siamese(run, batch_size: int) -> dict:
    agreement = correlations.compute_for_run(run, batch_size=batch_size, check_finished=False)
    last = {}
    for split in ("train", "val"):
        rows = store.epoch_metrics(run, split)
        if len(rows):
            last[split] = float(rows["loss"].iloc[-1])
    summary = {
        "run": run.id,
        "kind": "siamese",
        "created": time.time(),
        "final_train_loss": last.get("train"),
        "final_val_loss": last.get("val"),
        "agreement": agreement,
        "diagnostics": [],
    }
    with atomic.staged_folder(RunLayout(run.path).evaluation, overwrite=True) as tmp:
        atomic.write_json(tmp / RunLayout.SUMMARY, metrics.json_ready(summary))
    return metrics.json_ready(summary)


# ------------------------------------------------------------------ CLI: python -m olr evaluate


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (folder name under models/) or run folder")
    parser.add_argument("--beta", type=float, default=2.0, help="F-beta that threshold tuning maximises (default 2)")
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per prediction batch (default 256)")


def evaluate_command(args) -> int:
    if not args.beta > 0:
        raise OLRError(f"--beta must be positive, got {args.beta}; use e.g. --beta 2.")
    the_run = as_run(args.run)
    summary = evaluate_run(the_run, beta=args.beta, batch_size=args.batch_size)
    if summary["kind"] == "siamese":
        agreement = summary["agreement"]
        print(f"Siamese run {summary['run']}: final val loss {_fmt(summary['final_val_loss'])}")
        info = agreement["info"]
        print(f"agreement with the ground-truth phi on {info['n_tiles']} {info['split']} tiles:")
        print("\n".join(correlations.agreement_lines(agreement)))
        return 0
    print(
        f"Run {summary['run']} on {summary['dataset']}: {summary['n_tiles']} test tiles, "
        f"{len(summary['labels'])} labels; thresholds tuned on {summary['tuned_on']} for F{summary['beta']:g}."
    )
    columns = ("micro P", "micro R", "micro F1", "micro F2", "macro F2", "macro AP", "accuracy")
    print(f"{'mode':<11} {'threshold':>9} " + " ".join(f"{c:>8}" for c in columns))
    for mode in MODES:
        m = summary["modes"][mode]
        t = summary["thresholds"][mode]
        t_text = "per label" if isinstance(t, list) else f"{t:.3f}"
        mi, ma = m["micro"], m["macro"]
        print(
            f"{mode:<11} {t_text:>9} {_fmt(mi['precision']):>8} {_fmt(mi['recall']):>8} {_fmt(mi['f1']):>8} "
            f"{_fmt(mi['f2']):>8} {_fmt(ma['f2']):>8} {_fmt(ma['ap']):>8} {m['binary_accuracy']:>8.1%}"
        )
    print(f"all-absent baseline accuracy: {summary['baseline_accuracy']:.1%}")
    for w in summary["warnings"]:
        print(f"warning: {w}")
    for d in summary["diagnostics"]:
        print(f"diagnostic: {d['message']}")
    print(f"written: {RunLayout(the_run.path).evaluation}")
    return 0
