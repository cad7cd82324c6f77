"""tf.data pipelines over the memory-mapped tile array (never loaded whole).

Batches are built from tile *indices*: shuffle (or not) -> batch -> a `tf.numpy_function`
reads the batch's rows from the memmap in ascending order (sequential disk access) and
puts them back in batch order -> cast to float32 -> augment -> prefetch. Tiles come out raw
(the models normalise them).

- `tile_batches`: classifier batches x (B, h, w, b) float32, or (x, y) with y (B, L).
  shuffle=False gives batches of consecutive tiles in index order (the thesis's in-order
  batches); shuffle=True reshuffles every epoch. Each augmentation has its own switch:
  brightness/contrast jitter (`jitter_batch`), shifts (`random_shift`), flips and 90-degree
  rotations (`augment_batch`), drawn per tile.
- `pair_batches`: endless Siamese batches ((a, b, box_a, box_b),): two independent random
  batches of tiles and one occlusion box per tile, drawn with tf ops for the whole batch
  from a counter-based seed (fresh every step, reproducible, resumable at any step).
- `fixed_pair_batches`: the same with fixed pairs and boxes (validation, same every epoch).

Their numpy twin for installs without TensorFlow, and the home of the augmentation strengths and
the occlusion side range both use: `olr.training.loaders`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# shared with the numpy loaders, which must not import TensorFlow
from olr.training.loaders import (
    BRIGHTNESS_JITTER,
    CONTRAST_JITTER,
    FIXED_BOXES_SEED_WORD,
    SHIFT_FRACTION,
    fixed_pairs,
    read_rows,
    side_range,
)

AUTOTUNE = tf.data.AUTOTUNE


def _reader(images: np.ndarray):
    """A tf function idx (B,) int64 -> (B, h, w, b) float32 tiles read from `images`."""
    shape = tuple(int(s) for s in images.shape[1:])
    dtype = tf.as_dtype(images.dtype)

    def read(idx):
        x = tf.numpy_function(lambda i: read_rows(images, i), [idx], dtype, stateful=False)
        x = tf.ensure_shape(x, (None, *shape))
        return tf.cast(x, tf.float32)

    return read


def augment_batch(x: tf.Tensor) -> tf.Tensor:
    """Random flips and (square tiles) transposes per tile: all 8 symmetries of the square,
    i.e. flips and 90-degree rotations, valid for nadir imagery. x: (B, h, w, b)."""
    x = tf.image.random_flip_left_right(x)
    x = tf.image.random_flip_up_down(x)
    if x.shape[1] is not None and x.shape[1] == x.shape[2]:
        swap = tf.random.uniform([tf.shape(x)[0], 1, 1, 1]) < 0.5
        x = tf.where(swap, tf.transpose(x, [0, 2, 1, 3]), x)
    return x


def random_shift() -> keras.layers.RandomTranslation:
    """A layer shifting each tile of a batch (B, h, w, b) by its own whole number of pixels, up to
    SHIFT_FRACTION of its side each way; the pixels shifted in mirror the edge (d c b a | a b c d)."""
    # float32 under any compute precision: the raw tiles (reflectance in the thousands) would lose digits
    return keras.layers.RandomTranslation(
        SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="reflect", interpolation="nearest", dtype="float32"
    )


def jitter_batch(x: tf.Tensor, mean, std) -> tf.Tensor:
    """Per tile and band, x' = mean + c * (x - mean) + d * std with contrast c and brightness d drawn
    uniformly (CONTRAST_JITTER, BRIGHTNESS_JITTER). x: (B, h, w, b) raw; mean, std: (b,) the bands'
    statistics, which the jitter is relative to because the models normalise raw tiles with them
    (Keras's RandomContrast and RandomBrightness work per image and on a fixed value range)."""
    n, bands = tf.shape(x)[0], tf.shape(x)[-1]
    c = tf.random.uniform([n, 1, 1, bands], 1.0 - CONTRAST_JITTER, 1.0 + CONTRAST_JITTER)
    d = tf.random.uniform([n, 1, 1, bands], -BRIGHTNESS_JITTER, BRIGHTNESS_JITTER)
    mean, std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
    return mean + c * (x - mean) + d * std


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    # Batches are already whole; under MirroredStrategy Keras splits each batch between replicas.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # No autotuning model: its background thread sleeps in periods that grow to about 10 s, and ending
    # an iterator (each validation pass, the end of each fit) waited for the period to run out, up to
    # 10 s a time (`bench siamese` took 10.24 or 20.48 s for any 10 steps). Without it, AUTOTUNE maps
    # run as many calls in parallel as there are cores and the prefetch buffer grows while the
    # consumer waits, which keeps up with the steps here (`python -m olr bench classifier`).
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(AUTOTUNE)


def process_share(ds: tf.data.Dataset, process_id: int, process_count: int) -> tf.data.Dataset:
    """This process's share of every batch of `ds` when several processes train one run
    (`olr.training.processes`): every process builds the same batches (the same seeds) and takes its
    contiguous part; Keras assembles the global batch from the processes' parts. `ds` itself for one process."""
    if process_count == 1:
        return ds

    def cut(t):
        part = tf.shape(t)[0] // process_count
        return t[process_id * part : (process_id + 1) * part]

    if isinstance(ds.element_spec, tuple):
        return ds.map(lambda *parts: tf.nest.map_structure(cut, parts))
    return ds.map(cut)


def tile_batches(
    images: np.ndarray,
    indices: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    batch_size: int = 64,
    shuffle: bool = False,
    augment: bool = False,
    shift: bool = False,
    jitter_bands: list[dict] | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of tiles `images[indices]` (and `targets` (len(indices), L) rows, if given).

    repeat: pass after pass without end (each reshuffled when shuffle=True), for epochs of a
    fixed number of steps shorter than a pass.
    augment: random flips and 90-degree rotations; shift: random shifts; jitter_bands: the
    dataset's meta["bands"] (each with "mean" and "std") for brightness/contrast jitter, None for none.

    images: (N, h, w, b) memmap; indices: (n,) rows to use, in the order batches take them
    when shuffle=False. Yields x (B, h, w, b) float32, or (x, y) with y (B, L) float32.
    """
    indices = np.asarray(indices, dtype=np.int64)
    read = _reader(images)
    if targets is None:
        ds = tf.data.Dataset.from_tensor_slices(indices)
    else:
        ds = tf.data.Dataset.from_tensor_slices((indices, np.asarray(targets, dtype=np.float32)))
    if shuffle:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()

    shifter = random_shift() if shift else None
    if jitter_bands is not None:
        band_mean = np.array([float(b["mean"]) for b in jitter_bands], dtype=np.float32)
        band_std = np.array([float(b["std"]) for b in jitter_bands], dtype=np.float32)

    def load(idx, y=None):
        x = read(idx)
        if jitter_bands is not None:
            x = jitter_batch(x, band_mean, band_std)
        if shifter is not None:
            x = shifter(x)
        if augment:
            x = augment_batch(x)
        return x if y is None else (x, y)

    return _finish(ds.map(load, num_parallel_calls=AUTOTUNE))


def random_boxes(n, h: int, w: int, min_frac: float, max_frac: float, seed) -> tf.Tensor:
    """(n, 4) int32 occlusion boxes (y0, x0, height, width), drawn with stateless tf ops.

    Each side is uniform over the whole pixels in [round(min_frac*side), round(max_frac*side)]
    (at least 1), the position uniform over all places where the box lies inside the tile.
    seed: (2,) int tensor.
    """
    lo_h, hi_h = side_range(h, min_frac, max_frac)
    lo_w, hi_w = side_range(w, min_frac, max_frac)
    u = tf.random.stateless_uniform([n, 4], seed=seed)  # (n, 4) in [0, 1)
    bh = lo_h + tf.cast(tf.floor(u[:, 0] * (hi_h - lo_h + 1)), tf.int32)
    bw = lo_w + tf.cast(tf.floor(u[:, 1] * (hi_w - lo_w + 1)), tf.int32)
    y0 = tf.cast(tf.floor(u[:, 2] * tf.cast(h - bh + 1, tf.float32)), tf.int32)
    x0 = tf.cast(tf.floor(u[:, 3] * tf.cast(w - bw + 1, tf.float32)), tf.int32)
    return tf.stack([y0, x0, bh, bw], axis=1)


def pair_batches(
    images: np.ndarray,
    indices: np.ndarray,
    *,
    batch_size: int,
    occlusion: tuple[float, float],
    seed: int = 0,
    start_step: int = 0,
    self_pair_share: float = 0.0,
) -> tf.data.Dataset:
    """Endless ((a, b, box_a, box_b),) batches for Siamese training.

    a, b: (B, h, w, b) float32 raw tiles, two independent random batches (2B distinct tiles
    per step, drawn without replacement within each pass over `indices`), except that the
    first round(self_pair_share * B) pairs pair a tile with itself (occluded independently:
    the pairs that teach the self-score s_i(x, x) the correlations are computed from); box_a, box_b:
    (B, 4) int32 from `random_boxes`, seeded by (seed, step) with step counting from
    `start_step`, so a resumed run does not repeat the occlusions of its first steps.
    """
    indices = np.asarray(indices, dtype=np.int64)
    _, h, w, _ = images.shape
    read = _reader(images)
    tiles = (
        tf.data.Dataset.from_tensor_slices(indices)
        .shuffle(len(indices), seed=seed + start_step, reshuffle_each_iteration=True)
        .repeat()
        .batch(2 * batch_size, drop_remainder=True)
    )
    steps = tf.data.Dataset.counter(start=start_step)

    n_self = round(self_pair_share * batch_size)

    def load(idx, step):
        x = read(idx)
        boxes = random_boxes(2 * batch_size, h, w, *occlusion, seed=tf.stack([tf.cast(seed, tf.int64), step]))
        a, b = x[:batch_size], x[batch_size:]
        if n_self:
            b = tf.concat([a[:n_self], b[n_self:]], axis=0)
        return ((a, b, boxes[:batch_size], boxes[batch_size:]),)

    return _finish(tf.data.Dataset.zip((tiles, steps)).map(load, num_parallel_calls=AUTOTUNE))


def fixed_pair_batches(
    images: np.ndarray,
    indices: np.ndarray,
    *,
    n_pairs: int,
    batch_size: int,
    occlusion: tuple[float, float],
    seed: int = 0,
    self_pair_share: float = 0.0,
) -> tf.data.Dataset:
    """Finite ((a, b, box_a, box_b),) batches with pairs and boxes fixed by `seed` (validation);
    the first round(self_pair_share * n_pairs) pairs pair a tile with itself, as in training."""
    _, h, w, _ = images.shape
    pick_a, pick_b = fixed_pairs(indices, n_pairs, seed, self_pair_share)
    boxes = random_boxes(
        2 * n_pairs, h, w, *occlusion, seed=tf.constant([seed, FIXED_BOXES_SEED_WORD], tf.int64)
    ).numpy()
    read = _reader(images)
    ds = tf.data.Dataset.from_tensor_slices((pick_a, pick_b, boxes[:n_pairs], boxes[n_pairs:])).batch(batch_size)

    def load(ia, ib, box_a, box_b):
        return ((read(ia), read(ib), box_a, box_b),)

    return _finish(ds.map(load, num_parallel_calls=AUTOTUNE))
