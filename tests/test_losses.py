"""Losses against hand-computed values (thesis per-batch weights, global positive weights)."""

import keras
import numpy as np
import pytest

from olr.training import losses

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
