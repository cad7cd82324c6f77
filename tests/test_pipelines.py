"""tf.data pipelines over a memory-mapped tile array: batch order, augmentation, pairs."""

import numpy as np
import pytest
import tensorflow as tf

from olr.training import pipelines


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
