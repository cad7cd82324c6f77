"""tf.data pipelines over a memory-mapped tile array: batch order, augmentation, pairs."""

import numpy as np
import pytest
import tensorflow as tf

from olr.training import pipelines

pytestmark = pytest.mark.both_backends


@pytest.fixture
def tiles(tmp_path):
    """(40, 4, 4, 1) uint16 memmap whose tile i holds the value i everywhere (identity is visible)."""
    images = np.broadcast_to(np.arange(40, dtype=np.uint16)[:, None, None, None], (40, 4, 4, 1)).copy()
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r")


def _ids(x):
    return x.numpy()[:, 0, 0, 0].astype(int).tolist()


def test_read_rows_keeps_the_requested_order(tiles):
    idx = np.array([7, 2, 30, 2, 11])
    assert pipelines.read_rows(tiles, idx)[:, 0, 0, 0].tolist() == idx.tolist()


def test_in_order_batches_are_consecutive_tiles(tiles):
    indices = np.arange(3, 40, 2)  # e.g. the training split's rows
    targets = np.eye(40, 3, dtype=np.float32)[indices] + indices[:, None]
    batches = list(pipelines.tile_batches(tiles, indices, targets, batch_size=5, shuffle=False))
    seen = []
    for x, y in batches:
        assert x.dtype == tf.float32
        ids = _ids(x)
        seen += ids
        np.testing.assert_allclose(y.numpy()[:, 0] - np.eye(40, 3)[ids][:, 0], ids)  # labels travel with tiles
    assert seen == indices.tolist()


def test_shuffled_batches_mix_tiles_and_reshuffle_every_epoch(tiles):
    indices = np.arange(40)
    targets = indices[:, None].astype(np.float32)
    ds = pipelines.tile_batches(tiles, indices, targets, batch_size=8, shuffle=True, seed=3)
    epochs = []
    for _ in range(2):
        order = []
        for x, y in ds:
            assert _ids(x) == y.numpy()[:, 0].astype(int).tolist()
            order += _ids(x)
        assert sorted(order) == indices.tolist()  # every tile once per epoch
        epochs.append(order)
    assert epochs[0] != indices.tolist()
    assert epochs[0] != epochs[1]
    # a random batch of 8 out of 40 is almost never 8 consecutive tiles; in order it always is
    first = sorted(epochs[0][:8])
    assert first != list(range(first[0], first[0] + 8))


def test_drop_remainder_keeps_full_batches_only(tiles):
    sizes = [int(x.shape[0]) for x in pipelines.tile_batches(tiles, np.arange(40), batch_size=16, drop_remainder=True)]
    assert sizes == [16, 16]


def test_augmentation_is_a_symmetry_of_the_square():
    rng = np.random.default_rng(0)
    x = rng.random((64, 5, 5, 2)).astype(np.float32)
    out = pipelines.augment_batch(tf.constant(x)).numpy()
    used = set()
    for i in range(len(x)):
        variants = []
        for t in (False, True):
            base = x[i].transpose(1, 0, 2) if t else x[i]
            for k in range(4):
                variants.append(np.rot90(base, k))
        matches = [j for j, v in enumerate(variants) if np.array_equal(out[i], v)]
        assert matches, f"tile {i} is not a flip/rotation of its input"
        used.add(matches[0])
    assert len(used) >= 5  # per-tile choices, not one transform for the whole batch


def test_random_boxes_respect_the_size_range_and_stay_inside():
    boxes = pipelines.random_boxes(2000, 32, 20, 0.25, 0.5, seed=tf.constant([1, 2], tf.int64)).numpy()
    y0, x0, bh, bw = boxes.T
    assert bh.min() == 8 and bh.max() == 16  # round(0.25*32) .. round(0.5*32), both ends reached
    assert bw.min() == 5 and bw.max() == 10
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y0 + bh <= 32).all() and (x0 + bw <= 20).all()
    assert len(set(y0.tolist())) > 10 and len(set(x0.tolist())) > 5  # positions vary


def test_pair_batches_give_two_random_batches_with_fresh_boxes(tiles):
    ds = pipelines.pair_batches(tiles, np.arange(40), batch_size=6, occlusion=(0.5, 1.0), seed=5)
    steps = [batch[0] for batch in ds.take(3)]
    for a, b, box_a, _box_b in steps:
        assert a.shape == (6, 4, 4, 1) and box_a.shape == (6, 4)
        ids = _ids(a) + _ids(b)
        assert len(set(ids)) == 12  # 2B distinct tiles per step
    assert not np.array_equal(steps[0][2].numpy(), steps[1][2].numpy())  # new occlusions every step
    # boxes are keyed by (seed, step): a run resumed at step 1 draws what step 1 drew before
    resumed = next(
        iter(pipelines.pair_batches(tiles, np.arange(40), batch_size=6, occlusion=(0.5, 1.0), seed=5, start_step=1))
    )[0]
    np.testing.assert_array_equal(resumed[2].numpy(), steps[1][2].numpy())


def test_fixed_pair_batches_are_identical_every_pass(tiles):
    ds = pipelines.fixed_pair_batches(tiles, np.arange(20, 40), n_pairs=10, batch_size=4, occlusion=(0.25, 0.5), seed=1)
    passes = [[tuple(t.numpy().tobytes() for t in batch[0]) for batch in ds] for _ in range(2)]
    assert passes[0] == passes[1]
    assert [len(p) for p in passes] == [3, 3]
    ids = [int(v) for batch in ds for v in _ids(batch[0][0])]
    assert all(20 <= i < 40 for i in ids)


# ------------------------------------------------------------------ shifts and brightness/contrast jitter


@pytest.fixture
def distinct_tiles(tmp_path):
    """(24, 16, 16, 3) uint16 memmap, every value distinct within a tile's band (where a pixel went is visible)."""
    rng = np.random.default_rng(7)
    images = np.stack([rng.choice(60000, 16 * 16 * 3, replace=False).reshape(16, 16, 3) for _ in range(24)])
    np.save(tmp_path / "distinct.npy", images.astype(np.uint16))
    return np.load(tmp_path / "distinct.npy", mmap_mode="r")


BANDS = [{"mean": 30000.0, "std": 17000.0}, {"mean": 100.0, "std": 5.0}, {"mean": 0.0, "std": 1.0}]


def _batches(images, **switches):
    """The tiles in order (x (N, h, w, b)) through `tile_batches` with the given augmentation switches."""
    ds = pipelines.tile_batches(images, np.arange(len(images)), batch_size=8, **switches)
    return np.concatenate([x.numpy() for x in ds])


def test_switched_off_augmentations_leave_tiles_untouched(distinct_tiles):
    out = _batches(distinct_tiles, augment=False, shift=False, jitter_bands=None)
    np.testing.assert_array_equal(out, np.asarray(distinct_tiles, dtype=np.float32))


def test_shifts_move_each_tile_by_at_most_an_eighth_of_its_side_with_the_edge_mirrored(distinct_tiles):
    reach = 4  # look twice as far as the bound: 16 px / 8 = 2 px
    offsets = []
    for _ in range(2):  # fresh shifts every pass
        out = _batches(distinct_tiles, shift=True)
        assert out.shape == distinct_tiles.shape
        for tile, shifted in zip(np.asarray(distinct_tiles, dtype=np.float32), out, strict=True):
            padded = np.pad(tile, ((reach, reach), (reach, reach), (0, 0)), mode="symmetric")  # d c b a | a b c d
            found = [
                (dy, dx)
                for dy in range(-reach, reach + 1)
                for dx in range(-reach, reach + 1)
                if np.array_equal(shifted, padded[reach + dy : reach + dy + 16, reach + dx : reach + dx + 16])
            ]
            assert len(found) == 1, "a shifted tile is not a mirror-padded crop of its tile"
            offsets.append(found[0])
    bound = round(16 * pipelines.SHIFT_FRACTION)
    assert max(max(abs(dy), abs(dx)) for dy, dx in offsets) == bound  # the full reach, not beyond
    assert len(set(offsets)) >= 10  # per tile, in both directions
    assert len(set(offsets[:8])) > 1  # within one batch too


def test_jitter_is_a_per_band_affine_map_around_the_band_statistics(distinct_tiles):
    raw = np.asarray(distinct_tiles, dtype=np.float64)
    out = np.concatenate([_batches(distinct_tiles, jitter_bands=BANDS) for _ in range(3)]).astype(np.float64)
    raw = np.concatenate([raw] * 3)
    contrasts, brightnesses = [], []
    for tile, jittered in zip(raw, out, strict=True):
        for band, stats in enumerate(BANDS):
            x, x_ = tile[..., band].ravel(), jittered[..., band].ravel()
            c, intercept = np.polyfit(x, x_, 1)
            # every pixel of the band by the same affine map, in place (no pixel moved)
            np.testing.assert_allclose(x_, c * x + intercept, atol=1e-6 * max(1.0, np.abs(x_).max()))
            # x' = mean + c (x - mean) + d std  =>  intercept = (1 - c) mean + d std
            contrasts.append(c)
            brightnesses.append((intercept - (1 - c) * stats["mean"]) / stats["std"])
    contrasts, brightnesses = np.array(contrasts), np.array(brightnesses)
    eps = 1e-4
    assert (np.abs(contrasts - 1) <= pipelines.CONTRAST_JITTER + eps).all()
    assert (np.abs(brightnesses) <= pipelines.BRIGHTNESS_JITTER + eps).all()
    # drawn over the whole range, and per band: the bands of one tile get different factors
    assert (
        np.ptp(contrasts) > 1.5 * pipelines.CONTRAST_JITTER and np.ptp(brightnesses) > 1.5 * pipelines.BRIGHTNESS_JITTER
    )
    per_tile = contrasts.reshape(-1, len(BANDS))
    assert (np.ptp(per_tile, axis=1) > 1e-3).mean() > 0.9


def test_the_options_help_states_the_strengths_the_pipeline_uses():
    from olr.training.options import OPTIONS

    assert pipelines.SHIFT_FRACTION == 1 / 8 and "1/8 of its side" in OPTIONS["augment_shift"].help
    assert (pipelines.CONTRAST_JITTER, pipelines.BRIGHTNESS_JITTER) == (0.1, 0.1)
    assert "x0.9 to x1.1" in OPTIONS["augment_jitter"].help and "±0.1 std" in OPTIONS["augment_jitter"].help
