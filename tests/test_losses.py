"""Losses against hand-computed values (thesis per-batch weights, global positive weights)."""

import keras
import numpy as np
import pytest

from olr.training import losses

pytestmark = pytest.mark.both_backends

# 3 tiles, 4 labels; label 3 is absent from the batch.
Y = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
P = np.array([[0.9, 0.2, 0.6, 0.1], [0.7, 0.4, 0.3, 0.2], [0.2, 0.1, 0.8, 0.3]], dtype=np.float32)


def _bce(y, p, pos_weight=1.0):
    return -(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))


def test_batch_class_weights_follow_the_thesis_formula():
    # f = [2, 1, 2, 0], t = 5 labels assigned: w = (1/f)(t/2) = [1.25, 2.5, 1.25], absent label -> 1
    w = keras.ops.convert_to_numpy(losses.batch_class_weights(Y))
    np.testing.assert_allclose(w, [1.25, 2.5, 1.25, 1.0], rtol=1e-6)


def test_batch_weighted_bce_value():
    w = np.array([1.25, 2.5, 1.25, 1.0])
    expected = np.mean(np.mean(_bce(Y, P) * w, axis=1))
    got = float(losses.BatchWeightedBCE()(Y, P))
    assert got == pytest.approx(expected, rel=1e-5)
    plain = float(keras.losses.BinaryCrossentropy()(Y, P))
    assert got != pytest.approx(plain, rel=1e-3)


def test_global_pos_weights_from_training_presence():
    presence = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1]], dtype=np.uint8)
    # N = 5, n = [1, 4, 0, 5]: (N - n)/n = [4, 0.25, (none: max), 0 -> clipped to 1/max]
    w = losses.pos_weights(presence, max_weight=10.0)
    np.testing.assert_allclose(w, [4.0, 0.25, 10.0, 0.1], rtol=1e-6)


def test_pos_weighted_bce_value_and_serialisation():
    pw = np.array([4.0, 0.25, 10.0, 0.1], dtype=np.float32)
    loss = losses.PosWeightedBCE(pw)
    expected = np.mean(np.mean(_bce(Y, P, pw), axis=1))
    assert float(loss(Y, P)) == pytest.approx(expected, rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, losses.PosWeightedBCE)
    assert float(clone(Y, P)) == pytest.approx(expected, rel=1e-5)


def test_make_loss_uses_keras_builtins_with_options():
    bce = losses.make_loss({"loss": "bce"})
    assert isinstance(bce, keras.losses.BinaryCrossentropy)
    assert float(bce(Y, P)) == pytest.approx(np.mean(_bce(Y, P)), rel=1e-5)
    focal = losses.make_loss({"loss": "focal", "focal_gamma": 3.0, "focal_alpha": 0.4})
    assert isinstance(focal, keras.losses.BinaryFocalCrossentropy)
    cfg = focal.get_config()
    assert (cfg["gamma"], cfg["alpha"], cfg["apply_class_balancing"]) == (3.0, 0.4, True)
    # focal with gamma > 0 down-weights easy examples: smaller than BCE on the same batch
    assert float(focal(Y, P)) < float(bce(Y, P))
    assert (
        losses.make_loss({"loss": "focal", "focal_gamma": 2.0, "focal_alpha": None}).get_config()[
            "apply_class_balancing"
        ]
        is False
    )
    assert isinstance(losses.make_loss({"loss": "weighted_bce_batch"}), losses.BatchWeightedBCE)
    assert isinstance(losses.make_loss({"loss": "weighted_bce_global"}, np.ones(4)), losses.PosWeightedBCE)


# ------------------------------------------------------------------ asymmetric loss (ASL)


def _official_asl(x, y, gamma_neg, gamma_pos, clip, eps=1e-8):
    """`AsymmetricLoss.forward` of github.com/Alibaba-MIIL/ASL, src/loss_functions/losses.py, line by line
    in numpy (float64): x logits, y targets; -loss.sum() over everything. Under its default
    disable_torch_grad_focal_loss=True the focusing weight carries no gradient (checked below)."""
    x_sigmoid = 1.0 / (1.0 + np.exp(-x))
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = np.minimum(xs_neg + clip, 1)
    los_pos = y * np.log(np.maximum(xs_pos, eps))
    los_neg = (1 - y) * np.log(np.maximum(xs_neg, eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        pt0 = xs_pos * y
        pt1 = xs_neg * (1 - y)
        pt = pt0 + pt1
        one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
        one_sided_w = np.power(1 - pt, one_sided_gamma)
        loss = loss * one_sided_w
    return -loss.sum()


# Probabilities near 0 and 1 (1e-9 below the 1e-8 clamp), around the margins, a row of all-absent and
# a row of all-present labels; float32 as a sigmoid output is.
P_ASL = np.array(
    [
        [1e-9, 1e-6, 0.04, 0.05, 0.06, 0.5, 0.999999, 1.0],
        [0.3, 0.9, 0.2, 0.99, 0.01, 0.7, 0.15, 0.55],
        [1e-9, 0.02, 0.1, 0.4, 0.6, 0.96, 0.999, 1.0 - 2**-24],
        [0.001, 0.25, 0.5, 0.75, 0.95, 0.999999, 1e-5, 0.3],
    ],
    dtype=np.float32,
)
Y_ASL = np.array(
    [[1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 0, 1, 1], [0] * 8, [1] * 8],
    dtype=np.float32,
)


@pytest.mark.parametrize(
    "gamma_neg,gamma_pos,margin",
    [(4, 0, 0.05), (4, 1, 0.05), (0, 0, 0.0), (2, 3, 0.2), (4, 0, 0.0), (1.5, 0.5, 0.01)],
)
def test_asymmetric_loss_matches_the_official_implementation(gamma_neg, gamma_pos, margin):
    loss = losses.AsymmetricLoss(gamma_neg, gamma_pos, margin)
    p = P_ASL.astype(np.float64)
    with np.errstate(divide="ignore"):  # p = 1 is an infinite logit; the sigmoid takes it back to 1
        logits = np.log(p) - np.log1p(-p)
    n_tiles, n_labels = P_ASL.shape
    # per tile: ours the mean over its labels, the official the sum
    ours = keras.ops.convert_to_numpy(losses.AsymmetricLoss(gamma_neg, gamma_pos, margin, reduction=None)(Y_ASL, P_ASL))
    official = [_official_asl(logits[i], Y_ASL[i], gamma_neg, gamma_pos, margin) for i in range(n_tiles)]
    np.testing.assert_allclose(ours * n_labels, official, rtol=1e-5)
    # the batch: Keras averages over the tiles
    whole = _official_asl(logits, Y_ASL, gamma_neg, gamma_pos, margin)
    np.testing.assert_allclose(float(loss(Y_ASL, P_ASL)) * n_tiles * n_labels, whole, rtol=1e-5)


def test_asymmetric_loss_gradient_treats_the_focusing_weights_as_constants():
    """As the official default (disable_torch_grad_focal_loss=True): d/dp of -w * log(q) is -w * dlog(q)/dp only."""
    import keras

    gamma_neg, gamma_pos, margin = 4.0, 1.0, 0.05
    p = np.asarray(P_ASL[1:2], dtype=np.float32)  # no probability at a clamp
    y = Y_ASL[1:2]
    loss = losses.AsymmetricLoss(gamma_neg, gamma_pos, margin)
    if keras.backend.backend() == "jax":  # the same derivative on either backend Keras runs on here
        import jax

        grad = np.asarray(jax.grad(lambda t: loss(y, t))(p))
    else:
        import tensorflow as tf

        t = tf.constant(p)
        with tf.GradientTape() as tape:
            tape.watch(t)
            value = loss(y, t)
        grad = tape.gradient(value, t).numpy()
    q = p.astype(np.float64)
    shifted = np.maximum(q - margin, 0)
    positive = -((1 - q) ** gamma_pos) / q
    negative = np.where(q > margin, shifted**gamma_neg / (1 - shifted), 0.0)
    np.testing.assert_allclose(grad, np.where(y == 1, positive, negative) / y.size, rtol=1e-5)


def test_make_loss_builds_the_asymmetric_loss_with_the_papers_defaults():
    from olr.training import options

    loss = losses.make_loss({**options.defaults("classifier"), "loss": "asl"})
    assert isinstance(loss, losses.AsymmetricLoss)
    cfg = loss.get_config()
    assert (cfg["gamma_neg"], cfg["gamma_pos"], cfg["margin"]) == (4.0, 0.0, 0.05)
    custom = losses.make_loss({"loss": "asl", "asl_gamma_neg": 2.0, "asl_gamma_pos": 1.0, "asl_margin": 0.1})
    assert (custom.gamma_neg, custom.gamma_pos, custom.margin) == (2.0, 1.0, 0.1)
    # with margin 0 and both exponents 0 it is binary cross-entropy
    plain = losses.make_loss({"loss": "asl", "asl_gamma_neg": 0.0, "asl_gamma_pos": 0.0, "asl_margin": 0.0})
    assert float(plain(Y, P)) == pytest.approx(np.mean(_bce(Y, P)), rel=1e-5)


def test_asymmetric_loss_survives_a_save_and_load_round_trip(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss=losses.AsymmetricLoss(3.0, 1.0, 0.1))
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    model.fit(x, Y[[0, 1, 2, 0, 1, 2]], epochs=1, verbose=0)  # optimizer state saved too
    path = tmp_path / "asl.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, losses.AsymmetricLoss)
    assert (loaded.loss.gamma_neg, loaded.loss.gamma_pos, loaded.loss.margin) == (3.0, 1.0, 0.1)
    y = Y[[0, 1, 2, 0, 1, 2]]
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
