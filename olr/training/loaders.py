"""Backend-neutral input over the memory-mapped tile array: `keras.utils.PyDataset`s in numpy only.

The same functions, batches and meaning as the tf.data pipelines (`olr.training.pipelines`), for an
install without TensorFlow (Keras on JAX); `olr.training.inputs.batches_module()` chooses between the
two. Also home of what both share (the augmentation strengths, the occlusion side range, the ordered
memmap read), so that this module never imports TensorFlow and the pipelines import them from here.

Every batch is a pure function of (seed, its position), drawn with a numpy Generator seeded by that
position: a batch reads its rows from the memmap in ascending order (`read_rows`), casts them to
float32 and augments them in numpy. Tiles come out raw (the models normalise them).

- `tile_batches`: classifier batches x (B, h, w, b) float32, or (x, y) with y (B, L) float32.
  Shuffled passes are permutations seeded by (seed, pass); a finite dataset starts a new pass at
  every Keras epoch (`on_epoch_end`), an endless one (repeat=True) at every len(indices)/B batches.
- `pair_batches`: endless ((a, b, box_a, box_b),) Siamese batches; step s takes the next 2B tiles
  of an endless sequence of shuffled passes and draws its boxes from (seed, s).
- `fixed_pair_batches`: the same with pairs and boxes fixed by `seed` (validation).

No worker threads or processes: a batch is a memmap read and a few vectorised numpy operations.
"""

from __future__ import annotations

import math

import keras
import numpy as np

#: A shift moves a tile by up to this fraction of its side each way: at least (7/8)^2, about 77 %, of
#: its area stays in view, so the labels (the area fractions of the whole tile) mostly still hold.
SHIFT_FRACTION = 1 / 8
#: Contrast factors are drawn from [1 - CONTRAST_JITTER, 1 + CONTRAST_JITTER] and brightness offsets
#: from [-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER] band standard deviations: of the order of the
#: differences between acquisitions (sun angle, haze, calibration), and small next to the spread
#: between land covers (one std), so a tile keeps its spectral signature.
CONTRAST_JITTER = 0.1
BRIGHTNESS_JITTER = 0.1
#: the second seed word of the fixed validation boxes (both input engines), apart from any (seed, step) of training
FIXED_BOXES_SEED_WORD = 2**30


def read_rows(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """images[idx] for a memmap, reading rows in ascending order; result in `idx` order."""
    idx = np.asarray(idx, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx), *images.shape[1:]), dtype=images.dtype)
    out[order] = images[idx[order]]
    return out


def side_range(side: int, min_frac: float, max_frac: float) -> tuple[int, int]:
    """The whole-pixel range [lo, hi] of an occlusion box's side: round(min_frac*side) to
    round(max_frac*side), at least 1 and at most `side`."""
    lo = min(side, max(1, round(min_frac * side)))
    hi = min(side, max(lo, round(max_frac * side)))
    return lo, hi


def random_boxes(n: int, h: int, w: int, min_frac: float, max_frac: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) int32 occlusion boxes (y0, x0, height, width): each side uniform over `side_range`,
    the position uniform over all places where the box lies inside the (h, w) tile."""
    lo_h, hi_h = side_range(h, min_frac, max_frac)
    lo_w, hi_w = side_range(w, min_frac, max_frac)
    bh = rng.integers(lo_h, hi_h + 1, n)
    bw = rng.integers(lo_w, hi_w + 1, n)
    y0 = rng.integers(0, h - bh + 1)
    x0 = rng.integers(0, w - bw + 1)
    return np.stack([y0, x0, bh, bw], axis=1).astype(np.int32)


def augment_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and (square tiles) transposes per tile: all 8 symmetries of the square,
    i.e. flips and 90-degree rotations, valid for nadir imagery. x: (B, h, w, b)."""
    n, h, w, _ = x.shape
    flip_lr, flip_ud, swap = rng.random(n) < 0.5, rng.random(n) < 0.5, (rng.random(n) < 0.5) & (h == w)
    out = np.empty_like(x)
    for i, tile in enumerate(x):  # views, one copy per tile (a boolean-masked batch copies twice)
        tile = tile[:, ::-1] if flip_lr[i] else tile
        tile = tile[::-1] if flip_ud[i] else tile
        out[i] = tile.transpose(1, 0, 2) if swap[i] else tile
    return out


def _mirrored(positions: np.ndarray, side: int) -> np.ndarray:
    """Pixel positions up to one side beyond [0, side) folded back inside as a mirror would: d c b a | a b c d."""
    positions = np.where(positions < 0, -positions - 1, positions)
    return np.where(positions >= side, 2 * side - positions - 1, positions)


def shift_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each tile of x (B, h, w, b) shifted by its own whole number of pixels, up to SHIFT_FRACTION
    of its side each way; the pixels shifted in mirror the edge (d c b a | a b c d), as Keras's
    RandomTranslation(fill_mode="reflect") does for the pipelines."""
    n, h, w, _ = x.shape
    reach_y, reach_x = round(h * SHIFT_FRACTION), round(w * SHIFT_FRACTION)
    dy = rng.integers(-reach_y, reach_y + 1, n)
    dx = rng.integers(-reach_x, reach_x + 1, n)
    out = np.empty_like(x)
    for i, tile in enumerate(x):
        out[i] = tile[_mirrored(np.arange(h) - dy[i], h)][:, _mirrored(np.arange(w) - dx[i], w)]
    return out


def jitter_batch(x: np.ndarray, mean: np.ndarray, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per tile and band, x' = mean + c * (x - mean) + d * std with contrast c and brightness d drawn
    uniformly (CONTRAST_JITTER, BRIGHTNESS_JITTER). x: (B, h, w, b) float32 raw; mean, std: (b,)
    float32, the bands' statistics, which the jitter is relative to because the models normalise
    raw tiles with them."""
    shape = (len(x), 1, 1, x.shape[-1])
    c = rng.uniform(1.0 - CONTRAST_JITTER, 1.0 + CONTRAST_JITTER, shape).astype(np.float32)
    d = rng.uniform(-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER, shape).astype(np.float32)
    x = x - mean  # then in place: the batch is the largest array here
    x *= c
    x += mean + d * std
    return x


def _tiles(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return read_rows(images, idx).astype(np.float32)


class TileBatches(keras.utils.PyDataset):
    """What `tile_batches` returns (see there)."""

    def __init__(
        self,
        images,
        indices,
        targets,
        *,
        batch_size,
        shuffle,
        augment,
        shift,
        jitter_bands,
        seed,
        drop_remainder,
        repeat,
    ):
        super().__init__()
        self.images, self.indices = images, np.asarray(indices, dtype=np.int64)
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)
        self.batch_size, self.shuffle, self.augment, self.shift, self.seed = batch_size, shuffle, augment, shift, seed
        self.repeat = repeat
        n = len(self.indices)
        self.batches_per_pass = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        self.jitter = None
        if jitter_bands is not None:
            self.jitter = (
                np.array([float(b["mean"]) for b in jitter_bands], dtype=np.float32),
                np.array([float(b["std"]) for b in jitter_bands], dtype=np.float32),
            )
        self.epoch = 0  # the pass of a finite dataset; Keras ends an epoch with on_epoch_end

    @property
    def num_batches(self) -> int | None:
        return None if self.repeat else self.batches_per_pass  # None: endless, for Keras

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def _order(self, pass_: int) -> np.ndarray:
        n = len(self.indices)
        return np.random.default_rng([self.seed, pass_]).permutation(n) if self.shuffle else np.arange(n)

    def __getitem__(self, i: int):
        if self.repeat:
            pass_, position = divmod(i, self.batches_per_pass)
        elif 0 <= i < self.batches_per_pass:
            pass_, position = self.epoch, i
        else:
            raise IndexError(f"batch {i} of {self.batches_per_pass}")
        rows = self._order(pass_)[position * self.batch_size : (position + 1) * self.batch_size]
        x = _tiles(self.images, self.indices[rows])
        rng = np.random.default_rng([self.seed, pass_, position])
        if self.jitter is not None:
            x = jitter_batch(x, *self.jitter, rng)
        if self.shift:
            x = shift_batch(x, rng)
        if self.augment:
            x = augment_batch(x, rng)
        return x if self.targets is None else (x, self.targets[rows])


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
) -> TileBatches:
    """Batches of tiles `images[indices]` (and `targets` (len(indices), L) rows, if given).

    repeat: pass after pass without end (each reshuffled when shuffle=True), for epochs of a
    fixed number of steps shorter than a pass.
    augment: random flips and 90-degree rotations; shift: random shifts; jitter_bands: the
    dataset's meta["bands"] (each with "mean" and "std") for brightness/contrast jitter, None for none.

    images: (N, h, w, b) memmap; indices: (n,) rows to use, in the order batches take them
    when shuffle=False. Yields x (B, h, w, b) float32, or (x, y) with y (B, L) float32.
    """
    return TileBatches(
        images,
        indices,
        targets,
        batch_size=batch_size,
        shuffle=shuffle,
        augment=augment,
        shift=shift,
        jitter_bands=jitter_bands,
        seed=seed,
        drop_remainder=drop_remainder,
        repeat=repeat,
    )


class PairBatches(keras.utils.PyDataset):
    """What `pair_batches` returns (see there)."""

    def __init__(self, images, indices, *, batch_size, occlusion, seed, start_step, self_pair_share):
        super().__init__()
        self.images, self.indices = images, np.asarray(indices, dtype=np.int64)
        self.batch_size, self.occlusion, self.seed, self.start_step = batch_size, occlusion, seed, start_step
        self.n_self = round(self_pair_share * batch_size)
        self._passes: dict[int, np.ndarray] = {}  # the permutations of the passes the last step read

    @property
    def num_batches(self) -> None:
        return None  # endless

    def _positions(self, step: int) -> np.ndarray:
        """Rows (into `indices`) of the 2B tiles of `step`: positions 2B*step .. 2B*(step+1) - 1 of an
        endless sequence of permutations, one per pass, seeded by (seed, pass)."""
        n, size = len(self.indices), 2 * self.batch_size
        positions = np.arange(step * size, (step + 1) * size)
        passes = positions // n
        self._passes = {
            p: self._passes[p] if p in self._passes else np.random.default_rng([self.seed, p]).permutation(n)
            for p in np.unique(passes).tolist()
        }
        return np.concatenate([self._passes[p][positions[passes == p] % n] for p in self._passes])

    def __getitem__(self, i: int):
        step = self.start_step + i
        x = _tiles(self.images, self.indices[self._positions(step)])
        _, h, w, _ = self.images.shape
        boxes = random_boxes(2 * self.batch_size, h, w, *self.occlusion, np.random.default_rng([self.seed, step]))
        a, b = x[: self.batch_size], x[self.batch_size :]
        b[: self.n_self] = a[: self.n_self]
        return ((a, b, boxes[: self.batch_size], boxes[self.batch_size :]),)


def pair_batches(
    images: np.ndarray,
    indices: np.ndarray,
    *,
    batch_size: int,
    occlusion: tuple[float, float],
    seed: int = 0,
    start_step: int = 0,
    self_pair_share: float = 0.0,
) -> PairBatches:
    """Endless ((a, b, box_a, box_b),) batches for Siamese training.

    a, b: (B, h, w, b) float32 raw tiles, two independent random batches (2B distinct tiles
    per step, drawn without replacement within each pass over `indices`), except that the
    first round(self_pair_share * B) pairs pair a tile with itself (occluded independently:
    the pairs that teach the self-score s_i(x, x) the correlations are computed from); box_a, box_b:
    (B, 4) int32 from `random_boxes`, seeded by (seed, step) with step counting from
    `start_step`, so a resumed run does not repeat the occlusions of its first steps (and takes
    the tiles the interrupted run would have taken next).
    """
    return PairBatches(
        images,
        indices,
        batch_size=batch_size,
        occlusion=occlusion,
        seed=seed,
        start_step=start_step,
        self_pair_share=self_pair_share,
    )


class FixedPairBatches(keras.utils.PyDataset):
    """What `fixed_pair_batches` returns (see there)."""

    def __init__(self, images, pick_a, pick_b, boxes, batch_size):
        super().__init__()
        self.images, self.pick_a, self.pick_b, self.boxes, self.batch_size = images, pick_a, pick_b, boxes, batch_size

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.pick_a) / self.batch_size)

    def __getitem__(self, i: int):
        if not 0 <= i < self.num_batches:
            raise IndexError(f"batch {i} of {self.num_batches}")
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        n = len(self.pick_a)
        a, b = _tiles(self.images, self.pick_a[part]), _tiles(self.images, self.pick_b[part])
        return ((a, b, self.boxes[:n][part], self.boxes[n:][part]),)


def fixed_pair_batches(
    images: np.ndarray,
    indices: np.ndarray,
    *,
    n_pairs: int,
    batch_size: int,
    occlusion: tuple[float, float],
    seed: int = 0,
    self_pair_share: float = 0.0,
) -> FixedPairBatches:
    """Finite ((a, b, box_a, box_b),) batches with pairs and boxes fixed by `seed` (validation);
    the first round(self_pair_share * n_pairs) pairs pair a tile with itself, as in training."""
    _, h, w, _ = images.shape
    pick_a, pick_b = fixed_pairs(indices, n_pairs, seed, self_pair_share)
    boxes = random_boxes(2 * n_pairs, h, w, *occlusion, np.random.default_rng([seed, FIXED_BOXES_SEED_WORD]))
    return FixedPairBatches(images, pick_a, pick_b, boxes, batch_size)


def fixed_pairs(indices: np.ndarray, n_pairs: int, seed: int, self_pair_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(pick_a, pick_b) rows of `indices` for the validation pairs of `fixed_pair_batches` (both input engines):
    drawn with replacement from `seed`, the first round(self_pair_share * n_pairs) a tile with itself."""
    indices = np.asarray(indices, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pick_a = indices[rng.integers(0, len(indices), n_pairs)]
    pick_b = indices[rng.integers(0, len(indices), n_pairs)]
    n_self = round(self_pair_share * n_pairs)
    pick_b[:n_self] = pick_a[:n_self]
    return pick_a, pick_b


class ProcessShare(keras.utils.PyDataset):
    """What `process_share` returns (see there)."""

    def __init__(self, batches: keras.utils.PyDataset, process_id: int, process_count: int):
        super().__init__()
        self.batches, self.process_id, self.process_count = batches, process_id, process_count

    @property
    def num_batches(self) -> int | None:
        return self.batches.num_batches

    def on_epoch_begin(self) -> None:
        self.batches.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()

    def _cut(self, t: np.ndarray) -> np.ndarray:
        part = len(t) // self.process_count
        return t[self.process_id * part : (self.process_id + 1) * part]

    def __getitem__(self, i: int):
        return keras.tree.map_structure(self._cut, self.batches[i])


def process_share(ds: keras.utils.PyDataset, process_id: int, process_count: int) -> keras.utils.PyDataset:
    """This process's share of every batch of `ds` when several processes train one run
    (`olr.training.processes`): every process builds the same batches (the same seeds) and takes its
    contiguous part; Keras assembles the global batch from the processes' parts. `ds` itself for one process."""
    if process_count == 1:
        return ds
    return ProcessShare(ds, process_id, process_count)
