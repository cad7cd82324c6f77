"""Losses for multi-label training: built-ins where Keras has them, two class-weighted BCEs, ASL.

- `bce`: `keras.losses.BinaryCrossentropy`.
- `focal`: `keras.losses.BinaryFocalCrossentropy` (gamma; alpha switches class balancing on).
- `weighted_bce_batch`: the thesis's per-batch class weights (section 4.4.1): for label c,
  w_c = (1 / f_c) * (t / 2), f_c = number of tiles in the batch that carry c, t = number of
  labels assigned in the batch (sum of all f_c); w_c = 1 when c is absent from the batch.
  The weight multiplies label c's BCE term for every tile of the batch (a class weight).
  Under MirroredStrategy "the batch" is each replica's share of it.
- `weighted_bce_global`: BCE with a per-label positive weight from the training split,
  pos_weight_c = (N - n_c) / n_c, clipped to [1/max, max] (`pos_weights`).
- `asl`: the asymmetric loss of Ridnik et al. 2021 (`AsymmetricLoss`): focal terms with their own
  exponents for positives and negatives, and negatives' probabilities shifted down by a margin.

All take `y_true` (B, L) in {0, 1} and `y_pred` (B, L) sigmoid probabilities.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

_EPS = 1e-7  # as keras.losses.BinaryCrossentropy clips probabilities
_ASL_EPS = 1e-8  # as the official ASL clamps the arguments of its logarithms


def _bce_terms(y_true, y_pred, pos_weight=1.0):
    """(B, L) element-wise binary cross-entropy, positives weighted by `pos_weight`."""
    y = ops.cast(y_true, y_pred.dtype)
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
    return -(pos_weight * y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))


@keras.saving.register_keras_serializable(package="olr")
class BatchWeightedBCE(keras.losses.Loss):
    """BCE with the thesis's per-batch class weights (see the module docstring)."""

    def __init__(self, name="weighted_bce_batch", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        weights = ops.stop_gradient(batch_class_weights(y_true))  # (L,)
        return ops.mean(_bce_terms(y_true, y_pred) * weights, axis=-1)


def batch_class_weights(y_true):
    """(L,) thesis weights (1/f)(t/2) for one batch `y_true` (B, L); 1 for absent labels."""
    y = ops.cast(y_true, "float32")
    f = ops.sum(y, axis=0)
    t = ops.sum(f)
    return ops.where(f > 0, (t / 2.0) / ops.maximum(f, 1.0), ops.ones_like(f))


@keras.saving.register_keras_serializable(package="olr")
class PosWeightedBCE(keras.losses.Loss):
    """BCE whose positive term of label c is multiplied by `pos_weight[c]` (fixed, from training data)."""

    def __init__(self, pos_weight, name="weighted_bce_global", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in np.asarray(pos_weight).reshape(-1)]

    def call(self, y_true, y_pred):
        w = ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        return ops.mean(_bce_terms(y_true, y_pred, w), axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}


@keras.saving.register_keras_serializable(package="olr")
class AsymmetricLoss(keras.losses.Loss):
    """ASL (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification").

    For a probability p and the margin m, with p_m = max(p - m, 0) a negative's shifted probability:
    a positive costs -(1 - p)^gamma_pos * log(p), a negative -p_m^gamma_neg * log(1 - p_m); so a
    negative below the margin costs nothing, and easy negatives (the many absent labels) weigh little.
    It follows the official implementation (github.com/Alibaba-MIIL/ASL, src/loss_functions/losses.py,
    `AsymmetricLoss`) from its sigmoid on: logarithms of probabilities clamped at 1e-8, and the focusing
    weights constants for the gradient (its default `disable_torch_grad_focal_loss=True`).
    Reduction as the other losses here: per tile the mean over the L labels, which Keras averages
    over the batch; the official `-loss.sum()` over a batch of B tiles is this value times B * L.
    The parameters' defaults (the paper's) are the options' (`olr.training.options`).
    """

    def __init__(self, gamma_neg, gamma_pos, margin, name="asl", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, y_pred.dtype)
        absent = ops.minimum(1.0 - y_pred + self.margin, 1.0)  # 1 - p_m: a negative's shifted probability of absence
        pos_weight = ops.stop_gradient(ops.power(1.0 - y_pred, self.gamma_pos))
        neg_weight = ops.stop_gradient(ops.power(1.0 - absent, self.gamma_neg))
        positive = y * pos_weight * ops.log(ops.maximum(y_pred, _ASL_EPS))
        negative = (1.0 - y) * neg_weight * ops.log(ops.maximum(absent, _ASL_EPS))
        return -ops.mean(positive + negative, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma_neg": self.gamma_neg, "gamma_pos": self.gamma_pos, "margin": self.margin}


def pos_weights(presence: np.ndarray, max_weight: float = 100.0) -> np.ndarray:
    """(L,) float32 (N - n_c) / n_c over the training presence (N, L), clipped to [1/max, max].

    A label with no positives gets `max_weight` (it cannot matter: it has no positive terms).
    """
    y = np.asarray(presence, dtype=np.float64)
    n = y.sum(axis=0)
    total = y.shape[0]
    with np.errstate(divide="ignore"):
        w = np.where(n > 0, (total - n) / np.maximum(n, 1), max_weight)
    return np.clip(w, 1.0 / max_weight, max_weight).astype(np.float32)


def make_loss(cfg: dict, pos_weight: np.ndarray | None = None) -> keras.losses.Loss:
    """The loss named by `cfg["loss"]` (with its focal/weight/ASL options)."""
    name = cfg["loss"]
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "focal":
        alpha = cfg["focal_alpha"]
        return keras.losses.BinaryFocalCrossentropy(
            gamma=float(cfg["focal_gamma"]),
            apply_class_balancing=alpha is not None,
            alpha=0.25 if alpha is None else float(alpha),
            name="focal",
        )
    if name == "weighted_bce_batch":
        return BatchWeightedBCE()
    if name == "weighted_bce_global":
        if pos_weight is None:
            raise ValueError("weighted_bce_global needs the training split's pos_weight")
        return PosWeightedBCE(pos_weight)
    if name == "asl":
        return AsymmetricLoss(cfg["asl_gamma_neg"], cfg["asl_gamma_pos"], cfg["asl_margin"])
    raise ValueError(f"unknown loss {name!r}")
