"""Models: thesis/resnet classifiers at several tile sizes, keras.applications backbones on any
band count (ImageNet weights from a file, adapted to the bands), Siamese embedder and pair model,
occlusion, the Siamese training wrapper, and loading saved models in a fresh process."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from olr.errors import OLRError
from olr.training import fit, losses, models, options, pipelines
from olr.training.backbones import BACKBONES
from olr.workspace import REPO_ROOT

pytestmark = pytest.mark.both_backends

BANDS = [{"mean": 100.0, "std": 20.0}, {"mean": 50.0, "std": 10.0}, {"mean": 10.0, "std": 5.0}]
#: the cheapest backbone, for the tests that build or train one
SMALL_BACKBONE = "mobilenetv3small"


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


def _bands(n):
    return [{"mean": 10.0 * (i + 1), "std": 5.0} for i in range(n)]


def _backbone(model):
    """The keras.applications network nested in a backbone classifier or embedder."""
    (nested,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested


def _inner_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _inner_layers(layer)


@pytest.mark.parametrize("family", list(BACKBONES))
def test_each_backbone_builds_for_multispectral_tiles_from_its_minimum_side(family):
    side = BACKBONES[family].min_side
    model = models.classifier({**options.defaults(), "model": family}, (side, side, 4), 6, _bands(4))
    assert model.output_shape == (None, 6) and model.get_layer("probabilities").activation.__name__ == "sigmoid"
    first_kernel = next(v for v in _backbone(model).weights if len(v.shape) == 4)
    assert first_kernel.shape[2] == 4  # the first convolution takes the 4 bands
    inner = list(_inner_layers(_backbone(model)))
    # no ImageNet rescaling inside: the tiles are scaled by our Normalization layer only
    assert not [layer for layer in inner if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))]
    assert {layer.momentum for layer in inner if isinstance(layer, keras.layers.BatchNormalization)} <= {
        models.BN_MOMENTUM
    }
    # the table's minimum is Keras's own: one pixel less and the application refuses
    with pytest.raises(ValueError, match=f"at least {side}"):
        getattr(keras.applications, BACKBONES[family].application)(
            weights=None, include_top=False, input_shape=(side - 1, side - 1, 3)
        )


@pytest.mark.parametrize("n_bands", [4, 13])
def test_a_backbone_trains_one_step_on_any_band_count(n_bands):
    cfg = {**options.defaults(), "model": SMALL_BACKBONE}
    model = models.classifier(cfg, (32, 32, n_bands), 5, _bands(n_bands))
    # Eagerly: tracing the ~200-layer network into a graph takes ~30 s on 2 cores, a step 2 s.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(n_bands)
    x = rng.uniform(0, 60, (2, 32, 32, n_bands)).astype("float32")
    y = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1]], "float32")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    p = keras.ops.convert_to_numpy(model(x))
    assert p.shape == (2, 5) and ((p >= 0) & (p <= 1)).all()


def test_backbones_refuse_tiles_below_their_minimum_side_in_one_sentence():
    side = BACKBONES[SMALL_BACKBONE].min_side
    with pytest.raises(OLRError, match=rf"{SMALL_BACKBONE} needs tiles of at least {side}x{side} .* are 16x16; "):
        models.backbone_classifier((16, 16, 4), 3, _bands(4), SMALL_BACKBONE)
    with pytest.raises(OLRError, match=rf"at least {side}x{side} .* are {side}x{side - 1};"):
        models.siamese_embedder((side, side - 1, 4), 3, 2, _bands(4), SMALL_BACKBONE)


def _rgb_weights_file(tmp_path, file_format):
    """A 3-band MobileNetV3Small without top, saved as a user would save ImageNet's (preprocessing on):
    by save_weights, or in the legacy HDF5 format of the *_notop.h5 files Keras downloads (whose
    weights load by layer order, not by name)."""
    rgb = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3))
    if file_format == "legacy_h5":
        path = tmp_path / "mobilenetv3small_notop.h5"
        rgb.save(path)
    else:
        path = tmp_path / "mobilenetv3small_notop.weights.h5"
        rgb.save_weights(path)
    return rgb, path


@pytest.mark.parametrize("n_bands, file_format", [(3, "weights_h5"), (4, "weights_h5"), (4, "legacy_h5")])
def test_imagenet_weights_come_from_the_file_adapted_to_the_bands(tmp_path, n_bands, file_format):
    rgb, path = _rgb_weights_file(tmp_path, file_format)
    model = models.classifier(
        {**options.defaults(), "model": SMALL_BACKBONE, "backbone_weights": str(path)},
        (32, 32, n_bands),
        3,
        _bands(n_bands),
    )
    network = _backbone(model)
    (rgb_kernel,) = rgb.get_layer("conv").get_weights()  # (3, 3, 3, 16): the first convolution
    # each band gets the mean of the RGB kernels, scaled by 3/b (b = 3: the file's kernel itself)
    expected = np.repeat(rgb_kernel.mean(axis=2, keepdims=True), n_bands, axis=2) * 3 / n_bands
    (kernel,) = network.get_layer("conv").get_weights()
    np.testing.assert_allclose(kernel, rgb_kernel if n_bands == 3 else expected, rtol=1e-6, atol=1e-7)
    for name in ("conv_bn", "expanded_conv_project", "conv_1"):
        for mine, theirs in zip(network.get_layer(name).get_weights(), rgb.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)


def _another_networks_weights(tmp_path):
    path = tmp_path / "resnet.weights.h5"
    models.resnet_classifier((32, 32, 3), 3, BANDS, width=0.25, depth=1).save_weights(path)
    return path


def _corrupt_file(tmp_path):
    path = tmp_path / "corrupt_notop.h5"
    path.write_bytes(b"not an HDF5 file")
    return path


@pytest.mark.parametrize(
    "weights_file, complaint",
    [
        (_another_networks_weights, "does not fit keras.applications.MobileNetV3Small without its top"),
        (_corrupt_file, "does not fit keras.applications.MobileNetV3Small without its top"),
        (lambda tmp_path: tmp_path / "nowhere_notop.h5", "does not exist"),
    ],
    ids=["another_network", "corrupt", "missing"],
)
def test_a_weights_file_that_does_not_fit_is_refused_in_one_sentence(tmp_path, weights_file, complaint):
    path = weights_file(tmp_path)
    with pytest.raises(OLRError) as refused:
        models.backbone_classifier((32, 32, 4), 3, _bands(4), SMALL_BACKBONE, weights=path)
    message = str(refused.value)
    assert str(path) in message and complaint in message and message.endswith(".") and ". " not in message


def test_a_weights_file_is_refused_for_the_own_families():
    cfg = {**options.defaults(), "model": "resnet", "backbone_weights": "resnet50_notop.h5"}
    with pytest.raises(OLRError, match=r"backbone_weights is set, but the family resnet is not a keras\.applications"):
        models.classifier(cfg, (32, 32, 4), 3, _bands(4))


def test_a_backbone_embedder_gives_label_embeddings_and_takes_the_classifiers_trunk():
    classifier = models.backbone_classifier((32, 32, 4), 5, _bands(4), SMALL_BACKBONE)
    embedder = models.siamese_embedder((32, 32, 4), 5, 3, _bands(4), SMALL_BACKBONE)
    x = np.random.default_rng(2).uniform(0, 60, (2, 32, 32, 4)).astype("float32")
    assert keras.ops.convert_to_numpy(embedder(x)).shape == (2, 5, 3)
    trunk = _backbone(classifier).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(trunk, _backbone(embedder).get_weights()))
    copied = models.copy_trunk_weights(classifier, embedder)
    # every weighted layer of the nested network counts (fit.py logs "n layers copied")
    assert copied == sum(1 for layer in _inner_layers(_backbone(classifier)) if layer.weights)
    assert all(np.array_equal(a, b) for a, b in zip(trunk, _backbone(embedder).get_weights()))
    resnet = models.siamese_embedder((32, 32, 4), 5, 3, _bands(4), "resnet", width=0.25, depth=1)
    assert models.copy_trunk_weights(classifier, resnet) == 0  # another family shares nothing


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
    trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=True)  # as training runs it on one GPU
    return mm, classifier, pair, trainer


def test_siamese_trainer_regresses_on_occluded_classifier_products(tmp_path):
    mm, classifier, pair, trainer = _tiny_pair_setup(tmp_path)
    val = pipelines.fixed_pair_batches(mm, np.arange(32), n_pairs=8, batch_size=8, occlusion=(0.25, 0.5), seed=0)
    ((a, b, box_a, box_b),) = (tuple(np.asarray(t) for t in batch) for batch in next(iter(val)))  # any backend
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


def _batch_norms(model):
    return [layer for layer in model.get_layer("embedder").layers if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("batch_statistics", [True, False])
def test_the_trunk_keeps_the_classifiers_statistics_unless_asked_for_each_batchs(tmp_path, batch_statistics):
    mm = np.random.default_rng(1).integers(0, 255, (32, 8, 8, 3), dtype=np.uint8)
    classifier = models.resnet_classifier((8, 8, 3), 3, BANDS, width=0.25, depth=1)
    embedder = models.siamese_embedder((8, 8, 3), 3, 2, BANDS, "resnet", 0.25, 1)
    assert models.shares_trunk(classifier, embedder)
    assert not models.shares_trunk(models.thesis_classifier((8, 8, 3), 3, BANDS, width=1 / 16), embedder)
    models.copy_trunk_weights(classifier, embedder)
    pair = models.siamese_pair_model(embedder)
    pair.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    trainer = models.SiameseTrainer(pair, classifier, [b["mean"] for b in BANDS], batch_statistics=batch_statistics)
    trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=False)
    moving = [keras.ops.convert_to_numpy(n.moving_mean).copy() for n in _batch_norms(pair)]
    scales = [keras.ops.convert_to_numpy(n.gamma).copy() for n in _batch_norms(pair)]
    train = pipelines.pair_batches(mm, np.arange(32), batch_size=4, occlusion=(0.25, 0.5), seed=0)
    trainer.fit(train, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    after = [keras.ops.convert_to_numpy(n.moving_mean) for n in _batch_norms(pair)]
    # each batch's statistics move the moving averages; kept ones stay the classifier's
    assert any(not np.allclose(a, b) for a, b in zip(moving, after)) == batch_statistics
    # the scales train either way
    assert any(not np.allclose(a, keras.ops.convert_to_numpy(n.gamma)) for a, n in zip(scales, _batch_norms(pair)))


def test_saved_models_load_in_a_fresh_process(tmp_path):
    mm, classifier, pair, _ = _tiny_pair_setup(tmp_path)
    classifier.compile(optimizer="adam", loss=losses.PosWeightedBCE([2.0, 1.0, 0.5]))
    x = np.asarray(mm[:4], dtype="float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected_p.npy", keras.ops.convert_to_numpy(classifier(x, training=False)))
    np.save(tmp_path / "expected_s.npy", keras.ops.convert_to_numpy(pair([x, x[::-1]], training=False)))
    classifier.save(tmp_path / "c.keras")
    pair.save(tmp_path / "s.keras")
    backbone = models.backbone_classifier((32, 32, 4), 3, _bands(4), SMALL_BACKBONE)
    x4 = np.random.default_rng(3).uniform(0, 60, (2, 32, 32, 4)).astype("float32")
    np.save(tmp_path / "x4.npy", x4)
    np.save(tmp_path / "expected_b.npy", keras.ops.convert_to_numpy(backbone(x4, training=False)))
    backbone.save(tmp_path / "b.keras")
    script = (
        "import sys, numpy as np, keras, olr.training.models, olr.training.losses\n"
        "d = sys.argv[1]; x = np.load(d + '/x.npy')\n"
        "c = keras.models.load_model(d + '/c.keras'); s = keras.models.load_model(d + '/s.keras')\n"
        "assert type(c.loss).__name__ == 'PosWeightedBCE'\n"
        "np.testing.assert_allclose(c(x), np.load(d + '/expected_p.npy'), rtol=1e-5)\n"
        "np.testing.assert_allclose(s([x, x[::-1]]), np.load(d + '/expected_s.npy'), rtol=1e-4, atol=1e-6)\n"
        "b = keras.models.load_model(d + '/b.keras')\n"
        "np.testing.assert_allclose(b(np.load(d + '/x4.npy')), np.load(d + '/expected_b.npy'), rtol=1e-5, atol=1e-6)\n"
        "print(s.get_layer('embedder').output_shape)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(None, 3, 2)" in proc.stdout


def test_a_run_with_tiles_too_small_for_its_backbone_is_refused_before_its_folder_exists(tmp_path, _isolated_workspace):
    from olr.training import plan
    from tests.fixtures.runs import make_tiny_dataset

    tiny = make_tiny_dataset(tmp_path / "tiny")  # 16 x 16 px tiles
    with pytest.raises(
        OLRError, match=rf"{SMALL_BACKBONE} needs tiles of at least 32x32 pixels, but these tiles are 16x16"
    ):
        plan.prepare({"dataset": str(tiny), "model": SMALL_BACKBONE})
    with pytest.raises(OLRError, match="backbone_weights is set, but the family resnet"):
        plan.prepare({"dataset": str(tiny), "backbone_weights": "resnet50_notop.h5"})
    assert not (_isolated_workspace / "models").exists() or not any((_isolated_workspace / "models").iterdir())


# --- compute precision -------------------------------------------------------------------------


def test_auto_precision_is_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch):
    assert set(options.PRECISIONS) == {"auto", "float32", "mixed_bfloat16", "mixed_float16"}
    for chosen in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert fit.compute_policy(chosen, on_gpu=False) == chosen == fit.compute_policy(chosen, on_gpu=True)
    assert fit.compute_policy("auto", on_gpu=True) == "float32"
    with open("/proc/cpuinfo") as f:
        native = any(flag in f.read().split() for flag in fit.BFLOAT16_CPU_FLAGS)
    native = native and keras.backend.backend() == "tensorflow"
    assert fit.compute_policy("auto", on_gpu=False) == ("mixed_bfloat16" if native else "float32")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow without oneDNN: bfloat16 is no faster
    assert fit.compute_policy("auto", on_gpu=False) == "float32"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # another backend: CPU bfloat16 not measured
    assert fit.compute_policy("auto", on_gpu=False) == "float32"
    assert options.upgrade({"kind": "classifier"})["precision"] == "float32"  # runs from before: float32
    assert options.resolve({"dataset": "x"})["precision"] == "auto"


def test_mixed_bfloat16_keeps_inputs_and_outputs_in_float32_and_trains(tmp_path):
    side, n_labels = 16, 4
    mean, std = np.array([[b["mean"], b["std"]] for b in BANDS], "float32").T
    rng = np.random.default_rng(0)
    x = (mean + std * rng.standard_normal((32, side, side, 3))).astype("float32")
    y = (rng.random((32, n_labels)) < 0.4).astype("float32")
    with fit.dtype_policy("mixed_bfloat16"):
        model = models.resnet_classifier((side, side, 3), n_labels, BANDS, width=0.25, depth=1)
        embedder = models.siamese_embedder((side, side, 3), n_labels, 4, BANDS, "resnet", 0.25, 1)
        pair = models.siamese_pair_model(embedder)
    assert keras.config.dtype_policy().name == "float32"  # as it was before
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32" for layer in convs)
    for layer in (model.get_layer("normalize"), model.get_layer("probabilities"), embedder.get_layer("label_channels")):
        assert layer.compute_dtype == "float32"
    assert keras.ops.convert_to_numpy(model(x)).dtype == np.float32
    with fit.dtype_policy("mixed_bfloat16"):
        shift = pipelines.random_shift()  # built inside a bfloat16 training process, it moves raw values intact
    raw = np.full((2, side, side, 3), 10001.0, "float32")  # bfloat16 would round it to 9984 or 10048
    assert shift.compute_dtype == "float32" and (keras.ops.convert_to_numpy(shift(raw, training=True)) == raw).all()
    assert keras.ops.convert_to_numpy(pair([x, x])).dtype == np.float32
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    losses_seen = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert np.isfinite(losses_seen).all() and losses_seen[-1] < losses_seen[0]
    # the same weights computing in float32 give nearly the same probabilities (bfloat16 keeps ~3 digits)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert reloaded.get_layer(convs[0].name).compute_dtype == "bfloat16"  # a checkpoint computes as it trained
    twin = models.resnet_classifier((side, side, 3), n_labels, BANDS, width=0.25, depth=1)
    twin.set_weights(model.get_weights())
    p_mixed, p_float = (keras.ops.convert_to_numpy(m(x, training=False)) for m in (reloaded, twin))
    assert np.abs(p_mixed - p_float).max() < 0.05


def test_mixed_float16_scales_the_siamese_loss(tmp_path):
    mm, _, _, _ = _tiny_pair_setup(tmp_path)
    classifier = models.resnet_classifier((8, 8, 3), 3, BANDS, width=0.25, depth=1)
    with fit.dtype_policy("mixed_float16"):
        pair = models.siamese_pair_model(models.siamese_embedder((8, 8, 3), 3, 2, BANDS, "resnet", 0.25, 1))
        pair.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        trainer = models.SiameseTrainer(pair, classifier, [b["mean"] for b in BANDS])
        trainer.compile(optimizer=pair.optimizer, loss="mse", jit_compile=False)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)  # Keras wraps it for float16
    before = [w.copy() for w in pair.get_weights()]
    train = pipelines.pair_batches(mm, np.arange(32), batch_size=4, occlusion=(0.25, 0.5), seed=0)
    history = trainer.fit(train, steps_per_epoch=3, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert any(not np.array_equal(b, a) for b, a in zip(before, pair.get_weights()))
