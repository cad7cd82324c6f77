"""The numpy PyDataset loaders: the tf.data pipelines' batches without TensorFlow, and a JAX-only training."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from olr.training import loaders
from olr.training.inputs import batches_module
from olr.workspace import REPO_ROOT
from tests.fixtures.runs import TINY_CLASSIFIER, TINY_SIAMESE, make_tiny_dataset, olr_env


@pytest.fixture
def tiles(tmp_path):
    """(40, 4, 4, 1) uint16 memmap whose tile i holds the value i everywhere (identity is visible)."""
    images = np.broadcast_to(np.arange(40, dtype=np.uint16)[:, None, None, None], (40, 4, 4, 1)).copy()
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r")


@pytest.fixture
def distinct_tiles(tmp_path):
    """(24, 16, 16, 3) uint16 memmap, every value distinct within a tile's band (where a pixel went is visible)."""
    rng = np.random.default_rng(7)
    images = np.stack([rng.choice(60000, 16 * 16 * 3, replace=False).reshape(16, 16, 3) for _ in range(24)])
    np.save(tmp_path / "distinct.npy", images.astype(np.uint16))
    return np.load(tmp_path / "distinct.npy", mmap_mode="r")


@pytest.fixture
def pipelines():
    """The tf.data pipelines, the reference the loaders are held to (where TensorFlow is installed)."""
    return pytest.importorskip("olr.training.pipelines")


def _ids(x) -> list[int]:
    return np.asarray(x)[:, 0, 0, 0].astype(int).tolist()


def _ids_in(tiles) -> list[int]:
    """The ids of the tiles of several batches (B, h, w, b), in order."""
    return _ids(np.concatenate(list(tiles)))


def _numpy(element):
    return keras.tree.map_structure(np.asarray, element)


def _signature(element):
    """The nesting of an element with (shape, dtype) at its leaves."""
    return keras.tree.map_structure(lambda t: (tuple(np.shape(t)), np.asarray(t).dtype.name), element)


# ------------------------------------------------------------------ the same batches as the pipelines


@pytest.mark.parametrize("with_targets", [False, True])
def test_tile_batches_match_the_pipelines_in_order(tiles, pipelines, with_targets):
    indices = np.arange(3, 40, 2)
    targets = (np.eye(40, 3, dtype=np.float32)[indices] + indices[:, None]) if with_targets else None
    for drop_remainder in (False, True):
        ours = list(loaders.tile_batches(tiles, indices, targets, batch_size=6, drop_remainder=drop_remainder))
        theirs = [
            _numpy(e)
            for e in pipelines.tile_batches(tiles, indices, targets, batch_size=6, drop_remainder=drop_remainder)
        ]
        assert [_signature(e) for e in ours] == [_signature(e) for e in theirs]
        for mine, reference in zip(ours, theirs, strict=True):
            keras.tree.map_structure(np.testing.assert_array_equal, mine, reference)
    assert _signature(ours[0]) == (
        (((6, 4, 4, 1), "float32"), ((6, 3), "float32")) if with_targets else ((6, 4, 4, 1), "float32")
    )


def test_pair_batches_have_the_pipelines_structure(tiles, pipelines):
    args = {"batch_size": 6, "occlusion": (0.5, 1.0), "seed": 5, "self_pair_share": 0.5}
    ours = loaders.pair_batches(tiles, np.arange(40), **args)[0]
    theirs = _numpy(next(iter(pipelines.pair_batches(tiles, np.arange(40), **args))))
    assert _signature(ours) == _signature(theirs)
    assert _signature(ours) == (
        (((6, 4, 4, 1), "float32"), ((6, 4, 4, 1), "float32"), ((6, 4), "int32"), ((6, 4), "int32")),
    )


def test_fixed_pair_batches_take_the_pipelines_pairs(tiles, pipelines):
    args = {"n_pairs": 10, "batch_size": 4, "occlusion": (0.25, 0.5), "seed": 1, "self_pair_share": 0.2}
    ours = list(loaders.fixed_pair_batches(tiles, np.arange(20, 40), **args))
    theirs = [_numpy(e) for e in pipelines.fixed_pair_batches(tiles, np.arange(20, 40), **args)]
    assert [_signature(e) for e in ours] == [_signature(e) for e in theirs]  # 4 + 4 + 2 pairs
    for (a, b, _, _), (ref_a, ref_b, _, _) in zip((e[0] for e in ours), (e[0] for e in theirs), strict=True):
        np.testing.assert_array_equal(a, ref_a)  # the same numpy draws pick the same tiles
        np.testing.assert_array_equal(b, ref_b)


# ------------------------------------------------------------------ order, passes and reproducibility


def test_shuffled_batches_take_every_tile_once_per_pass_and_reshuffle_every_epoch(tiles):
    indices = np.arange(40)
    ds = loaders.tile_batches(tiles, indices, indices[:, None].astype(np.float32), batch_size=8, shuffle=True, seed=3)
    epochs = []
    for _ in range(2):
        order = []
        for x, y in ds:
            assert _ids(x) == y[:, 0].astype(int).tolist()  # labels travel with their tiles
            order += _ids(x)
        ds.on_epoch_end()  # what Keras calls after each epoch
        assert sorted(order) == indices.tolist()
        epochs.append(order)
    assert epochs[0] != indices.tolist() and epochs[0] != epochs[1]
    same_seed = loaders.tile_batches(tiles, indices, batch_size=8, shuffle=True, seed=3)
    assert _ids_in(same_seed) == epochs[0]


def test_repeated_batches_run_pass_after_pass_without_end(tiles):
    ds = loaders.tile_batches(tiles, np.arange(10, 30), batch_size=5, shuffle=True, seed=2, repeat=True)
    assert ds.num_batches is None  # endless, for Keras
    passes = [_ids_in(ds[p * 4 + i] for i in range(4)) for p in range(3)]
    assert all(sorted(p) == list(range(10, 30)) for p in passes)
    assert len({tuple(p) for p in passes}) == 3  # each pass in a fresh order
    in_order = loaders.tile_batches(tiles, np.arange(10, 30), batch_size=8, repeat=True, drop_remainder=True)
    assert [_ids(in_order[i]) for i in (0, 1, 2)] == [list(range(10, 18)), list(range(18, 26)), list(range(10, 18))]


def test_pair_batches_draw_distinct_tiles_per_pass_and_resume_where_they_stopped(tiles):
    ds = loaders.pair_batches(tiles, np.arange(40), batch_size=5, occlusion=(0.5, 1.0), seed=5)
    assert ds.num_batches is None
    steps = [ds[i][0] for i in range(8)]  # 8 steps of 10 tiles: two passes over the 40
    for p in (0, 1):
        ids = _ids_in(t for a, b, _, _ in steps[4 * p : 4 * p + 4] for t in (a, b))
        assert sorted(ids) == list(range(40))  # without replacement within a pass
    assert not np.array_equal(steps[0][2], steps[1][2])  # fresh occlusions every step
    again = loaders.pair_batches(tiles, np.arange(40), batch_size=5, occlusion=(0.5, 1.0), seed=5)
    resumed = loaders.pair_batches(tiles, np.arange(40), batch_size=5, occlusion=(0.5, 1.0), seed=5, start_step=3)
    for reference, other in ((steps[0], again[0][0]), (steps[3], resumed[0][0]), (steps[5], resumed[2][0])):
        keras.tree.map_structure(np.testing.assert_array_equal, other, reference)
    other_seed = loaders.pair_batches(tiles, np.arange(40), batch_size=5, occlusion=(0.5, 1.0), seed=6)[0][0]
    assert _ids(other_seed[0]) != _ids(steps[0][0]) and not np.array_equal(other_seed[2], steps[0][2])


def test_pair_boxes_lie_inside_the_tile_with_sides_in_the_side_range(tmp_path):
    np.save(tmp_path / "tall.npy", np.zeros((300, 32, 20, 1), np.uint8))
    images = np.load(tmp_path / "tall.npy", mmap_mode="r")
    ds = loaders.pair_batches(images, np.arange(300), batch_size=50, occlusion=(0.25, 0.5), seed=1)
    boxes = np.concatenate([np.concatenate(ds[i][0][2:]) for i in range(20)])  # 2000 boxes
    y0, x0, bh, bw = boxes.T
    assert loaders.side_range(32, 0.25, 0.5) == (8, 16) and loaders.side_range(20, 0.25, 0.5) == (5, 10)
    assert (bh.min(), bh.max(), bw.min(), bw.max()) == (8, 16, 5, 10)  # both ends of the range reached
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y0 + bh <= 32).all() and (x0 + bw <= 20).all()
    assert len(set(y0.tolist())) > 10 and len(set(x0.tolist())) > 5  # positions vary
    fixed = loaders.fixed_pair_batches(images, np.arange(300), n_pairs=500, batch_size=64, occlusion=(0.25, 0.5))
    fixed_boxes = np.concatenate([np.concatenate(batch[0][2:]) for batch in fixed])
    assert (fixed_boxes[:, 0] + fixed_boxes[:, 2] <= 32).all() and (fixed_boxes[:, 2] >= 8).all()


def test_the_self_pair_share_pairs_the_first_tiles_with_themselves(tiles):
    a, b, box_a, box_b = loaders.pair_batches(
        tiles, np.arange(40), batch_size=8, occlusion=(0.25, 0.5), seed=0, self_pair_share=0.25
    )[0][0]
    same = [i == j for i, j in zip(_ids(a), _ids(b), strict=True)]
    assert same == [True, True] + [False] * 6
    assert not np.array_equal(box_a[:2], box_b[:2])  # a tile and itself, occluded independently
    fixed = loaders.fixed_pair_batches(
        tiles, np.arange(40), n_pairs=10, batch_size=10, occlusion=(0.25, 0.5), self_pair_share=0.3
    )
    fa, fb, _, _ = fixed[0][0]
    assert _ids(fa)[:3] == _ids(fb)[:3] and _ids(fa)[3:] != _ids(fb)[3:]


def test_fixed_pair_batches_are_identical_every_pass(tiles):
    ds = loaders.fixed_pair_batches(tiles, np.arange(20, 40), n_pairs=10, batch_size=4, occlusion=(0.25, 0.5), seed=1)
    passes = []
    for _ in range(2):
        passes.append([tuple(t.tobytes() for t in batch[0]) for batch in ds])
        ds.on_epoch_end()
    assert passes[0] == passes[1] and len(passes[0]) == 3


@pytest.mark.parametrize("make", ["tiles", "pairs"])
def test_process_share_gives_each_process_its_half_of_every_batch(tiles, make):
    if make == "tiles":
        ds = loaders.tile_batches(tiles, np.arange(40), np.arange(40.0)[:, None], batch_size=8, shuffle=True, seed=1)
    else:
        ds = loaders.pair_batches(tiles, np.arange(40), batch_size=8, occlusion=(0.25, 0.5))
    assert loaders.process_share(ds, 0, 1) is ds
    halves = [loaders.process_share(ds, p, 2) for p in (0, 1)]
    assert halves[0].num_batches == ds.num_batches
    for i in range(3):
        whole, first, second = ds[i], halves[0][i], halves[1][i]
        for part, full in zip(keras.tree.flatten(first), keras.tree.flatten(whole), strict=True):
            assert part.shape == (len(full) // 2, *full.shape[1:]) and part.dtype == full.dtype
        joined = keras.tree.map_structure(lambda u, v: np.concatenate([u, v]), first, second)
        keras.tree.map_structure(np.testing.assert_array_equal, joined, whole)


# ------------------------------------------------------------------ augmentations in numpy


def _pass(images, **switches):
    """One pass over the tiles in order through `tile_batches` with the given augmentation switches."""
    ds = loaders.tile_batches(images, np.arange(len(images)), batch_size=8, **switches)
    return np.concatenate(list(ds))


def test_switched_off_augmentations_leave_tiles_untouched(distinct_tiles):
    np.testing.assert_array_equal(_pass(distinct_tiles), np.asarray(distinct_tiles, dtype=np.float32))


def test_augmentation_is_a_symmetry_of_the_square_drawn_per_tile(distinct_tiles):
    out = _pass(distinct_tiles, augment=True)
    used = set()
    for tile, augmented in zip(np.asarray(distinct_tiles, dtype=np.float32), out, strict=True):
        variants = [np.rot90(base, k) for base in (tile, tile.transpose(1, 0, 2)) for k in range(4)]
        matches = [j for j, v in enumerate(variants) if np.array_equal(augmented, v)]
        assert matches, "an augmented tile is not a flip/rotation of its tile"
        used.add(matches[0])
    assert len(used) >= 5  # per-tile choices, not one transform for the whole batch


def test_shifts_move_each_tile_by_at_most_an_eighth_of_its_side_with_the_edge_mirrored(distinct_tiles):
    reach = 4  # look twice as far as the bound: 16 px / 8 = 2 px
    ds = loaders.tile_batches(distinct_tiles, np.arange(24), batch_size=8, shift=True, seed=4)
    offsets = []
    for _ in range(2):  # fresh shifts every epoch
        out = np.concatenate(list(ds))
        ds.on_epoch_end()
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
    assert max(max(abs(dy), abs(dx)) for dy, dx in offsets) == round(16 * loaders.SHIFT_FRACTION)
    assert len(set(offsets)) >= 10 and len(set(offsets[:8])) > 1  # per tile, in both directions
    assert offsets[:24] != offsets[24:]


def test_jitter_is_a_per_band_affine_map_around_the_band_statistics(distinct_tiles):
    bands = [{"mean": 30000.0, "std": 17000.0}, {"mean": 100.0, "std": 5.0}, {"mean": 0.0, "std": 1.0}]
    raw = np.asarray(distinct_tiles, dtype=np.float64)
    out = _pass(distinct_tiles, jitter_bands=bands).astype(np.float64)
    contrasts, brightnesses = [], []
    for tile, jittered in zip(raw, out, strict=True):
        for band, stats in enumerate(bands):
            x, x_ = tile[..., band].ravel(), jittered[..., band].ravel()
            c, intercept = np.polyfit(x, x_, 1)
            np.testing.assert_allclose(x_, c * x + intercept, atol=1e-6 * max(1.0, np.abs(x_).max()))
            contrasts.append(c)  # x' = mean + c (x - mean) + d std  =>  intercept = (1 - c) mean + d std
            brightnesses.append((intercept - (1 - c) * stats["mean"]) / stats["std"])
    contrasts, brightnesses = np.array(contrasts), np.array(brightnesses)
    # the fit recovers c and d to about 1e-3: float32 tiles with values up to 60000, a band std of 5
    assert (np.abs(contrasts - 1) <= loaders.CONTRAST_JITTER + 1e-3).all()
    assert (np.abs(brightnesses) <= loaders.BRIGHTNESS_JITTER + 1e-3).all()
    assert np.ptp(contrasts) > loaders.CONTRAST_JITTER and np.ptp(brightnesses) > loaders.BRIGHTNESS_JITTER
    assert (np.ptp(contrasts.reshape(-1, len(bands)), axis=1) > 1e-3).mean() > 0.9  # per band


def test_the_pipelines_use_the_loaders_strengths_and_side_range(pipelines):
    assert pipelines.SHIFT_FRACTION is loaders.SHIFT_FRACTION and pipelines.read_rows is loaders.read_rows
    assert (pipelines.CONTRAST_JITTER, pipelines.BRIGHTNESS_JITTER) == (
        loaders.CONTRAST_JITTER,
        loaders.BRIGHTNESS_JITTER,
    )
    assert pipelines.side_range is loaders.side_range
    assert batches_module() is pipelines  # TensorFlow is installed here


# ------------------------------------------------------------------ training without TensorFlow

#: Runs in a fresh interpreter: makes TensorFlow look uninstalled (a finder in front of all the others
#: answers "not found" for it, recording who asked), then trains through the command line on JAX.
_WITHOUT_TENSORFLOW = """
import json, os, sys

class NoTensorFlow:
    def __init__(self, finders):
        self.finders, self.askers = finders, []

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow":
            frame = sys._getframe(1)
            while "importlib" in frame.f_code.co_filename:  # the import machinery, up to whoever asked
                frame = frame.f_back
            self.askers.append(frame.f_code.co_filename)
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
        return None

blocker = NoTensorFlow(list(sys.meta_path))
sys.meta_path[:] = [blocker]
os.environ["KERAS_BACKEND"] = "jax"
from olr import cli

codes = [cli.main(["train", *args]) for args in json.loads(sys.argv[1])]
print(json.dumps({
    "codes": codes,
    "askers": sorted(set(blocker.askers)),
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("olr", "tensorflow")),
}))
"""


@pytest.mark.jax_leg
def test_training_and_evaluation_run_on_jax_without_tensorflow(tmp_path):
    home = tmp_path / "workspace"
    make_tiny_dataset(home / "data" / "tiny")
    runs = [
        [*TINY_CLASSIFIER, "--epochs", "1", "--run-id", "cls"],
        [*TINY_SIAMESE, "--epochs", "1", "--classifier-run", "cls", "--run-id", "siam"],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW, json.dumps(runs)],
        cwd=REPO_ROOT,
        env=olr_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0], proc.stdout[-3000:]
    for run_id in ("cls", "siam"):
        status = json.loads((home / "models" / run_id / "status.json").read_text())
        assert (status["state"], status["backend"]) == ("finished", "jax")
        assert not status.get("followup_errors"), status  # evaluation ran too
    # olr only asked whether TensorFlow is there (the input selector); Keras tries its optional import itself
    olr_askers = {a for a in result["askers"] if str(REPO_ROOT / "olr") in a}
    assert olr_askers == {str(REPO_ROOT / "olr" / "training" / "inputs.py")}, result["askers"]
    assert "olr.training.loaders" in result["modules"] and "olr.training.pipelines" not in result["modules"]
    assert not [m for m in result["modules"] if m.startswith("tensorflow")]
