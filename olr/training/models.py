"""Keras models: the thesis classifier, a compact residual classifier, the Siamese network.

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

Siamese (thesis appendix B): `siamese_embedder` (named "embedder") maps a tile to (B, L, k)
label embeddings: the trunk of the chosen family, a 1x1 convolution to L*k channels (linear,
so no label's channels can die), global average pooling, reshape. `siamese_pair_model`
applies it to two tiles and returns s_i(a, b) = e_i(a) . e_i(b), shape (B, L).
`SiameseTrainer` wraps a pair model and a frozen classifier for `fit`: the compiled train
step occludes both batches, computes the targets p_i(a') p_i(b') and regresses s on them.

`load_model` opens a run's checkpoint for prediction.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from olr.errors import OLRError

THESIS_FILTERS = (64, 64, 64, 128, 256)
RESNET_FILTERS = (32, 64, 128, 256)
#: Batch-norm statistics follow the data faster than Keras's 0.99: runs here are often only a
#: few hundred steps long, and slow moving averages make validation lag far behind training.
BN_MOMENTUM = 0.9


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


def normalization(bands: list[dict]) -> layers.Normalization:
    """Per-band (x - mean) / std from the dataset's meta["bands"]."""
    mean = np.array([float(b["mean"]) for b in bands], dtype=np.float32)
    std = np.array([max(float(b["std"]), 1e-6) for b in bands], dtype=np.float32)
    return layers.Normalization(mean=mean, variance=std**2, name="normalize")


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


def _trunk(family: str, x, width: float, depth: int):
    if family == "thesis":
        return thesis_trunk(x, width)
    if family == "resnet":
        return resnet_trunk(x, width, depth)
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
    outputs = layers.Dense(n_labels, activation="sigmoid", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="thesis_classifier")


def resnet_classifier(
    tile_shape, n_labels: int, bands: list[dict], width: float = 1.0, depth: int = 2, dropout: float = 0.5
) -> keras.Model:
    """Compact residual classifier for (h, w, b) tiles -> (B, n_labels) probabilities."""
    inputs = _tile_input(tile_shape)
    x = resnet_trunk(normalization(bands)(inputs), width, depth)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="sigmoid", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet_classifier")


def classifier(cfg: dict, tile_shape, n_labels: int, bands: list[dict]) -> keras.Model:
    """The classifier named by cfg["model"], sized by width/depth/dropout."""
    if cfg["model"] == "thesis":
        return thesis_classifier(tile_shape, n_labels, bands, cfg["width"], cfg["dropout"])
    return resnet_classifier(tile_shape, n_labels, bands, cfg["width"], cfg["depth"], cfg["dropout"])


# --- Siamese -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="olr")
class LabelDot(layers.Layer):
    """Per-label dot product: (B, L, k), (B, L, k) -> (B, L)."""

    def call(self, inputs):
        a, b = inputs
        return ops.sum(a * b, axis=-1)


def siamese_embedder(
    tile_shape, n_labels: int, k: int, bands: list[dict], family: str = "resnet", width: float = 1.0, depth: int = 2
) -> keras.Model:
    """Tile (B, h, w, b) -> label embeddings (B, L, k); the model is named "embedder"."""
    inputs = _tile_input(tile_shape)
    x = _trunk(family, normalization(bands)(inputs), width, depth)
    # Small initial embeddings: trunk features (possibly a trained classifier's) are large, and
    # unscaled products e_i(a).e_i(b) would start in the hundreds, wrecking the first updates.
    head_init = keras.initializers.VarianceScaling(scale=0.01, mode="fan_in")
    x = layers.Conv2D(n_labels * k, 1, kernel_initializer=head_init, name="label_channels")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Reshape((n_labels, k), name="label_embeddings")(x)
    return keras.Model(inputs, outputs, name="embedder")


def copy_trunk_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy the weights of the layers `source` and `target` share as a prefix; return how many.

    Classifier and embedder of one family, width and depth are built by the same trunk code,
    so their layers match one for one up to the heads. Starting the Siamese trunk from the
    trained classifier's gives it label-aware features from the first step: trained from
    scratch, the product e_i(a).e_i(b) of two small embeddings gets vanishing gradients.
    """
    copied = 0
    for src, dst in zip(source.layers, target.layers):
        if type(src) is not type(dst):
            break
        weights = src.get_weights()
        if [w.shape for w in weights] != [w.shape for w in dst.get_weights()]:
            break
        if weights:
            dst.set_weights(weights)
            copied += 1
    return copied


def siamese_pair_model(embedder: keras.Model) -> keras.Model:
    """Two tiles -> s_i(a, b) = e_i(a) . e_i(b), shape (B, L); shares `embedder`'s weights."""
    shape = embedder.input_shape[1:]
    a = _tile_input(shape, "tile_a")
    b = _tile_input(shape, "tile_b")
    scores = LabelDot(name="label_scores")([embedder(a), embedder(b)])
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
    training mode are taken over the 2B tiles). Only `siamese`'s weights train;
    checkpoints save `siamese` (the pair model), not this wrapper.
    """

    def __init__(self, siamese: keras.Model, classifier: keras.Model, fill, **kwargs):
        super().__init__(**kwargs)
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
        e_a, e_b = self._halves(self.embedder(self.occluded(x), training=training))
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
