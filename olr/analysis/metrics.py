"""Multi-label classification metrics and decision-threshold search (numpy, vectorised).

Inputs are `y_true` (n, L) binary and `probabilities` (n, L) in [0, 1]; a label is predicted
present when its probability is >= its threshold (a scalar, or one per label).

**The one convention for undefined figures** (the same in every average, report and page):
a figure is undefined (NaN, JSON null) where there is nothing to find, and an undefined
figure is left out of every mean and listed, never counted as 0:

- recall, F1/F2/F-beta and average precision of a label **without positives** are NaN; the
  label is listed in `no_positive_labels`; AUROC is also NaN for a label **without
  negatives** (present on every tile), listed in `no_negative_labels`;
- macro averages are the mean over the labels where the figure is defined (support > 0;
  for AUROC also a negative), so a label without positives never drags a mean to 0;
- sample averages (the Planet/Kaggle F2) are the mean over the tiles that carry at least one
  label; tiles without any are counted in `tiles_without_labels`;
- micro averages pool the counts of all labels (false alarms on a label without positives
  count against precision); NaN only when there is no positive at all;
- precision TP / (TP + FP) of a label that is never predicted is **0** (listed in
  `never_predicted`, so a 0 reads as "never said yes").

With that convention every F-score that is defined has a non-zero denominator; only precision
meets 0 / 0. In scikit-learn's terms: `zero_division=0`, macro averages with
`labels=<labels with positives>` (AUROC: with positives and negatives), sample averages over
the rows with a positive label (tests/test_metrics.py checks each against scikit-learn).

Average precision is the step-wise sum over distinct score thresholds (highest first)
AP = sum_k (R_k - R_(k-1)) P_k, tied scores forming one step (the scikit-learn definition).
AUROC is the Mann-Whitney statistic: the chance that a random positive scores above a random
negative, ties counting one half. For bootstrap resamples (rows repeated), `RankedScores` and
`WeightedDecisions` recompute AP and the threshold figures from row counts, without sorting again.

Binary accuracy (share of correct label decisions; 1 - Hamming loss) is always reported
beside the **all-absent baseline**: the accuracy of a model that predicts every label absent,
i.e. the share of zeros in y_true. On sparse land-cover labels that baseline is typically
above 90 %, which is how a collapsed model looked like a success in the thesis; the report
warns when accuracy does not beat it, lists labels that have positives but no true positive,
and names the **starved** ones among them (at least `STARVED_MIN_SUPPORT` positives: too many
to blame chance). Subset accuracy (every label of a tile right) is reported beside it.

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
#: A label with at least this many positives and no true positive is "starved": the model never finds it.
STARVED_MIN_SUPPORT = 20


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


class RankedScores:
    """(n, L) scores sorted once per label, so average precision can be recomputed for any row
    weights in O(n L) without sorting again (a bootstrap resample given as row counts: weight
    w_i gives the same AP as repeating row i w_i times)."""

    def __init__(self, y_true, probabilities):
        y, p = _as_arrays(y_true, probabilities)
        n, n_labels = y.shape
        self.order = np.argsort(-p, axis=0, kind="stable")
        ps = np.take_along_axis(p, self.order, axis=0)
        self.ys = np.take_along_axis(y, self.order, axis=0).astype(np.float64)
        # Tied scores are one threshold: every element takes the precision at the end of its tie group.
        group_end = np.vstack([ps[1:] != ps[:-1], np.ones((1, n_labels), dtype=bool)])
        end_index = np.where(group_end, np.arange(n)[:, None], n)
        self.next_end = np.minimum.accumulate(end_index[::-1], axis=0)[::-1] if n else end_index

    def average_precision(self, weights=None) -> np.ndarray:
        """(L,) AP per label (step-wise, ties as one step) with row weights (n,) (default 1); NaN without positives."""
        n, n_labels = self.ys.shape
        if n == 0:
            return np.full(n_labels, np.nan)
        w = np.ones((n, n_labels)) if weights is None else np.asarray(weights, dtype=np.float64)[self.order]
        hits = w * self.ys
        called = np.cumsum(w, axis=0)
        precision = np.divide(np.cumsum(hits, axis=0), called, out=np.zeros((n, n_labels)), where=called > 0)
        precision_at_step = np.take_along_axis(precision, self.next_end, axis=0)
        n_pos = hits.sum(axis=0)
        return np.divide((hits * precision_at_step).sum(axis=0), n_pos, out=np.full(n_labels, np.nan), where=n_pos > 0)


def average_precision(y_true, probabilities) -> np.ndarray:
    """(L,) average precision per label (step-wise, ties as one step); NaN without positives."""
    return RankedScores(y_true, probabilities).average_precision()


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """(n, L) ranks 1..n of each column of `x`, tied values sharing their mean rank."""
    n_labels = x.shape[1]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    ranks = np.empty_like(x, dtype=np.float64)
    for j in range(n_labels):
        _, first, counts = np.unique(xs[:, j], return_index=True, return_counts=True)
        mean_rank = first + (counts + 1) / 2.0  # positions first+1 .. first+count, averaged
        ranks[order[:, j], j] = np.repeat(mean_rank, counts)
    return ranks


def roc_auc(y_true, probabilities) -> np.ndarray:
    """(L,) area under the ROC curve per label (Mann-Whitney U / (n_pos n_neg), ties count 1/2);
    NaN for a label without positives or without negatives."""
    y, p = _as_arrays(y_true, probabilities)
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = y.shape[0] - n_pos
    if y.shape[0] == 0:
        return np.full(y.shape[1], np.nan)
    rank_sum = np.where(y, _average_ranks(p), 0.0).sum(axis=0)
    u = rank_sum - n_pos * (n_pos + 1) / 2
    den = n_pos * n_neg
    return np.divide(u, den, out=np.full_like(u, np.nan), where=den > 0)


def sample_fbeta(y_true, y_pred, beta: float = 2.0) -> np.ndarray:
    """(n,) F-beta of each tile over its labels (the Planet/Kaggle metric before averaging);
    NaN for a tile without any label (see the module's convention)."""
    y = np.asarray(y_true).astype(bool)
    q = np.asarray(y_pred).astype(bool)
    tp = np.count_nonzero(y & q, axis=1)
    pos = np.count_nonzero(y, axis=1)
    pred = np.count_nonzero(q, axis=1)
    return fbeta_from_counts(tp, pred - tp, pos - tp, beta)


def mean_defined(x) -> float:
    """Mean over the defined (non-NaN) entries; NaN when none is defined (the module's convention)."""
    x = np.asarray(x, dtype=np.float64)
    defined = ~np.isnan(x)
    return float(x[defined].mean()) if defined.any() else math.nan


class WeightedDecisions:
    """Binary (n, L) decisions against the truth, summarised for any row weights in a few (n,) x
    (n, L) products (a bootstrap resample given as row counts: weight w_i gives the same figures
    as repeating row i w_i times), with the module's convention."""

    def __init__(self, y_true, y_pred, beta: float = 2.0):
        y = np.asarray(y_true).astype(bool)
        q = np.asarray(y_pred).astype(bool)
        self.beta = float(beta)
        self.n_labels = y.shape[1]
        self.tp, self.fp, self.fn = (a.astype(np.float64) for a in (y & q, ~y & q, y & ~q))
        self.correct = np.count_nonzero(y == q, axis=1).astype(np.float64)
        self.tile_fbeta = sample_fbeta(y, q, beta)  # a tile's F-beta does not depend on the other tiles

    def figures(self, weights=None) -> dict:
        """Micro, macro and sample-averaged F-beta and binary accuracy under row weights (n,) (default 1)."""
        w = np.ones(len(self.correct)) if weights is None else np.asarray(weights, dtype=np.float64)
        tp, fp, fn = (w @ a for a in (self.tp, self.fp, self.fn))
        labelled = ~np.isnan(self.tile_fbeta)
        tiles = w[labelled].sum()
        cells = w.sum() * self.n_labels
        return {
            "micro_fbeta": float(fbeta_from_counts(tp.sum(), fp.sum(), fn.sum(), self.beta)),
            "macro_fbeta": mean_defined(fbeta_from_counts(tp, fp, fn, self.beta)),
            "samples_fbeta": float(w[labelled] @ self.tile_fbeta[labelled] / tiles) if tiles > 0 else math.nan,
            "accuracy": float(w @ self.correct / cells) if cells > 0 else math.nan,
        }


def threshold_figures(y_true, y_pred, beta: float = 2.0) -> dict:
    """The headline figures of binary (n, L) predictions: micro, macro and sample-averaged
    F-beta and binary accuracy (the module's convention; `WeightedDecisions` for resamples)."""
    return WeightedDecisions(y_true, y_pred, beta).figures()


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
    auroc: np.ndarray
    micro: dict
    macro: dict
    samples: dict  # per-tile F-scores averaged over tiles with a label (the Planet/Kaggle F2)
    accuracy: float  # share of correct (tile, label) decisions = 1 - Hamming loss
    baseline_accuracy: float  # the same for "every label absent" = share of zeros in y_true
    subset_accuracy: float  # share of tiles with every label right
    no_positive_labels: list[str] = field(default_factory=list)
    no_negative_labels: list[str] = field(default_factory=list)
    never_predicted: list[str] = field(default_factory=list)
    zero_tp_labels: list[dict] = field(default_factory=list)  # [{"label", "support"}], support > 0
    starved_labels: list[str] = field(default_factory=list)  # zero TP with >= STARVED_MIN_SUPPORT positives
    tiles_without_labels: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def beats_baseline(self) -> bool:
        return self.accuracy > self.baseline_accuracy + 1e-12

    @property
    def hamming_loss(self) -> float:
        return 1.0 - self.accuracy

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
        cols["auroc"] = self.auroc
        return pd.DataFrame(cols)

    def summary(self) -> dict:
        """JSON-ready dict (NaN -> null) of the averages, accuracy, baseline and warnings."""
        return json_ready(
            {
                "beta": self.beta,
                "n_tiles": self.n_tiles,
                "micro": self.micro,
                "macro": self.macro,
                "samples": self.samples,
                "binary_accuracy": self.accuracy,
                "baseline_accuracy": self.baseline_accuracy,
                "beats_baseline": self.beats_baseline,
                "hamming_loss": self.hamming_loss,
                "subset_accuracy": self.subset_accuracy,
                "no_positive_labels": self.no_positive_labels,
                "no_negative_labels": self.no_negative_labels,
                "never_predicted": self.never_predicted,
                "zero_tp_labels": self.zero_tp_labels,
                "starved_labels": self.starved_labels,
                "tiles_without_labels": self.tiles_without_labels,
                "warnings": self.warnings,
            }
        )


def _per_label(tp, fp, fn, beta: float) -> dict:
    return {
        "precision": precision_from_counts(tp, fp),
        "recall": recall_from_counts(tp, fn),
        "f1": fbeta_from_counts(tp, fp, fn, 1.0),
        "f2": fbeta_from_counts(tp, fp, fn, 2.0),
        "fbeta": fbeta_from_counts(tp, fp, fn, beta),
    }


def _micro(y, p, tp, fp, fn, tn, beta: float) -> dict:
    TP, FP, FN, TN = (int(a.sum()) for a in (tp, fp, fn, tn))
    pooled = {k: float(v) for k, v in _per_label(TP, FP, FN, beta).items()}
    pooled["ap"] = float(average_precision(y.reshape(-1), p.reshape(-1))[0]) if y.size else math.nan
    return {**pooled, "tp": TP, "fp": FP, "fn": FN, "tn": TN}


def _samples(y, q, beta: float) -> dict:
    """Per-tile precision, recall and F-scores averaged over the tiles that carry a label."""
    tp = np.count_nonzero(y & q, axis=1)
    fp = np.count_nonzero(~y & q, axis=1)
    fn = np.count_nonzero(y & ~q, axis=1)
    has_label = (tp + fn) > 0
    per_tile = _per_label(tp[has_label], fp[has_label], fn[has_label], beta)
    return {k: mean_defined(v) for k, v in per_tile.items()}


def _findings(m: MultilabelMetrics) -> list[str]:
    """The sentences a reader needs beside the figures (zero-TP labels, baseline, undefined labels)."""
    warnings = []
    if m.zero_tp_labels:
        listed = ", ".join(f"{d['label']} ({d['support']} positives)" for d in m.zero_tp_labels)
        n_with = int((m.support > 0).sum())
        warnings.append(f"{len(m.zero_tp_labels)} of {n_with} labels with positives have no true positive: {listed}.")
    if m.n_tiles and len(m.names) and not m.beats_baseline:
        warnings.append(
            f"Binary accuracy {m.accuracy:.1%} does not beat the all-absent baseline {m.baseline_accuracy:.1%} "
            "(a model that predicts every label absent scores that much)."
        )
    if m.no_positive_labels:
        warnings.append(
            f"No positives for {', '.join(m.no_positive_labels)}; these labels are left out of the macro averages."
        )
    return warnings


def multilabel_metrics(
    y_true, probabilities, thresholds=0.5, beta: float = 2.0, names=None, starved_min_support=STARVED_MIN_SUPPORT
) -> MultilabelMetrics:
    """All per-label and averaged metrics of `probabilities` (n, L) against `y_true` (n, L).

    `thresholds` is a scalar or (L,) array; `beta` is the F-beta reported beside F1 and F2.
    Undefined figures follow the module's convention.
    """
    y, p = _as_arrays(y_true, probabilities)
    n, n_labels = y.shape
    names = list(names) if names is not None else [f"label {i}" for i in range(n_labels)]
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_labels,)).copy()
    q = binarize(p, thr)
    tp, fp, fn, tn = confusion_counts(y, q)
    support = tp + fn
    per = {**_per_label(tp, fp, fn, beta), "ap": average_precision(y, p), "auroc": roc_auc(y, p)}
    macro = {k: mean_defined(np.where(support > 0, v, np.nan)) for k, v in per.items()}
    cells = max(n * n_labels, 1)
    zero_tp = np.flatnonzero((support > 0) & (tp == 0))
    m = MultilabelMetrics(
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
        micro=_micro(y, p, tp, fp, fn, tn, beta),
        macro=macro,
        samples=_samples(y, q, beta),
        accuracy=float((tp.sum() + tn.sum()) / cells),
        baseline_accuracy=float((n * n_labels - int(support.sum())) / cells),
        subset_accuracy=float(np.all(y == q, axis=1).mean()) if n else math.nan,
        no_positive_labels=[names[i] for i in np.flatnonzero(support == 0)],
        no_negative_labels=[names[i] for i in np.flatnonzero((support == n) & (n > 0))],
        never_predicted=[names[i] for i in np.flatnonzero(tp + fp == 0)],
        zero_tp_labels=[{"label": names[i], "support": int(support[i])} for i in zero_tp],
        starved_labels=[names[i] for i in zero_tp if support[i] >= starved_min_support],
        tiles_without_labels=int(np.count_nonzero(~y.any(axis=1))),
        **per,
    )
    m.warnings = _findings(m)
    return m


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
