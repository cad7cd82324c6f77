"""Models: thesis/resnet classifiers at several tile sizes, Siamese embedder and pair model,
occlusion, the Siamese training wrapper, and loading saved models in a fresh process."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from olr.training import losses, models, pipelines
from olr.workspace import REPO_ROOT

BANDS = [{"mean": 100.0, "std": 20.0}, {"mean": 50.0, "std": 10.0}, {"mean": 10.0, "std": 5.0}]


def _conv_sizes(model):
    return [layer.output.shape[1] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_thesis_classifier_reproduces_the_thesis_shapes_on_178_tiles():
    model = models.thesis_classifier((178, 178, 3), 38, BANDS, width=1 / 16)
    pools = [layer.output.shape[1] for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == [87, 41, 18, 7]  # the appendix-A comments
    assert _conv_sizes(model)[-1] == 3
    assert model.output_shape == (None, 38)


@pytest.mark.parametrize("side, last", [(64, 2), (32, 2), (16, 3)])
def test_thesis_classifier_adapts_to_small_tiles(side, last):
    model = models.thesis_classifier((side, side, 3), 5, BANDS, width=1 / 16)
    assert _conv_sizes(model)[-1] == last
    mean, std = np.array([[b["mean"], b["std"]] for b in BANDS], "float32").T
    x = (mean + std * np.random.default_rng(0).standard_normal((2, side, side, 3))).astype("float32")
    p = keras.ops.convert_to_numpy(model(x))
    assert p.shape == (2, 5) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_resnet_stages_follow_the_tile_size_and_width():
    small = models.resnet_classifier((16, 16, 3), 4, BANDS, width=0.25, depth=1)
    big = models.resnet_classifier((64, 64, 3), 4, BANDS, width=0.25, depth=1)
    wide = models.resnet_classifier((16, 16, 3), 4, BANDS, width=0.5, depth=1)
    deep = models.resnet_classifier((16, 16, 3), 4, BANDS, width=0.25, depth=2)
    # 16: stem stride 1, stages 16 -> 8 -> 4; 64: stem stride 2, stages 32 -> 16 -> 8 -> 4.
    assert min(_conv_sizes(small)) == 4 and max(_conv_sizes(small)) == 16
    assert min(_conv_sizes(big)) == 4 and max(_conv_sizes(big)) == 32
    assert wide.count_params() > small.count_params() and deep.count_params() > small.count_params()
    assert any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in small.layers)


def test_input_normalisation_uses_the_band_statistics():
    model = models.resnet_classifier((8, 8, 3), 2, BANDS, width=0.25, depth=1)
    norm = model.get_layer("normalize")
    x = np.tile(np.array([120.0, 40.0, 10.0], dtype="float32"), (1, 8, 8, 1))
    out = keras.ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(out[0, 0, 0], [1.0, -1.0, 0.0], atol=1e-5)


def test_siamese_scores_are_per_label_dot_products():
    embedder = models.siamese_embedder((16, 16, 3), 5, 4, BANDS, "resnet", width=0.25, depth=1)
    pair = models.siamese_pair_model(embedder)
    assert embedder.name == "embedder" and pair.get_layer("embedder") is embedder
    rng = np.random.default_rng(1)
    a, b = (rng.uniform(0, 200, (3, 16, 16, 3)).astype("float32") for _ in range(2))
    ea, eb = (keras.ops.convert_to_numpy(embedder(t)) for t in (a, b))
    assert ea.shape == (3, 5, 4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pair([a, b])), (ea * eb).sum(-1), rtol=1e-4, atol=1e-5)
    thesis = models.siamese_embedder((16, 16, 3), 5, 4, BANDS, "thesis", width=1 / 16)
    assert thesis.output_shape == (None, 5, 4)


def test_occlude_sets_exactly_the_box_to_the_fill():
    images = np.ones((50, 12, 9, 2), dtype="float32")
    boxes = pipelines.random_boxes(50, 12, 9, 0.3, 0.7, seed=tf.constant([0, 7], tf.int64))
    out = keras.ops.convert_to_numpy(models.occlude(images, boxes, np.array([-5.0, 0.0], "float32")))
    for img, (y0, x0, bh, bw) in zip(out, boxes.numpy()):
        hit = img[..., 0] == -5.0
        assert hit.sum() == bh * bw
        assert hit[y0 : y0 + bh, x0 : x0 + bw].all()
        assert (img[..., 1][hit] == 0).all() and (img[..., 1][~hit] == 1).all()


def _tiny_pair_setup(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    mm = np.load(tmp_path / "images.npy", mmap_mode="r")
    classifier = models.resnet_classifier((8, 8, 3), 3, BANDS, width=0.25, depth=1)
    pair = models.siamese_pair_model(models.siamese_embedder((8, 8, 3), 3, 2, BANDS, "resnet", 0.25, 1))
    pair.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    trainer = models.SiameseTrainer(pair, classifier, [b["mean"] for b in BANDS])
    trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=True)  # as training runs it on one device
    return mm, classifier, pair, trainer


def test_siamese_trainer_regresses_on_occluded_classifier_products(tmp_path):
    mm, classifier, pair, trainer = _tiny_pair_setup(tmp_path)
    val = pipelines.fixed_pair_batches(mm, np.arange(32), n_pairs=8, batch_size=8, occlusion=(0.25, 0.5), seed=0)
    ((a, b, box_a, box_b),) = next(iter(val))
    fill = np.array([b_["mean"] for b_ in BANDS], "float32")
    a2, b2 = models.occlude(a, box_a, fill), models.occlude(b, box_b, fill)
    target = classifier(a2, training=False) * classifier(b2, training=False)
    expected = np.mean((keras.ops.convert_to_numpy(pair([a2, b2], training=False) - target)) ** 2)
    assert trainer.evaluate(val, verbose=0) == pytest.approx(expected, rel=1e-3)

    frozen = [w.copy() for w in classifier.get_weights()]
    before = [w.copy() for w in pair.get_weights()]
    train = pipelines.pair_batches(mm, np.arange(32), batch_size=4, occlusion=(0.25, 0.5), seed=0)
    trainer.fit(train, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert all(np.array_equal(x, y) for x, y in zip(frozen, classifier.get_weights()))
    assert any(not np.array_equal(x, y) for x, y in zip(before, pair.get_weights()))
    assert int(pair.optimizer.iterations.numpy()) == 3  # the shared optimizer is the pair model's


def test_saved_models_load_in_a_fresh_process(tmp_path):
    mm, classifier, pair, _ = _tiny_pair_setup(tmp_path)
    classifier.compile(optimizer="adam", loss=losses.PosWeightedBCE([2.0, 1.0, 0.5]))
    x = np.asarray(mm[:4], dtype="float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected_p.npy", keras.ops.convert_to_numpy(classifier(x, training=False)))
    np.save(tmp_path / "expected_s.npy", keras.ops.convert_to_numpy(pair([x, x[::-1]], training=False)))
    classifier.save(tmp_path / "c.keras")
    pair.save(tmp_path / "s.keras")
    script = (
        "import sys, numpy as np, keras, olr.training.models, olr.training.losses\n"
        "d = sys.argv[1]; x = np.load(d + '/x.npy')\n"
        "c = keras.models.load_model(d + '/c.keras'); s = keras.models.load_model(d + '/s.keras')\n"
        "assert type(c.loss).__name__ == 'PosWeightedBCE'\n"
        "np.testing.assert_allclose(c(x), np.load(d + '/expected_p.npy'), rtol=1e-5)\n"
        "np.testing.assert_allclose(s([x, x[::-1]]), np.load(d + '/expected_s.npy'), rtol=1e-4, atol=1e-6)\n"
        "print(s.get_layer('embedder').output_shape)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(None, 3, 2)" in proc.stdout
