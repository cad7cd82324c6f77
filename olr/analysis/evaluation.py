"""Evaluate a finished run on its validation and test splits (CLI `python -m olr evaluate RUN`).

Classifier run: the best checkpoint predicts the validation and test tiles in one pass. Three
**threshold modes** decide presence, and every figure names its mode (`MODE_NAMES`):
"configured" (the run's configured threshold), "uniform-tuned" (one threshold maximising micro
F-beta) and "per-label-tuned" (one per label maximising its F-beta). Thresholds are tuned on the
**validation** split only (on the training split, flagged, when a dataset has none); figures of
the validation split at tuned thresholds are therefore fitted to it, and say so. The test split
is reported once per evaluation, labelled "test".

Each split's figures (`split_report`) hold, per mode, the metrics of `olr.analysis.metrics`
(micro, macro and sample-averaged F-scores, accuracy beside the all-absent baseline, Hamming
loss, subset accuracy, labels without true positive, starved labels) with 95 % spatial block
bootstrap intervals (`olr.analysis.intervals`, over the split's `block_id`s) for micro F2,
macro F2, sample F2 and accuracy, the threshold-free macro AP with its interval and macro
AUROC, per-mode diagnostics, and warnings when the split has too few blocks or tiles for an
interval to mean much. Written atomically into `<run>/evaluation/` (the folder is replaced as a
whole, so readers never see a mix):

- `summary.json`   the run-wide part (run, dataset, labels, beta, `tuned_on`, `thresholds`,
                   `threshold_modes` = `MODE_NAMES`, run-level diagnostics) with the **test**
                   split's report at the top level (`split`, `n_tiles`, `n_blocks`, `modes`:
                   {mode key: metrics + `mode`, `thresholds_from`, `intervals`}, `macro_ap_interval`,
                   `binary_accuracy`/`baseline_accuracy`/`warnings` at the configured threshold,
                   `interval_warnings`, `diagnostics`: the split's and the run's) and the validation
                   split's report under `validation` (same keys); `run_diagnostics` holds the run's
                   findings alone; `split_figures(summary, split)` reads either split;
- `per_label.csv`  test split, one row per label: label, codes, support (test positives),
                   frequency, ap, auroc, and for each mode key m: threshold_m, tp_m, fp_m, fn_m, tn_m,
                   precision_m, recall_m, f1_m, f2_m;
- `thresholds.json` {"beta", "tuned_on", "modes": MODE_NAMES, "configured", "uniform", "per_label": {label: t}};
- `test_predictions.npz` indices (rows of the dataset), y_true (n, L) uint8, probabilities
                   (n, L) float32, label_names; and the validation split's as val_indices,
                   val_y_true, val_probabilities; `metrics_at` recomputes any threshold from it.

Siamese run: its output is the label correlation matrices (`olr.analysis.correlations`); evaluating
it computes them and writes a `summary.json` holding the agreement and the last losses.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr import atomic
from olr.analysis import correlations, intervals, metrics
from olr.analysis.run_data import (
    as_run,
    check_results,
    predict_run,
    require_finished,
    run_dataset,
    run_labels,
    run_presence,
    tile_blocks,
)
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training import options

#: threshold modes, as keyed in summary.json and suffixed in per_label.csv
MODES = ("configured", "uniform", "per_label")
#: what each mode is called wherever a figure is reported
MODE_NAMES = {"configured": "configured", "uniform": "uniform-tuned", "per_label": "per-label-tuned"}
#: the splits an evaluation reports; `--split` picks the one the command prints
EVALUATION_SPLITS = ("val", "test")
SPLIT_NAMES = {"val": "validation", "test": "test", "train": "training"}
#: figures that depend on the thresholds and get an interval per mode (F2: the Planet report's F-score)
INTERVAL_FIGURES = ("micro_f2", "macro_f2", "samples_f2", "accuracy")
#: fewer evaluation tiles than this and an interval says little (the block count is `thin_data.MIN_SPLIT_BLOCKS`)
MIN_TILES = 100
#: Probabilities below / above these count as saturated (the Siamese targets become binary).
SATURATION_BOUNDS = (0.02, 0.98)
#: Share of saturated probabilities from which the diagnostic is raised.
SATURATION_ALERT = 0.9
#: Relative change of the epoch training loss under which training counts as flat.
FLAT_LOSS_TOLERANCE = 0.01


# ------------------------------------------------------------------ evaluation


@dataclass
class SplitPredictions:
    """One split's tiles: dataset rows (n,), targets (n, L) uint8, probabilities (n, L) float32,
    spatial block of each tile (n,) or None when the dataset records no blocks."""

    split: str
    indices: np.ndarray
    y_true: np.ndarray
    probabilities: np.ndarray
    blocks: np.ndarray | None


def evaluate_run(
    run,
    beta: float = 2.0,
    batch_size: int = 256,
    check_finished: bool = True,
    n_resamples: int = intervals.N_RESAMPLES,
) -> dict:
    """Evaluate a run on its validation and test splits and write `<run>/evaluation/`; returns
    the summary dict (see the module docstring).

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
    tuning, test = predict_splits(run, dataset, batch_size)
    thresholds = tune_thresholds(tuning, float(options.upgrade(run.config)["threshold"]), beta)
    test_report, test_metrics = split_report(test, thresholds, tuning.split, beta, names, n_resamples)
    summary = {
        "run": run.id,
        "kind": "classifier",
        "dataset": dataset.name,
        "tuned_on": tuning.split,
        "n_tuning_tiles": len(tuning.indices),
        "beta": float(beta),
        "labels": names,
        "created": time.time(),
        "threshold_modes": MODE_NAMES,
        "thresholds": {m: metrics.json_ready(t) for m, t in thresholds.items()},
        **test_report,
    }
    summary["run_diagnostics"] = run_findings(run, tuning.split)
    summary["diagnostics"] = test_report["diagnostics"] + summary["run_diagnostics"]
    if tuning.split == "val":
        summary["validation"] = split_report(tuning, thresholds, tuning.split, beta, names, n_resamples)[0]
    summary = metrics.json_ready(summary)
    write_evaluation(run, summary, per_label_table(labels, test_metrics), thresholds, tuning, test)
    return summary


def predict_splits(run, dataset, batch_size: int) -> tuple[SplitPredictions, SplitPredictions]:
    """(tuning split, test split) predictions of the run's best checkpoint, in one pass (one model
    load, one traced predict function). The tuning split is validation, else training."""
    test_idx = dataset.split_indices("test")
    if len(test_idx) == 0:
        raise OLRError(f"The dataset {dataset.name} has no test tiles; prepare it again with a test split.")
    tune_split = "val" if len(dataset.split_indices("val")) else "train"
    tune_idx = dataset.split_indices(tune_split)
    p_all = predict_run(run, dataset, np.concatenate([tune_idx, test_idx]), batch_size)
    n_labels = len(run.config["labels"])
    if p_all.shape[1] != n_labels:
        raise OLRError(
            f"The model of run {run.id} predicts {p_all.shape[1]} labels but its config.json lists {n_labels}; "
            "train the run again."
        )
    presence = run_presence(run, dataset)
    parts = ((tune_split, tune_idx, p_all[: len(tune_idx)]), ("test", test_idx, p_all[len(tune_idx) :]))
    return tuple(
        SplitPredictions(split, idx, presence[idx], prob, tile_blocks(dataset, idx)) for split, idx, prob in parts
    )


def tune_thresholds(tuning: SplitPredictions, configured: float, beta: float) -> dict:
    """{mode key: threshold}: the configured one, and the uniform and per-label (L,) ones tuned on
    `tuning` (never on the split being reported, unless that is the tuning split and says so)."""
    y, p = tuning.y_true, tuning.probabilities
    uniform, _ = metrics.tune_uniform_threshold(y, p, beta, fallback=configured)
    per_label, _ = metrics.tune_per_label_thresholds(y, p, beta, fallback=uniform)
    return {"configured": configured, "uniform": uniform, "per_label": per_label}


def split_report(
    data: SplitPredictions, thresholds: dict, tuned_on: str, beta: float, names: list[str], n_resamples: int
) -> tuple[dict, dict]:
    """(JSON-ready figures of one split, {mode key: MultilabelMetrics}); see the module docstring."""
    y, p = data.y_true, data.probabilities
    found = {m: metrics.multilabel_metrics(y, p, thresholds[m], beta, names) for m in MODES}
    bands = figure_intervals(data, thresholds, n_resamples)
    sources = {"configured": "run config"} | {m: tuned_on for m in MODES[1:]}
    modes = {
        m: {
            **found[m].summary(),
            "mode": MODE_NAMES[m],
            "thresholds_from": sources[m],
            "intervals": bands.get(m, {}),
        }
        for m in MODES
    }
    saturated = float(np.mean((p < SATURATION_BOUNDS[0]) | (p > SATURATION_BOUNDS[1]))) if p.size else 0.0
    report = {
        "split": data.split,
        "n_tiles": len(data.indices),
        "n_blocks": None if data.blocks is None else len(np.unique(data.blocks)),
        "tuned_here": data.split == tuned_on,
        "modes": modes,
        "macro_ap_interval": bands.get("macro_ap"),
        # At the configured threshold: what training reported.
        "binary_accuracy": found["configured"].accuracy,
        "baseline_accuracy": found["configured"].baseline_accuracy,
        "warnings": found["configured"].warnings,
        "interval_warnings": interval_warnings(data),
        "probability_saturation": saturated,
        "diagnostics": mode_findings(found, data.split) + _saturation_finding(saturated, data.split),
    }
    return metrics.json_ready(report), found


def figure_intervals(data: SplitPredictions, thresholds: dict, n_resamples: int) -> dict:
    """{mode key: {figure: Interval JSON}} for `INTERVAL_FIGURES`, and "macro_ap": Interval JSON;
    one block bootstrap over the split's blocks, so every figure sees the same resamples.
    Empty when the dataset records no blocks."""
    if data.blocks is None or len(data.indices) == 0 or n_resamples < 1:
        return {}
    n = len(data.indices)
    # Decisions and score order are fixed; a resample only reweights rows (block rows repeat).
    decided = [
        metrics.WeightedDecisions(data.y_true, metrics.binarize(data.probabilities, thresholds[m])) for m in MODES
    ]
    ranked = metrics.RankedScores(data.y_true, data.probabilities)

    def statistic(rows):
        w = np.bincount(rows, minlength=n)
        found = [d.figures(w) for d in decided]
        out = [f[key] for f in found for key in ("micro_fbeta", "macro_fbeta", "samples_fbeta", "accuracy")]
        return np.array([*out, metrics.mean_defined(ranked.average_precision(w))])

    band = intervals.block_bootstrap(statistic, data.blocks, n_resamples=n_resamples)
    k = len(INTERVAL_FIGURES)
    out = {
        m: {fig: band.item(i * k + j).to_json() for j, fig in enumerate(INTERVAL_FIGURES)} for i, m in enumerate(MODES)
    }
    out["macro_ap"] = band.item(len(MODES) * k).to_json()
    return out


def interval_warnings(data: SplitPredictions) -> list[str]:
    """Sentences when the split has too few spatial blocks or tiles for its intervals to mean much."""
    what = f"the {SPLIT_NAMES[data.split]} split"
    if data.blocks is None:
        return [f"The dataset records no spatial blocks, so {what} has no intervals; prepare it again."]
    out = [intervals.few_blocks_warning(len(np.unique(data.blocks)), what)]
    if len(data.indices) < MIN_TILES:
        n = len(data.indices)
        out.append(
            f"The {SPLIT_NAMES[data.split]} split has only {n} tile{'s' if n != 1 else ''} (fewer than {MIN_TILES}): "
            "single tiles move its figures by whole points; read them with their intervals."
        )
    return [w for w in out if w]


def mode_findings(found: dict, split: str) -> list[dict]:
    """Per threshold mode: accuracy not above the all-absent baseline, labels without a true
    positive (starved ones named), labels never predicted; each {"code", "mode", "message", ...}."""
    out = []
    where = f"on the {SPLIT_NAMES[split]} tiles"
    for key, r in found.items():
        at = f"At the {MODE_NAMES[key]} thresholds"
        if r.n_tiles and not r.beats_baseline:
            out.append(
                {
                    "code": "accuracy_not_above_baseline",
                    "mode": key,
                    "message": f"{at}, binary accuracy {r.accuracy:.1%} {where} does not beat the all-absent "
                    f"baseline {r.baseline_accuracy:.1%}: accuracy says nothing here; judge the model by F2 and AP "
                    f"(micro F2 {_fmt(r.micro['f2'])}, macro F2 {_fmt(r.macro['f2'])}).",
                }
            )
        never = [d["label"] for d in r.zero_tp_labels if d["label"] in r.never_predicted]
        if never:
            out.append(
                {
                    "code": "labels_never_predicted",
                    "mode": key,
                    "labels": never,
                    "message": f"{at}, {len(never)} of {len(r.names)} labels are never predicted present {where}: "
                    f"{', '.join(never)}.",
                }
            )
        if r.zero_tp_labels:
            listed = ", ".join(f"{d['label']} ({d['support']} positives)" for d in r.zero_tp_labels)
            out.append(
                {
                    "code": "labels_without_true_positive",
                    "mode": key,
                    "labels": [d["label"] for d in r.zero_tp_labels],
                    "message": f"{at}, {len(r.zero_tp_labels)} labels with positives have no true positive "
                    f"{where}: {listed}.",
                }
            )
        if r.starved_labels:
            out.append(
                {
                    "code": "starved_labels",
                    "mode": key,
                    "labels": r.starved_labels,
                    "message": f"{at}, {len(r.starved_labels)} labels with at least {metrics.STARVED_MIN_SUPPORT} "
                    f"positives {where} are never found (starved): {', '.join(r.starved_labels)}.",
                }
            )
    return out


def _saturation_finding(saturated: float, split: str) -> list[dict]:
    if saturated < SATURATION_ALERT:
        return []
    return [
        {
            "code": "probabilities_saturated",
            "share": saturated,
            "message": f"{saturated:.0%} of the {SPLIT_NAMES[split]} probabilities are below {SATURATION_BOUNDS[0]} "
            f"or above {SATURATION_BOUNDS[1]}: the classifier is saturated, so the Siamese targets p_i(a')·p_i(b') "
            "are nearly binary and carry little correlation signal.",
        }
    ]


def run_findings(run, tune_split: str) -> list[dict]:
    """Findings about the run rather than a split: a flat training loss, no validation split."""
    out = []
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


def per_label_table(labels: list[Label], reports: dict):
    """pandas DataFrame, one row per label, threshold-dependent columns suffixed by mode key."""
    import pandas as pd

    first = reports[MODES[0]]
    df = pd.DataFrame(
        {
            "label": first.names,
            "codes": [" ".join(str(c) for c in lab.codes) for lab in labels],
            "support": first.support,
            "frequency": first.frequency,
            "ap": first.ap,
            "auroc": first.auroc,
        }
    )
    for mode, r in reports.items():
        for col in ("threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2"):
            key = "thresholds" if col == "threshold" else col
            df[f"{col}_{mode}"] = getattr(r, key)
    return df


def write_evaluation(run, summary: dict, table, thresholds: dict, tuning: SplitPredictions, test: SplitPredictions):
    """Replace `<run>/evaluation/` as a whole with the files the module docstring lists."""
    names = summary["labels"]
    thresholds_json = {
        "beta": summary["beta"],
        "tuned_on": tuning.split,
        "modes": MODE_NAMES,
        "configured": thresholds["configured"],
        "uniform": thresholds["uniform"],
        "per_label": dict(zip(names, np.asarray(thresholds["per_label"]).tolist())),
    }
    arrays = {"indices": test.indices, "y_true": test.y_true, "probabilities": test.probabilities}
    if tuning.split == "val":
        arrays |= {
            "val_indices": tuning.indices,
            "val_y_true": tuning.y_true,
            "val_probabilities": tuning.probabilities,
        }
    with atomic.staged_folder(RunLayout(run.path).evaluation, overwrite=True) as tmp:
        atomic.write_json(tmp / RunLayout.SUMMARY, summary)
        atomic.write_text(tmp / RunLayout.PER_LABEL, table.to_csv(index=False))
        atomic.write_json(tmp / RunLayout.THRESHOLDS, thresholds_json)
        _write_npz(
            tmp / RunLayout.TEST_PREDICTIONS,
            label_names=np.array(names, dtype=str),
            **{
                k: v.astype(np.int64 if "indices" in k else np.uint8 if "y_true" in k else np.float32)
                for k, v in arrays.items()
            },
        )


def split_figures(summary: dict, split: str) -> dict | None:
    """One split's report from a classifier's summary.json ("test": the top level, "val": its
    `validation` part), or None when the evaluation has none for that split."""
    if split not in EVALUATION_SPLITS:
        raise OLRError(f"Unknown evaluation split {split!r}; use one of {', '.join(EVALUATION_SPLITS)}.")
    if split == "test":
        return summary
    return summary.get("validation")


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


def split_predictions(predictions: dict, split: str = "test") -> dict[str, np.ndarray]:
    """One split's stored predictions as {"indices", "y_true", "probabilities", "label_names"}
    (`predictions`: `load_predictions`'s arrays); OLRError when the evaluation holds none for it."""
    if split == "test":
        return predictions
    if split not in EVALUATION_SPLITS or f"{split}_indices" not in predictions:
        raise OLRError(
            f"The stored evaluation holds no {SPLIT_NAMES.get(split, split)} predictions; "
            "evaluate the run again (python -m olr evaluate RUN)."
        )
    keys = ("indices", "y_true", "probabilities")
    return {k: predictions[f"{split}_{k}"] for k in keys} | {"label_names": predictions["label_names"]}


def _predictions_ok(arrays: dict) -> bool:
    """True when the stored predictions hold every array with the shapes and types the module docstring gives."""
    if any(k not in arrays for k in ("indices", "y_true", "probabilities", "label_names")):
        return False
    splits = [arrays] + ([split_predictions(arrays, "val")] if "val_indices" in arrays else [])
    return all(_split_arrays_ok(part) for part in splits)


def _split_arrays_ok(arrays: dict) -> bool:
    keys = ("indices", "y_true", "probabilities", "label_names")
    if any(k not in arrays for k in keys):
        return False
    idx, y, prob, names = (arrays[k] for k in keys)
    if idx.ndim != 1 or names.ndim != 1:  # len() of a 0-d array raises
        return False
    n, n_labels = len(idx), len(names)
    ok = idx.dtype.kind in "iu" and (n == 0 or idx.min() >= 0)
    ok = ok and names.dtype.kind == "U" and n_labels > 0
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


def metrics_at(run, thresholds=0.5, beta: float = 2.0, split: str = "test") -> metrics.MultilabelMetrics:
    """Metrics of one evaluated split ("test" or "val") at any threshold (scalar or (L,)) from the
    stored predictions, no model needed."""
    pred = split_predictions(load_predictions(run), split)
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
    parser.add_argument(
        "--split",
        choices=EVALUATION_SPLITS,
        default="val",
        help="split whose figures are printed (default val: the figures tuning decisions read; test is "
        "reported once, labelled test); both are written",
    )
    parser.add_argument("--beta", type=float, default=2.0, help="F-beta that threshold tuning maximises (default 2)")
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per prediction batch (default 256)")
    parser.add_argument(
        "--resamples",
        type=int,
        default=intervals.N_RESAMPLES,
        help=f"block-bootstrap resamples per interval (default {intervals.N_RESAMPLES}; 0: no intervals)",
    )


def evaluate_command(args) -> int:
    if not args.beta > 0:
        raise OLRError(f"--beta must be positive, got {args.beta}; use e.g. --beta 2.")
    if args.resamples < 0:
        raise OLRError(f"--resamples must be 0 or more, got {args.resamples}; use e.g. --resamples 1000.")
    the_run = as_run(args.run)
    summary = evaluate_run(the_run, beta=args.beta, batch_size=args.batch_size, n_resamples=args.resamples)
    if summary["kind"] == "siamese":
        agreement = summary["agreement"]
        print(f"Siamese run {summary['run']}: final val loss {_fmt(summary['final_val_loss'])}")
        info = agreement["info"]
        print(f"agreement with the ground-truth phi on {info['n_tiles']} {info['split']} tiles:")
        print("\n".join(correlations.agreement_lines(agreement)))
        return 0
    split = args.split if split_figures(summary, args.split) is not None else "test"
    if split != args.split:
        print(
            f"The dataset has no validation split; the test figures follow (thresholds tuned on {summary['tuned_on']})."
        )
    print("\n".join(report_lines(summary, split)))
    if split == "val":
        print(f"test figures (report them once): python -m olr evaluate {summary['run']} --split test")
    print(f"written: {RunLayout(the_run.path).evaluation}")
    return 0


def _with_interval(x, band: dict | None, pct: bool = False) -> str:
    """ "0.812 [0.701, 0.893]": a figure with its interval (or the figure alone)."""
    fmt = (lambda v: "n/a" if v is None else f"{v:.1%}") if pct else _fmt
    if not band or band.get("low") is None:
        return fmt(x)
    return f"{fmt(x)} [{fmt(band['low'])}, {fmt(band['high'])}]"


def report_lines(summary: dict, split: str) -> list[str]:
    """The headline figures of one evaluated split, one line per threshold mode, with intervals,
    mode and split named (the `evaluate` command's output; reports can reuse it)."""
    report = split_figures(summary, split)
    name = SPLIT_NAMES[split]
    blocks = report.get("n_blocks")
    lines = [
        f"Run {summary['run']} on {summary['dataset']}, {name} split ({split}): {report['n_tiles']} tiles"
        + (f" in {blocks} spatial blocks" if blocks is not None else "")
        + f", {len(summary['labels'])} labels; thresholds tuned on {SPLIT_NAMES[summary['tuned_on']]} "
        f"for F{summary['beta']:g}."
    ]
    if report.get("tuned_here"):
        lines.append(f"note: the tuned thresholds were fitted to these {name} tiles, so their figures are optimistic.")
    level = next((b["level"] for m in report["modes"].values() for b in m["intervals"].values()), None)
    if level is not None:
        lines.append(f"[{level:.0%} interval: spatial block bootstrap over the {name} split's blocks]")
    columns = ("micro F2", "macro F2", "sample F2", "accuracy")
    lines.append(f"{'threshold mode':<16} {'threshold':>9}  " + "  ".join(f"{c:<22}" for c in columns))
    for key in MODES:
        m = report["modes"][key]
        t = summary["thresholds"][key]
        t_text = "per label" if isinstance(t, list) else f"{t:.3f}"
        band = m["intervals"]
        cells = (
            _with_interval(m["micro"]["f2"], band.get("micro_f2")),
            _with_interval(m["macro"]["f2"], band.get("macro_f2")),
            _with_interval(m["samples"]["f2"], band.get("samples_f2")),
            _with_interval(m["binary_accuracy"], band.get("accuracy"), pct=True),
        )
        lines.append(f"{MODE_NAMES[key]:<16} {t_text:>9}  " + "  ".join(f"{c:<22}" for c in cells))
    threshold_free = report["modes"]["configured"]
    lines.append(
        f"threshold-free: macro AP {_with_interval(threshold_free['macro']['ap'], report.get('macro_ap_interval'))}, "
        f"macro AUROC {_fmt(threshold_free['macro']['auroc'])}; "
        f"all-absent baseline accuracy {report['baseline_accuracy']:.1%}"
    )
    lines += [f"warning: {w}" for w in report.get("interval_warnings", [])]
    lines += [f"warning: {w}" for w in report["warnings"]]
    run_level = [] if split == "test" else summary.get("run_diagnostics", [])
    lines += [f"diagnostic: {d['message']}" for d in report["diagnostics"] + run_level]
    return lines
