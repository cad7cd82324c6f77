"""The Keras metrics a classifier run logs for its training and its validation tiles.

The conventions are those of `olr.analysis.metrics`, so a run's curves and its evaluation
mean the same: binary accuracy and the micro averages pool the decisions of every label;
the validation macro averages are the mean over the labels with validation positives (a label
without positives has no F-score or precision-recall curve; counting it as 0 would sink the
average for no fault of the model). Training's are over all labels, which all have training
positives unless on_missing_label=warn kept some without. `macro_pr_auc` and `micro_pr_auc` are
Keras's interpolated area under the precision-recall curve (`keras.metrics.AUC(curve="PR")`):
close to, but not, the step-wise average precision the evaluation reports as AP.

Imported by `olr.training.fit` when training starts (this module imports Keras).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops


class MacroFBetaScore(keras.metrics.FBetaScore):
    """Keras's per-label F-beta, averaged over the labels where `has_positives` is true."""

    def __init__(self, has_positives: Sequence[bool], beta: float = 1.0, threshold: float = 0.5, name=None):
        super().__init__(average=None, beta=beta, threshold=threshold, name=name)
        self._columns = np.flatnonzero(has_positives).astype("int32")

    def result(self):
        return ops.mean(ops.take(super().result(), self._columns))


def scored_labels(presence: np.ndarray) -> np.ndarray:
    """(L,) bool: the labels with at least one positive in `presence` (n, L); all of them when none has one
    (then every macro average is 0, as Keras gives, rather than undefined)."""
    has = np.asarray(presence).astype(bool).any(axis=0)
    return has if has.any() else np.ones_like(has)


def classifier_metrics(n_labels: int, threshold: float, presence: np.ndarray | None = None) -> list:
    """The metrics `olr.training.options.CLASSIFIER_METRICS` names for `n_labels` labels, at `threshold`.

    With `presence` (n, L), the targets they will score, the macro averages are over its labels
    with positives (for the validation model, which is never saved). Without, they are Keras's
    built-in metrics over all labels, so a checkpoint compiled with them loads wherever Keras
    does (for training, whose labels all have training positives unless on_missing_label=warn).
    """
    m = keras.metrics
    if presence is None:
        macro_f1 = m.FBetaScore(average="macro", beta=1.0, threshold=threshold, name="macro_f1")
        macro_f2 = m.FBetaScore(average="macro", beta=2.0, threshold=threshold, name="macro_f2")
        macro_pr_auc = m.AUC(curve="PR", multi_label=True, num_labels=n_labels, name="macro_pr_auc")
    else:
        has = scored_labels(presence)
        macro_f1 = MacroFBetaScore(has, beta=1.0, threshold=threshold, name="macro_f1")
        macro_f2 = MacroFBetaScore(has, beta=2.0, threshold=threshold, name="macro_f2")
        # label_weights 0 leaves a label out of the mean of the per-label areas
        macro_pr_auc = m.AUC(
            curve="PR", multi_label=True, num_labels=n_labels, label_weights=has.astype("float32"), name="macro_pr_auc"
        )
    return [
        m.BinaryAccuracy(threshold=threshold, name="binary_accuracy"),
        m.FBetaScore(average="micro", beta=1.0, threshold=threshold, name="micro_f1"),
        macro_f1,
        m.FBetaScore(average="micro", beta=2.0, threshold=threshold, name="micro_f2"),
        macro_f2,
        macro_pr_auc,
        m.AUC(curve="PR", multi_label=False, name="micro_pr_auc"),
    ]
