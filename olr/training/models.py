"""Keras models: the thesis classifier, a compact residual classifier, keras.applications
backbones, the Siamese network.

Every model takes raw tiles (B, h, w, b) as float32 (the dataset's values, not rescaled)
and starts with a `Normalization` layer holding the dataset's band mean/std, so a saved
`.keras` file carries its own input scaling.

Classifiers map a tile to (B, L) sigmoid probabilities:
- `thesis` (thesis appendix A): five blocks of two 3x3 convolutions with 64/64/64/128/256
  filters (x `width`), max-pooling after blocks 1-4, Flatten, Dense 2000, Dropout,
  Dense 1000, Dense L. Size rule for any tile: a block uses 'valid' padding (as the thesis)
  when its two convolutions leave at least 3 pixels on the smaller side, else 'same'; a
  pool follows blocks 1-4 only while the map is at least 4 pixels. On 178x178 tiles this
  is exactly the thesis network (178 -> 87 -> 41 -> 18 -> 7 -> 3); on 64x64 it is
  64 -> 30 -> 13 -> 4 -> 2 -> 2.
- `resnet` (default): 3x3 stem (stride 2 when the tile side is >= 64: at 10 m a 2-pixel step
  keeps every land-cover texture while quartering the cost), up to four stages
  of `depth` batch-norm residual blocks with 32/64/128/256 filters (x `width`), each stage
  after the first halving the map; stages stop while the map would drop below 4 pixels
  (16x16 tiles: 3 stages, 64x64: 4). Global average pooling, dropout, Dense L.
- the backbones of `olr.training.backbones.BACKBONES` (`resnet50`, `efficientnetv2b0`, ...):
  the `keras.applications` network without its top and without its own ImageNet input
  preprocessing (the `Normalization` layer scales the input), built for the tile's b bands
  and nested as one layer; global average pooling, dropout, Dense L. `width` and `depth` do
  not apply. Random initial weights, or ImageNet ones from a weights file the user supplies
  (`backbone_weights`; nothing is downloaded), adapted to b bands as `_load_backbone_weights`
  says. Tiles must be at least the application's minimum side (32 px).

Siamese (thesis appendix B): `siamese_embedder` (named "embedder") maps a tile to (B, L, k)
label embeddings: the trunk of the chosen family, a 1x1 convolution to L*k channels (linear,
so no label's channels can die), global average pooling, reshape. `siamese_pair_model`
applies it to two tiles and returns s_i(a, b) = e_i(a) . e_i(b), shape (B, L).
`SiameseTrainer` wraps a pair model and a frozen classifier for `fit`: the compiled train
step occludes both batches, computes the targets p_i(a') p_i(b') and regresses s on them.

`load_model` opens a run's checkpoint for prediction.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from olr.errors import OLRError
from olr.training.backbones import BACKBONES, check_architecture, check_tile_side

THESIS_FILTERS = (64, 64, 64, 128, 256)
RESNET_FILTERS = (32, 64, 128, 256)
#: Batch-norm statistics follow the data faster than Keras's 0.99: runs here are often only a
#: few hundred steps long, and slow moving averages make validation lag far behind training.
BN_MOMENTUM = 0.9
#: Under a mixed precision policy (`olr.training.fit.compute_policy`) the layers compute in bfloat16
#: or float16; the input normalisation and the outputs (probabilities, label embeddings and their
#: dot products) stay in float32, as Keras's mixed-precision guide advises for a model's outputs.
OUTPUT_DTYPE = "float32"


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


def normalization(bands: list[dict]) -> layers.Normalization:
    """Per-band (x - mean) / std from the dataset's meta["bands"]."""
    mean = np.array([float(b["mean"]) for b in bands], dtype=np.float32)
    std = np.array([max(float(b["std"]), 1e-6) for b in bands], dtype=np.float32)
    # float32 whatever the compute precision: raw values (reflectance in the thousands) would lose
    # their last digits in bfloat16; the normalised tiles are cast for the first convolution
    return layers.Normalization(mean=mean, variance=std**2, name="normalize", dtype=OUTPUT_DTYPE)


def _probabilities(n_labels: int) -> layers.Dense:
    """The classifier head, in float32 under mixed precision (the loss, metrics and thresholds read it)."""
    return layers.Dense(n_labels, activation="sigmoid", name="probabilities", dtype=OUTPUT_DTYPE)


def _tile_input(tile_shape, name="tile"):
    return keras.Input(shape=tuple(int(s) for s in tile_shape), dtype="float32", name=name)


# --- trunks: (B, h, w, b) normalised tiles -> (B, h', w', c) feature maps -----------------


def thesis_trunk(x, width: float = 1.0):
    """The appendix-A convolution blocks with the size rule of the module docstring."""
    size = min(int(x.shape[1]), int(x.shape[2]))
    for i, filters in enumerate(THESIS_FILTERS):
        padding = "valid" if size - 4 >= 3 else "same"
        if padding == "valid":
            size -= 4
        for _ in range(2):
            x = layers.Conv2D(
                _scaled(filters, width), 3, padding=padding, activation="relu", kernel_initializer="he_normal"
            )(x)
        if i < 4 and size >= 4:
            x = layers.MaxPooling2D(2)(x)
            size //= 2
    return x


def residual_block(x, filters: int, stride: int = 1):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    if stride != 1 or int(x.shape[-1]) != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet_trunk(x, width: float = 1.0, depth: int = 2):
    """Stem + residual stages (see the module docstring for the size rule)."""
    side = min(int(x.shape[1]), int(x.shape[2]))
    stem_stride = 2 if side >= 64 else 1
    x = layers.Conv2D(_scaled(RESNET_FILTERS[0], width), 3, strides=stem_stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    side = math.ceil(side / stem_stride)
    n_stages = max(1, min(len(RESNET_FILTERS), math.floor(math.log2(max(side, 1) / 4)) + 1))
    for stage in range(n_stages):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, _scaled(RESNET_FILTERS[stage], width), stride)
    return x


def backbone_trunk(family: str, x, weights: str | os.PathLike | None = None):
    """The keras.applications network `family` on x (B, h, w, b), nested as one layer -> its last
    feature map (B, h', w', c), about h/32 x w/32. `weights`: its no-top ImageNet weights file, or None."""
    h, w, bands = (int(s) for s in x.shape[1:])
    check_tile_side(family, (h, w))
    network = _application(family, (h, w, bands))
    if weights is not None:
        _load_backbone_weights(network, family, weights)
    for layer in _nested_layers(network):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM  # the applications use 0.99 or 0.999; see BN_MOMENTUM
    return network(x)


def _application(family: str, input_shape) -> keras.Model:
    """keras.applications' `family` for (h, w, b) inputs: random weights, no top, no input preprocessing."""
    constructor = getattr(keras.applications, BACKBONES[family].application)
    # Tiles arrive normalised by our Normalization layer; the ImageNet rescaling some applications
    # build in would distort them (ResNet50 has none inside the model, so no switch).
    switch = (
        {"include_preprocessing": False} if "include_preprocessing" in inspect.signature(constructor).parameters else {}
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This model usually expects 1 or 3 input channels")  # b bands on purpose
        return constructor(weights=None, include_top=False, input_shape=tuple(input_shape), **switch)


def _nested_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested Sequential or Functional (ConvNeXt's stem)
            yield from _nested_layers(layer)


def _load_backbone_weights(network: keras.Model, family: str, path: str | os.PathLike) -> None:
    """Load the no-top ImageNet weights file `path` into `network` (built by `_application`).

    With b != 3 bands the file goes into a 3-band build of the same application first, and
    every weight is copied from there except the first convolution's kernel (kh, kw, 3, f):
    each of the b bands gets the mean of the three RGB input channels' kernels, scaled by
    3/b, so that on inputs of comparable scale the convolution's outputs keep the scale the
    ImageNet weights were trained for (b equal bands give exactly the RGB response to gray).
    A Keras 3 `.weights.h5` saved with the top loads (its backbone weights are the no-top
    ones); a legacy `.h5` with the top, like another family's file, is refused.
    """
    name = BACKBONES[family].application
    path = Path(path)
    if not path.is_file():
        raise OLRError(
            f"The backbone weights file {path} does not exist; give the path of keras.applications.{name}'s "
            "no-top ImageNet weights, or leave backbone_weights blank for random initial weights."
        )
    h, w, bands = network.input_shape[1:]
    rgb = network if bands == 3 else _application(family, (h, w, 3))
    try:
        rgb.load_weights(path)
    except Exception as e:  # another family's file, a legacy one with the top, a corrupt or foreign file
        raise OLRError(
            f"The backbone weights file {path} does not fit keras.applications.{name} without its top "
            f"({type(e).__name__}); supply {name}'s no-top ImageNet weights (the *_notop.h5 file Keras "
            f"downloads, or save_weights of {name}(include_top=False)) or leave backbone_weights blank."
        ) from None
    if rgb is network:
        return
    # Two builds of one constructor differ only in the first convolution's input channels, so their
    # variables pair up in order.
    for source, target in zip(rgb.weights, network.weights, strict=True):
        value = source.numpy()
        if value.shape != tuple(target.shape):
            value = np.repeat(value.mean(axis=2, keepdims=True), bands, axis=2) * (3 / bands)
        target.assign(value)


def _trunk(family: str, x, width: float, depth: int, backbone_weights=None):
    check_architecture(family, (int(x.shape[1]), int(x.shape[2])), backbone_weights)
    if family == "thesis":
        return thesis_trunk(x, width)
    if family == "resnet":
        return resnet_trunk(x, width, depth)
    if family in BACKBONES:
        return backbone_trunk(family, x, backbone_weights)
    raise ValueError(f"unknown model family {family!r}")


# --- classifiers ---------------------------------------------------------------------------


def thesis_classifier(
    tile_shape, n_labels: int, bands: list[dict], width: float = 1.0, dropout: float = 0.5
) -> keras.Model:
    """Appendix-A classifier for (h, w, b) tiles -> (B, n_labels) probabilities."""
    inputs = _tile_input(tile_shape)
    x = thesis_trunk(normalization(bands)(inputs), width)
    x = layers.Flatten()(x)
    x = layers.Dense(_scaled(2000, width), activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(_scaled(1000, width), activation="relu")(x)
    outputs = _probabilities(n_labels)(x)
    return keras.Model(inputs, outputs, name="thesis_classifier")


def resnet_classifier(
    tile_shape, n_labels: int, bands: list[dict], width: float = 1.0, depth: int = 2, dropout: float = 0.5
) -> keras.Model:
    """Compact residual classifier for (h, w, b) tiles -> (B, n_labels) probabilities."""
    inputs = _tile_input(tile_shape)
    x = resnet_trunk(normalization(bands)(inputs), width, depth)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = _probabilities(n_labels)(x)
    return keras.Model(inputs, outputs, name="resnet_classifier")


def backbone_classifier(
    tile_shape,
    n_labels: int,
    bands: list[dict],
    family: str,
    dropout: float = 0.5,
    weights: str | os.PathLike | None = None,
) -> keras.Model:
    """keras.applications backbone `family` for (h, w, b) tiles -> (B, n_labels) probabilities;
    `weights`: the application's no-top ImageNet weights file (None: random initial weights)."""
    inputs = _tile_input(tile_shape)
    x = backbone_trunk(family, normalization(bands)(inputs), weights)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = _probabilities(n_labels)(x)
    return keras.Model(inputs, outputs, name=f"{family}_classifier")


def classifier(cfg: dict, tile_shape, n_labels: int, bands: list[dict]) -> keras.Model:
    """The classifier named by cfg["model"], sized by width/depth/dropout (a backbone by
    dropout and started from cfg["backbone_weights"])."""
    family, weights = cfg["model"], cfg["backbone_weights"]
    check_architecture(family, tile_shape, weights)
    if family in BACKBONES:
        return backbone_classifier(tile_shape, n_labels, bands, family, cfg["dropout"], weights)
    if family == "thesis":
        return thesis_classifier(tile_shape, n_labels, bands, cfg["width"], cfg["dropout"])
    return resnet_classifier(tile_shape, n_labels, bands, cfg["width"], cfg["depth"], cfg["dropout"])


# --- Siamese -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="olr")
class LabelDot(layers.Layer):
    """Per-label dot product: (B, L, k), (B, L, k) -> (B, L)."""

    def call(self, inputs):
        a, b = inputs
        return ops.sum(a * b, axis=-1)


@keras.saving.register_keras_serializable(package="olr")
class SelectChannels(layers.Layer):
    """The channels `indices` of the last axis, in that order: a dataset's bands in the order a model
    takes them, or a model's outputs in the order of a run's labels (`olr.workflows.teachers`)."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return ops.take(inputs, ops.convert_to_tensor(self.indices, dtype="int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


def siamese_embedder(
    tile_shape,
    n_labels: int,
    k: int,
    bands: list[dict],
    family: str = "resnet",
    width: float = 1.0,
    depth: int = 2,
    backbone_weights: str | os.PathLike | None = None,
) -> keras.Model:
    """Tile (B, h, w, b) -> label embeddings (B, L, k); the model is named "embedder".
    `backbone_weights`: a backbone trunk's no-top ImageNet weights file (None: random)."""
    inputs = _tile_input(tile_shape)
    x = _trunk(family, normalization(bands)(inputs), width, depth, backbone_weights)
    # Small initial embeddings: trunk features (possibly a trained classifier's) are large, and
    # unscaled products e_i(a).e_i(b) would start in the hundreds, wrecking the first updates.
    head_init = keras.initializers.VarianceScaling(scale=0.01, mode="fan_in")
    x = layers.Conv2D(n_labels * k, 1, kernel_initializer=head_init, name="label_channels", dtype=OUTPUT_DTYPE)(x)
    x = layers.GlobalAveragePooling2D(dtype=OUTPUT_DTYPE)(x)
    outputs = layers.Reshape((n_labels, k), name="label_embeddings", dtype=OUTPUT_DTYPE)(x)
    return keras.Model(inputs, outputs, name="embedder")


def _shared_prefix(source: keras.Model, target: keras.Model):
    """The (source, target) layer pairs `source` and `target` share as a prefix: same type, same weight shapes."""
    for src, dst in zip(source.layers, target.layers):
        if type(src) is not type(dst):
            return
        if [w.shape for w in src.weights] != [w.shape for w in dst.weights]:
            return
        yield src, dst


def copy_trunk_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy the weights of the layers `source` and `target` share as a prefix; return how many.

    Classifier and embedder of one family, width and depth are built by the same trunk code,
    so their layers match one for one up to the heads (a backbone is one nested layer, copied
    whole; its layers count one each). Starting the Siamese trunk from the
    trained classifier's gives it label-aware features from the first step: trained from
    scratch, the product e_i(a).e_i(b) of two small embeddings gets vanishing gradients.
    """
    copied = 0
    for src, dst in _shared_prefix(source, target):
        if src.weights:
            dst.set_weights(src.get_weights())
            copied += _weighted_leaf_layers(src)
    return copied


def shares_trunk(source: keras.Model, target: keras.Model) -> bool:
    """Whether `target` has a trunk `copy_trunk_weights` fills from `source` (more than the input scaling)."""
    return sum(_weighted_leaf_layers(src) for src, _ in _shared_prefix(source, target) if src.weights) > 1


def _weighted_leaf_layers(layer) -> int:
    if hasattr(layer, "layers"):
        return sum(_weighted_leaf_layers(inner) for inner in layer.layers)
    return 1 if layer.weights else 0


def siamese_pair_model(embedder: keras.Model) -> keras.Model:
    """Two tiles -> s_i(a, b) = e_i(a) . e_i(b), shape (B, L); shares `embedder`'s weights."""
    shape = embedder.input_shape[1:]
    a = _tile_input(shape, "tile_a")
    b = _tile_input(shape, "tile_b")
    scores = LabelDot(name="label_scores", dtype=OUTPUT_DTYPE)([embedder(a), embedder(b)])
    return keras.Model([a, b], scores, name="siamese")


def occlude(images, boxes, fill):
    """Set one rectangle per image to `fill`, all images at once (no Python loop).

    images: (B, h, w, b) float32 raw tiles; boxes: (B, 4) int32 rows (y0, x0, height, width);
    fill: (b,) float32 per-band value (the band mean = 0 after normalisation, or 0).
    """
    h, w = int(images.shape[1]), int(images.shape[2])
    boxes = ops.cast(boxes, "int32")
    y0, x0, bh, bw = (boxes[:, i : i + 1] for i in range(4))  # each (B, 1)
    rows = ops.arange(h, dtype="int32")[None, :]
    cols = ops.arange(w, dtype="int32")[None, :]
    in_rows = ops.logical_and(rows >= y0, rows < y0 + bh)  # (B, h)
    in_cols = ops.logical_and(cols >= x0, cols < x0 + bw)  # (B, w)
    mask = ops.logical_and(in_rows[:, :, None, None], in_cols[:, None, :, None])  # (B, h, w, 1)
    return ops.where(mask, ops.cast(fill, images.dtype), images)


class SiameseTrainer(keras.Model):
    """`fit`-able wrapper: occlusion and frozen-classifier targets inside the compiled step.

    Data: `((a, b, box_a, box_b),)` with a, b (B, h, w, b) raw tiles and boxes (B, 4) from
    `olr.training.pipelines`. The forward pass occludes a and b and returns s(a', b') (B, L);
    `compute_loss` computes the targets p(a') * p(b') with the frozen classifier
    (training=False) and applies the compiled loss (MSE). Keras's own train/test step does
    the rest (gradients, distribution scaling), so the whole step is one compiled function.
    a' and b' go through the embedder and the classifier as one batch of 2B tiles (one pass
    each instead of two; the scores equal the pair model's, batch-norm statistics in
    training mode are taken over the 2B tiles; `batch_statistics=False` keeps the trunk's batch-norm
    statistics instead, as for fine-tuning a trained network). Only `siamese`'s weights train;
    checkpoints save `siamese` (the pair model), not this wrapper.
    """

    def __init__(self, siamese: keras.Model, classifier: keras.Model, fill, batch_statistics=True, **kwargs):
        super().__init__(**kwargs)
        self.batch_statistics = bool(batch_statistics)
        self.siamese = siamese
        self.embedder = siamese.get_layer("embedder")
        self.classifier = classifier
        self.classifier.trainable = False
        self.fill = np.asarray(fill, dtype=np.float32)

    def occluded(self, x):
        """(2B, h, w, b): a' then b'."""
        a, b, box_a, box_b = x
        return ops.concatenate([occlude(a, box_a, self.fill), occlude(b, box_b, self.fill)], axis=0)

    @staticmethod
    def _halves(t):
        n = ops.shape(t)[0] // 2
        return t[:n], t[n:]

    def call(self, x, training=False):
        # without batch statistics the trunk's batch norms run as at inference (their moving statistics
        # kept, their scales and offsets still trained); the embedder has no dropout, so that is all `training` does
        embedded = self.embedder(self.occluded(x), training=training and self.batch_statistics)
        e_a, e_b = self._halves(embedded)
        return ops.sum(e_a * e_b, axis=-1)  # s_i(a', b'), as LabelDot in the pair model

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        p_a, p_b = self._halves(self.classifier(self.occluded(x), training=False))  # same boxes as call()
        targets = ops.stop_gradient(p_a * p_b)
        return super().compute_loss(x, targets, y_pred, sample_weight, training=training)


def load_model(checkpoint: str | os.PathLike) -> keras.Model:
    """A run's checkpoint file (`olr.runs.store.RunLayout(run).best` or `.last`) as an uncompiled
    keras.Model; for a Siamese run the pair model, whose "embedder" maps tiles to (B, L, k)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise OLRError(
            f"The run {path.parent.name} has no {path.name} yet; wait for its first epoch to end or pick another run."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # a corrupt or foreign file
        raise OLRError(
            f"The checkpoint {path} could not be loaded ({type(e).__name__}: {e}); retrain the run."
        ) from None
