"""Multi-label classification metrics and decision-threshold search (numpy, vectorised).

Inputs are `y_true` (n, L) binary and `probabilities` (n, L) in [0, 1]; a label is predicted
present when its probability is >= its threshold (a scalar, or one per label).

Conventions for empty denominators (the same everywhere, including the averages):

- precision = TP / (TP + FP) is **0** for a label that is never predicted; such labels are
  listed in `never_predicted` (so a 0 reads as "never said yes", not as "always wrong");
- recall, F-beta and average precision are **NaN** for a label with no positives in y_true
  (there is nothing to find); such labels are listed in `no_positive_labels`;
- macro averages are the mean over the labels that have positives (support > 0), for every
  metric, so the averages of one report describe the same set of labels;
- micro averages pool the counts of all labels (precision 0 when nothing is predicted at all).

Average precision is the step-wise sum over distinct score thresholds (highest first)
AP = sum_k (R_k - R_(k-1)) P_k, tied scores forming one step (the scikit-learn definition).

Binary accuracy (share of correct label decisions) is always reported beside the
**all-absent baseline**: the accuracy of a model that predicts every label absent, i.e. the
share of zeros in y_true. On sparse land-cover labels that baseline is typically above 90 %,
which is how a collapsed model looked like a success in the thesis; the report warns when
accuracy does not beat it and lists labels that have positives but no true positive.

Threshold tuning maximises F-beta (beta = 2 by default, recall weighted as in the Planet
report) on validation data, either one uniform threshold (micro F-beta) or one per label.
Each search sorts the probabilities once and evaluates every distinct cut point in
O(n log n); thresholds are restricted to `THRESHOLD_RANGE` and placed midway between the
chosen cut point and the next lower one, so new data near the cut is not decided by a hair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Thresholds the search may return; outside this range a "probability" is a guess.
THRESHOLD_RANGE = (0.01, 0.99)


def _as_arrays(y_true, probabilities) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and probabilities {p.shape} must have the same (n, L) shape")
    return y.astype(bool), p


def binarize(probabilities, thresholds=0.5) -> np.ndarray:
    """(n, L) bool: probability >= threshold (scalar or (L,)); compared in float64."""
    p = np.asarray(probabilities, dtype=np.float64)
    return p >= np.asarray(thresholds, dtype=np.float64)


def confusion_counts(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-label (L,) int64 TP, FP, FN, TN of binary (n, L) truth and predictions."""
    y = np.asarray(y_true).astype(bool)
    q = np.asarray(y_pred).astype(bool)
    n = y.shape[0]
    tp = np.count_nonzero(y & q, axis=0).astype(np.int64)
    pos = np.count_nonzero(y, axis=0).astype(np.int64)
    pred = np.count_nonzero(q, axis=0).astype(np.int64)
    fp = pred - tp
    fn = pos - tp
    tn = n - tp - fp - fn
    return tp, fp, fn, tn


def precision_from_counts(tp, fp) -> np.ndarray:
    """TP / (TP + FP); 0 where nothing was predicted."""
    tp = np.asarray(tp, dtype=np.float64)
    pred = tp + np.asarray(fp, dtype=np.float64)
    return np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)


def recall_from_counts(tp, fn) -> np.ndarray:
    """TP / (TP + FN); NaN where there are no positives."""
    tp = np.asarray(tp, dtype=np.float64)
    pos = tp + np.asarray(fn, dtype=np.float64)
    return np.divide(tp, pos, out=np.full_like(tp, np.nan), where=pos > 0)


def fbeta_from_counts(tp, fp, fn, beta: float = 1.0) -> np.ndarray:
    """(1 + b²) TP / ((1 + b²) TP + b² FN + FP); NaN where there are no positives."""
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = np.asarray(fn, dtype=np.float64)
    b2 = float(beta) ** 2
    num = (1 + b2) * tp
    den = num + b2 * fn + fp
    return np.divide(num, den, out=np.full_like(tp, np.nan), where=(tp + fn) > 0)


def average_precision(y_true, probabilities) -> np.ndarray:
    """(L,) average precision per label (step-wise, ties as one step); NaN without positives."""
    y, p = _as_arrays(y_true, probabilities)
    n, n_labels = y.shape
    if n == 0:
        return np.full(n_labels, np.nan)
    order = np.argsort(-p, axis=0, kind="stable")
    ps = np.take_along_axis(p, order, axis=0)
    ys = np.take_along_axis(y, order, axis=0)
    precision = np.cumsum(ys, axis=0) / np.arange(1, n + 1)[:, None]
    # Tied scores are one threshold: every element takes the precision at the end of its tie group.
    group_end = np.vstack([ps[1:] != ps[:-1], np.ones((1, n_labels), dtype=bool)])
    end_index = np.where(group_end, np.arange(n)[:, None], n)
    next_end = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
    precision_at_step = np.take_along_axis(precision, next_end, axis=0)
    n_pos = ys.sum(axis=0)
    hits = (ys * precision_at_step).sum(axis=0)
    return np.divide(hits, n_pos, out=np.full(n_labels, np.nan), where=n_pos > 0)


def json_ready(x):
    """`x` with numpy scalars/arrays made plain and NaN made None (JSON null), recursively."""
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


@dataclass
class MultilabelMetrics:
    """Metrics of one set of (n, L) predictions at one threshold per label. Arrays are (L,)."""

    names: list[str]
    beta: float
    n_tiles: int
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    support: np.ndarray  # positives in y_true
    frequency: np.ndarray  # support / n_tiles
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    fbeta: np.ndarray  # at `beta`
    ap: np.ndarray
    micro: dict
    macro: dict
    accuracy: float  # share of correct (tile, label) decisions
    baseline_accuracy: float  # the same for "every label absent" = share of zeros in y_true
    no_positive_labels: list[str] = field(default_factory=list)
    never_predicted: list[str] = field(default_factory=list)
    zero_tp_labels: list[dict] = field(default_factory=list)  # [{"label", "support"}], support > 0
    warnings: list[str] = field(default_factory=list)

    @property
    def beats_baseline(self) -> bool:
        return self.accuracy > self.baseline_accuracy + 1e-12

    def table(self):
        """pandas DataFrame, one row per label, columns as in `per_label.csv`."""
        import pandas as pd

        cols = {
            "label": self.names,
            "support": self.support,
            "frequency": self.frequency,
            "threshold": self.thresholds,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "f2": self.f2,
        }
        if self.beta not in (1.0, 2.0):
            cols[f"f{self.beta:g}"] = self.fbeta
        cols["ap"] = self.ap
        return pd.DataFrame(cols)

    def summary(self) -> dict:
        """JSON-ready dict (NaN -> null) of the averages, accuracy, baseline and warnings."""
        return json_ready(
            {
                "beta": self.beta,
                "n_tiles": self.n_tiles,
                "micro": self.micro,
                "macro": self.macro,
                "binary_accuracy": self.accuracy,
                "baseline_accuracy": self.baseline_accuracy,
                "beats_baseline": self.beats_baseline,
                "no_positive_labels": self.no_positive_labels,
                "never_predicted": self.never_predicted,
                "zero_tp_labels": self.zero_tp_labels,
                "warnings": self.warnings,
            }
        )


def multilabel_metrics(y_true, probabilities, thresholds=0.5, beta: float = 2.0, names=None) -> MultilabelMetrics:
    """All per-label and averaged metrics of `probabilities` (n, L) against `y_true` (n, L).

    `thresholds` is a scalar or (L,) array; `beta` is the F-beta reported beside F1 and F2.
    """
    y, p = _as_arrays(y_true, probabilities)
    n, n_labels = y.shape
    names = list(names) if names is not None else [f"label {i}" for i in range(n_labels)]
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_labels,)).copy()
    tp, fp, fn, tn = confusion_counts(y, binarize(p, thr))
    support = tp + fn
    ap = average_precision(y, p)
    per = {
        "precision": precision_from_counts(tp, fp),
        "recall": recall_from_counts(tp, fn),
        "f1": fbeta_from_counts(tp, fp, fn, 1.0),
        "f2": fbeta_from_counts(tp, fp, fn, 2.0),
        "fbeta": fbeta_from_counts(tp, fp, fn, beta),
        "ap": ap,
    }
    has_pos = support > 0
    macro = {k: (float(np.mean(v[has_pos])) if has_pos.any() else math.nan) for k, v in per.items()}
    TP, FP, FN, TN = (int(a.sum()) for a in (tp, fp, fn, tn))
    micro = {
        "precision": float(precision_from_counts(TP, FP)),
        "recall": float(recall_from_counts(TP, FN)),
        "f1": float(fbeta_from_counts(TP, FP, FN, 1.0)),
        "f2": float(fbeta_from_counts(TP, FP, FN, 2.0)),
        "fbeta": float(fbeta_from_counts(TP, FP, FN, beta)),
        "ap": float(average_precision(y.reshape(-1), p.reshape(-1))[0]) if y.size else math.nan,
        "tp": TP,
        "fp": FP,
        "fn": FN,
        "tn": TN,
    }
    cells = max(n * n_labels, 1)
    accuracy = (TP + TN) / cells
    baseline = (n * n_labels - int(support.sum())) / cells

    no_pos = [names[i] for i in np.flatnonzero(~has_pos)]
    never = [names[i] for i in np.flatnonzero(tp + fp == 0)]
    zero_tp = [{"label": names[i], "support": int(support[i])} for i in np.flatnonzero(has_pos & (tp == 0))]
    warnings = []
    if zero_tp:
        listed = ", ".join(f"{d['label']} ({d['support']} positives)" for d in zero_tp)
        warnings.append(
            f"{len(zero_tp)} of {int(has_pos.sum())} labels with positives have no true positive: {listed}."
        )
    if n * n_labels and accuracy <= baseline + 1e-12:
        warnings.append(
            f"Binary accuracy {accuracy:.1%} does not beat the all-absent baseline {baseline:.1%} "
            "(a model that predicts every label absent scores that much)."
        )
    if no_pos:
        warnings.append(f"No positives for {', '.join(no_pos)}; these labels are left out of the macro averages.")
    return MultilabelMetrics(
        names=names,
        beta=float(beta),
        n_tiles=int(n),
        thresholds=thr,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        support=support,
        frequency=support / max(n, 1),
        micro=micro,
        macro=macro,
        accuracy=float(accuracy),
        baseline_accuracy=float(baseline),
        no_positive_labels=no_pos,
        never_predicted=never,
        zero_tp_labels=zero_tp,
        warnings=warnings,
        **per,
    )


def fbeta_curve(y_true, scores, beta: float = 2.0, threshold_range=THRESHOLD_RANGE):
    """F-beta at every distinct cut point of one score vector, in O(n log n).

    `y_true` (n,) binary, `scores` (n,). Returns (candidates, fbeta): the candidate thresholds
    in ascending order (every distinct score inside the range plus the range ends; predicting
    `score >= t` changes only at these) and F-beta (NaN if there are no positives) at each.
    """
    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    lo, hi = float(threshold_range[0]), float(threshold_range[1])
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    pos_below = np.concatenate([[0], np.cumsum(y[order])])  # positives among the k lowest scores
    inside = s_sorted[(s_sorted >= lo) & (s_sorted <= hi)]
    candidates = np.unique(np.concatenate([inside, [lo, hi]]))
    below = np.searchsorted(s_sorted, candidates, side="left")  # scores < t are predicted absent
    n_pos = int(pos_below[-1])
    tp = n_pos - pos_below[below]
    fp = (len(s) - below) - tp
    return candidates, fbeta_from_counts(tp, fp, n_pos - tp, beta)


def _best_threshold(y_true, scores, beta, threshold_range, fallback) -> tuple[float, float]:
    candidates, f = fbeta_curve(y_true, scores, beta, threshold_range)
    if np.all(np.isnan(f)) or np.nanmax(f) <= 0:
        return float(fallback), (math.nan if np.all(np.isnan(f)) else 0.0)
    # Ties go to the highest threshold (the fewest positive calls for the same score).
    k = len(f) - 1 - int(np.nanargmax(f[::-1]))
    t = float(candidates[k])
    if k > 0:
        # No score lies strictly between two neighbouring candidates, so the midpoint makes the
        # same decisions on this data with a margin on both sides.
        mid = 0.5 * (candidates[k - 1] + candidates[k])
        if mid > candidates[k - 1]:
            t = float(mid)
    return t, float(f[k])


def tune_uniform_threshold(
    y_true, probabilities, beta: float = 2.0, threshold_range=THRESHOLD_RANGE, fallback: float = 0.5
) -> tuple[float, float]:
    """One threshold for all labels maximising micro F-beta; returns (threshold, micro F-beta).

    Micro counts pool all (tile, label) decisions, so this is a single search over the flattened
    (n * L,) arrays. Without any positive (or any true positive in range) returns `fallback`.
    """
    y, p = _as_arrays(y_true, probabilities)
    return _best_threshold(y.reshape(-1), p.reshape(-1), beta, threshold_range, fallback)


def tune_per_label_thresholds(
    y_true, probabilities, beta: float = 2.0, threshold_range=THRESHOLD_RANGE, fallback=0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(L,) thresholds each maximising its label's F-beta, and (L,) the F-beta reached.

    A label without positives (score NaN), or whose positives all score below the range
    (score 0), gets `fallback` (scalar or (L,); e.g. the tuned uniform threshold).
    """
    y, p = _as_arrays(y_true, probabilities)
    n_labels = y.shape[1]
    fallback = np.broadcast_to(np.asarray(fallback, dtype=np.float64), (n_labels,))
    best = [_best_threshold(y[:, j], p[:, j], beta, threshold_range, fallback[j]) for j in range(n_labels)]
    return np.array([b[0] for b in best]), np.array([b[1] for b in best])
