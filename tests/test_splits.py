"""Splits that do not leak and thin data said before training, on real prepared scenes.

With stride < tile, no validation or test tile shares a pixel with a tile of another split (a
pixel-level proof: every split's tile footprints rasterised); the tiles dropped for it, and for
a buffer between splits, are exactly those an independent pixel computation finds; band
statistics come from the training tiles only; the thin-data warnings appear where the data is
thin (CLI, meta.json, Datasets page) and not on a healthy scene."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import rasterio
from scipy import ndimage

from olr.data import splits, thin_data
from olr.data.dataset import band_statistics, load_dataset, write_dataset
from olr.data.prepare import prepare_dataset
from olr.data.thesis_import import import_batches
from olr.data.tile_writer import BandStats
from olr.workspace import REPO_ROOT
from tests.fixtures.data import make_scene, write_batches
from tests.fixtures.pages import open_app


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """192 x 192 px, 4 bands, labels in 500 m patches (another CRS)."""
    return make_scene(tmp_path_factory.mktemp("split_scene"), size=192, seed=5)


def footprints(ds, split: str, size: int, grow: int = 0) -> np.ndarray:
    """(size, size) bool: the pixels of the split's tiles, each grown by `grow` px on every side."""
    out = np.zeros((size, size), dtype=bool)
    t = ds.meta["tile"]
    for r, c in ds.tiles.loc[ds.tiles.split == split, ["row_off", "col_off"]].itertuples(index=False):
        out[max(r - grow, 0) : r + t + grow, max(c - grow, 0) : c + t + grow] = True
    return out


def unseparated(ds, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile rows, tile cols, split) of every tile of the grid before splits are kept apart: the block
    assignment the preparer starts from (all tiles of these scenes are kept: checked by the callers)."""
    t, stride = ds.meta["tile"], ds.meta["stride"]
    n = (size - t) // stride + 1
    rows, cols = (a.ravel() for a in np.mgrid[0:n, 0:n])
    block = splits.spatial_blocks(rows, cols, ds.meta["split"]["block"])
    return rows, cols, splits.assign_blocks(block, ds.meta["split"]["fractions"], ds.meta["split"]["seed"])


def expected_kept(ds, size: int, buffer_px: int):
    """Independently of the preparer's grid arithmetic: which tiles survive and why the others went.

    Pixel masks: a validation tile goes when its footprint touches the training pixels grown by
    `buffer_px` (Chebyshev), a test tile when it touches the training or kept validation pixels
    grown so; "overlap" when it touches them ungrown."""
    t, stride = ds.meta["tile"], ds.meta["stride"]
    rows, cols, split = unseparated(ds, size)
    grown = np.ones((2 * buffer_px + 1, 2 * buffer_px + 1), dtype=bool)
    kept = split == "train"
    reasons = {"overlap": {}, "buffer": {}}
    for name in ("val", "test"):
        others = np.zeros((size, size), dtype=bool)
        for i in np.flatnonzero(kept & np.isin(split, ("train", "val"))):
            others[rows[i] * stride : rows[i] * stride + t, cols[i] * stride : cols[i] * stride + t] = True
        near = ndimage.binary_dilation(others, grown) if buffer_px else others
        overlap = buffer = 0
        for i in np.flatnonzero(split == name):
            window = (slice(rows[i] * stride, rows[i] * stride + t), slice(cols[i] * stride, cols[i] * stride + t))
            if others[window].any():
                overlap += 1
            elif near[window].any():
                buffer += 1
            else:
                kept[i] = True
        reasons["overlap"][name], reasons["buffer"][name] = overlap, buffer
    offsets = {(int(r) * stride, int(c) * stride, str(s)) for r, c, s in zip(rows[kept], cols[kept], split[kept])}
    return offsets, reasons


def table_offsets(ds) -> set:
    return {(int(r), int(c), str(s)) for r, c, s in ds.tiles[["row_off", "col_off", "split"]].itertuples(index=False)}


# ---------------------------------------------------------------- no pixel in two splits


@pytest.mark.parametrize("stride,block", [(8, 6), (4, 12)])
def test_overlapping_tiles_share_no_pixel_across_splits(scene, tmp_path, stride, block):
    ds = load_dataset(
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, stride=stride, split_block=block, seed=1)
    )
    meta = ds.meta
    assert meta["dropped"]["nodata"] == meta["dropped"]["too_few_labels"] == 0  # every grid tile was a candidate
    train, val, test = (footprints(ds, s, scene.size) for s in ("train", "val", "test"))
    assert val.any() and test.any() and train.any()  # the proof is not vacuous
    assert not (train & (val | test)).any()
    assert not (val & test).any()

    offsets, reasons = expected_kept(ds, scene.size, buffer_px=0)
    assert table_offsets(ds) == offsets
    assert meta["split"]["dropped_overlap"] == reasons["overlap"] and sum(reasons["overlap"].values()) > 0
    assert meta["split"]["dropped_buffer"] == {"val": 0, "test": 0} and meta["split"]["buffer"] == 0
    assert meta["dropped"]["overlapping_another_split"] == sum(reasons["overlap"].values())
    assert meta["split"]["counts"] == meta["split_counts"]
    assert ds.n_tiles + sum(meta["dropped"].values()) == ((scene.size - 16) // stride + 1) ** 2


def test_tiles_that_do_not_overlap_are_never_dropped(scene, tmp_path):
    ds = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, split_block=2, seed=1))
    rows, cols, split = unseparated(ds, scene.size)
    assert table_offsets(ds) == {(int(r) * 16, int(c) * 16, str(s)) for r, c, s in zip(rows, cols, split)}
    assert ds.meta["split"]["dropped_overlap"] == ds.meta["split"]["dropped_buffer"] == {"val": 0, "test": 0}


@pytest.mark.parametrize("stride,buffer,block", [(16, 1, 4), (8, 1, 12), (16, 2, 5)])
def test_split_buffer_keeps_that_many_tile_widths_between_splits(scene, tmp_path, stride, buffer, block):
    ds = load_dataset(
        prepare_dataset(
            scene.image, scene.labels, tmp_path / "ds", tile=16, stride=stride, split_block=block, split_buffer=buffer
        )
    )
    gap = buffer * 16
    train = footprints(ds, "train", scene.size, grow=gap)
    val = footprints(ds, "val", scene.size)
    assert (val | footprints(ds, "test", scene.size)).any()
    assert not (train & (val | footprints(ds, "test", scene.size))).any()
    assert not (footprints(ds, "val", scene.size, grow=gap) & footprints(ds, "test", scene.size)).any()

    offsets, reasons = expected_kept(ds, scene.size, buffer_px=gap)
    assert table_offsets(ds) == offsets
    assert ds.meta["split"]["dropped_overlap"] == reasons["overlap"]
    assert ds.meta["split"]["dropped_buffer"] == reasons["buffer"] and sum(reasons["buffer"].values()) > 0
    assert ds.meta["split"]["buffer"] == buffer and ds.meta["parameters"]["split_buffer"] == buffer
    assert ds.meta["dropped"]["near_another_split"] == sum(reasons["buffer"].values())


def test_near_matches_a_brute_force_distance():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 60))
        rows, cols = rng.integers(0, 15, n), rng.integers(0, 15, n)
        members = rng.random(n) < 0.4
        steps = int(rng.integers(0, 4))
        chebyshev = np.maximum(abs(rows[:, None] - rows[None]), abs(cols[:, None] - cols[None]))
        expected = ((chebyshev <= steps) & members[None]).any(1)
        assert np.array_equal(splits.near(rows, cols, members, steps), expected)


@pytest.mark.parametrize(
    "tile,stride,buffer,steps",
    [(64, 64, 0, 0), (64, 32, 0, 1), (64, 48, 0, 1), (16, 4, 0, 3), (64, 64, 1, 1), (64, 100, 1, 1)],
)
def test_reach_is_the_grid_steps_closer_than_the_buffer(tile, stride, buffer, steps):
    assert splits.reach(tile, stride, buffer) == steps
    gap_at = lambda k: k * stride - tile  # noqa: E731 - pixels between tiles k grid steps apart (< 0: overlap)
    assert gap_at(steps) < buffer * tile <= gap_at(steps + 1)


def test_split_buffer_is_an_option_with_a_flag_and_is_checked(scene, tmp_path):
    from olr.data import prepare_options
    from olr.errors import OLRError

    spec = prepare_options.spec("split_buffer")
    assert "tile widths" in spec.help and "tile widths" in spec.label
    with pytest.raises(OLRError, match="split buffer -1"):
        prepare_dataset(scene.image, scene.labels, tmp_path / "bad", tile=16, split_buffer=-1)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- band statistics from training tiles


def numpy_statistics(pixels: np.ndarray) -> list[dict]:
    """{mean, std, min, max} per band of (M, b) pixels, in float64."""
    x = pixels.astype(np.float64)
    return [
        {"mean": m, "std": s, "min": lo, "max": hi} for m, s, lo, hi in zip(x.mean(0), x.std(0), x.min(0), x.max(0))
    ]


def assert_statistics(got: list[dict], want: list[dict]) -> None:
    for g, w in zip(got, want, strict=True):
        assert g["mean"] == pytest.approx(w["mean"], rel=1e-9)
        assert g["std"] == pytest.approx(w["std"], rel=1e-6)
        assert (g["min"], g["max"]) == (w["min"], w["max"])


def test_band_statistics_are_those_of_the_training_tiles(scene, tmp_path):
    first = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "a", tile=16, stride=8, split_block=6))
    train = first.split_indices("train")
    assert first.meta["band_statistics_split"] == "train"
    assert_statistics(first.meta["bands"], numpy_statistics(np.asarray(first.images[train]).reshape(-1, 4)))
    assert [b["mean"] for b in first.meta["bands"]] == pytest.approx(
        [b["mean"] for b in band_statistics(first.images, rows=train)], rel=1e-9
    )

    # The same scene with every validation and test pixel made far brighter: the split is the same
    # (it depends on the labels only), the training statistics are too, all-tile ones are not.
    with rasterio.open(scene.image) as src:
        pixels, profile = src.read(), src.profile
    for split in ("val", "test"):
        pixels[:, footprints(first, split, scene.size) & ~footprints(first, "train", scene.size)] += 20000
    bright = tmp_path / "bright.tif"
    with rasterio.open(bright, "w", **profile) as dst:
        dst.write(pixels)
    second = load_dataset(prepare_dataset(bright, scene.labels, tmp_path / "b", tile=16, stride=8, split_block=6))
    assert second.tiles[["row_off", "col_off", "split"]].equals(first.tiles[["row_off", "col_off", "split"]])
    assert_statistics(second.meta["bands"], first.meta["bands"])
    everything = numpy_statistics(np.asarray(second.images).reshape(-1, 4))
    for got, all_tiles in zip(second.meta["bands"], everything):
        assert all_tiles["mean"] > got["mean"] + 1000 and all_tiles["max"] > got["max"]


def test_band_statistics_leave_nodata_out_and_cover_only_training_tiles(tmp_path):
    scene = make_scene(tmp_path / "scene", size=128, seed=2, image_nodata=0, nodata_rows=1)
    ds = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, split_block=2))
    with rasterio.open(scene.image) as src:
        source = src.read().transpose(1, 2, 0)
    train = ds.tiles[ds.tiles.split == "train"]
    assert (train.nodata_share > 0).any()  # tiles with nodata pixels are among the training tiles
    valid = [
        source[r : r + 16, c : c + 16][(source[r : r + 16, c : c + 16] != 0).all(-1)]
        for r, c in train[["row_off", "col_off"]].itertuples(index=False)
    ]
    assert_statistics(ds.meta["bands"], numpy_statistics(np.concatenate(valid)))


@pytest.mark.parametrize(
    "tile,bands,dtype", [(8, 1, np.uint8), (24, 3, np.int16), (64, 4, np.uint16), (20, 13, np.float32)]
)
def test_band_stats_of_any_subset_of_tiles_equal_numpy(tile, bands, dtype):
    rng = np.random.default_rng(tile)
    tiles = (rng.normal(300, 900, (70, tile, tile, bands))).astype(dtype)
    nodata = rng.random((70, tile, tile)) < 0.02
    nodata[5:] &= rng.random(65)[:, None, None] < 0.3  # most tiles clean, some with nodata pixels
    nodata[3] = True  # a tile without a valid pixel
    stats = BandStats(bands, chunk=16)
    for a, b in ((0, 1), (1, 33), (33, 70)):
        stats.update(tiles[a:b], nodata[a:b])
    assert stats.n_tiles == 70
    for rows in (np.arange(70), rng.random(70) < 0.5, np.array([3, 10, 11, 69])):
        chosen = tiles[rows][~nodata[rows]]
        got = stats.to_json([f"b{i}" for i in range(bands)], rows)
        want = numpy_statistics(chosen)
        for g, w in zip(got, want, strict=True):
            assert g["mean"] == pytest.approx(w["mean"], rel=1e-6)
            assert g["std"] == pytest.approx(w["std"], rel=1e-5)
            assert (g["min"], g["max"]) == (w["min"], w["max"])
    only_empty = stats.to_json([f"b{i}" for i in range(bands)], [3])
    assert all(b["min"] is None and b["max"] is None for b in only_empty)


def test_imports_take_band_statistics_from_training_tiles(tmp_path):
    folder = write_batches(tmp_path / "batches", sizes=(6, 6, 6, 6, 6, 6), shape=(8, 8, 3))
    ds = load_dataset(import_batches(folder, tmp_path / "imported"))
    train = ds.split_indices("train")
    assert 0 < len(train) < ds.n_tiles and ds.meta["band_statistics_split"] == "train"
    assert_statistics(ds.meta["bands"], numpy_statistics(np.asarray(ds.images[train]).reshape(-1, 3)))
    assert ds.meta["warnings"] == thin_data.thin_data_warnings(
        ds.tiles.split, ds.presence, ds.label_names, ds.tiles.block_id, advice=thin_data_advice("thesis_import")
    )
    assert any("validation split holds only" in w for w in ds.meta["warnings"])


def thin_data_advice(module: str):
    import importlib

    return importlib.import_module(f"olr.data.{module}").THIN_DATA_ADVICE


def test_a_dataset_written_without_statistics_gets_training_ones_and_warnings(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 1000, (30, 8, 8, 2)).astype(np.uint16)
    images[20:] += 5000  # validation and test tiles far brighter
    split = np.array(["train"] * 20 + ["val"] * 5 + ["test"] * 5)
    fractions = (rng.random((30, 2)) < 0.5).astype(np.float32)
    fractions[20:, 1] = 0  # the second label never in validation or test
    fractions[0, 1] = 1
    tiles = pd.DataFrame({"tile_id": np.arange(30), "row_off": -1, "col_off": -1, "split": split})
    meta = {"labels": [{"name": "a", "codes": []}, {"name": "b", "codes": []}], "bands": [{"name": "x"}, {"name": "y"}]}
    write_dataset(tmp_path, images=images, fractions=fractions, tiles=tiles, meta=meta, min_fraction=0.5)
    written = json.loads((tmp_path / "meta.json").read_text())
    assert written["band_statistics_split"] == "train"
    assert_statistics(written["bands"], numpy_statistics(images[:20].reshape(-1, 2)))
    assert written["warnings"] == thin_data.thin_data_warnings(split, fractions >= 0.5, ["a", "b"])
    assert any("no positive tile in the validation split (b)" in w for w in written["warnings"])


# ---------------------------------------------------------------- thin data, said at preparation


def warnings_of(ds) -> list[str]:
    return ds.meta["warnings"]


def test_a_scene_of_one_tile_says_it_has_no_validation_or_test_split(tmp_path):
    small = make_scene(tmp_path / "scene", size=101, seed=1)
    ds = load_dataset(prepare_dataset(small.image, small.labels, tmp_path / "ds"))  # default 64 px tiles
    assert ds.n_tiles == 1
    text = " ".join(warnings_of(ds))
    assert "The validation split is empty (1 tiles in all)" in text and "The test split is empty" in text
    assert "The training split holds only 1 tile (fewer than 50)" in text


def test_thin_splits_few_blocks_and_labels_without_positives_are_said(scene, tmp_path):
    ds = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, split_block=3))
    split = ds.tiles.split.to_numpy()
    counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    blocks = {s: ds.tiles.block_id[split == s].nunique() for s in ("val", "test")}
    presence = np.asarray(ds.presence).astype(bool)
    missing = {s: [n for n, p in zip(ds.label_names, presence[split == s].any(0)) if not p] for s in ("val", "test")}
    assert 0 < counts["val"] < 50 and 0 < counts["test"] < 50 and counts["train"] >= 50  # the scene is thin
    assert 0 < blocks["val"] < 10 and 0 < blocks["test"] < 10
    assert missing["val"] or missing["test"]
    title = {"val": "validation", "test": "test"}
    expected = [
        f"The {title[s]} split holds only {counts[s]} tiles (fewer than 50), so its metrics will be noisy; "
        "a smaller --tile, a larger share in --split-fractions or a larger scene gives more."
        for s in ("val", "test")
    ] + [
        f"The {title[s]} split comes from only {blocks[s]} split blocks (fewer than 10), so its metrics depend on "
        "those few places and their intervals will be wide; a smaller --split-block gives more."
        for s in ("val", "test")
    ]
    for s in ("val", "test"):
        if missing[s]:
            n = len(missing[s])
            expected.append(
                f"{n} label{'s' if n > 1 else ''} {'have' if n > 1 else 'has'} no positive tile in the {title[s]} "
                f"split ({', '.join(missing[s])}), so {'their' if n > 1 else 'its'} {title[s]} metrics are undefined; "
                "another --seed, a coarser --scheme or --prune-below avoids it."
            )
    assert warnings_of(ds) == expected
    assert all(len(w.splitlines()) == 1 and w.endswith(".") for w in warnings_of(ds))


def test_splits_emptied_by_keeping_them_apart_say_how_many_tiles_went(scene, tmp_path):
    ds = load_dataset(
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, stride=4, split_block=2, seed=1)
    )
    dropped = ds.meta["split"]["dropped_overlap"]
    assert ds.meta["split_counts"]["val"] == ds.meta["split_counts"]["test"] == 0
    assert (
        f"Keeping the splits apart dropped {dropped['val']} validation and {dropped['test']} test tiles that shared "
        "pixels with or lay near a tile of another split; a larger --split-block or --stride, or a smaller "
        "--split-buffer, drops fewer." in warnings_of(ds)
    )
    assert any(w.startswith("The validation split is empty") for w in warnings_of(ds))


def test_a_healthy_scene_has_no_warning(tmp_path):
    healthy = make_scene(tmp_path / "scene", size=256, seed=4, patch=1)
    ds = load_dataset(prepare_dataset(healthy.image, healthy.labels, tmp_path / "ds", tile=8, split_block=2))
    assert min(ds.meta["split_counts"].values()) >= 50
    assert warnings_of(ds) == []


def test_the_prepare_command_prints_each_warning(tmp_path):
    small = make_scene(tmp_path / "scene", size=101, seed=1)
    home = tmp_path / "home"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "olr",
            "prepare",
            "--image",
            small.image,
            "--labels",
            small.labels,
            "--out",
            "data/tiny",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "OLR_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    meta = json.loads((home / "data" / "tiny" / "meta.json").read_text())
    printed = [line[len("warning: ") :] for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert printed == meta["warnings"] and len(printed) >= 2


def test_the_datasets_page_shows_the_warnings_and_how_the_split_was_made(tmp_path, _isolated_workspace, monkeypatch):

    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    small = make_scene(tmp_path / "scene", size=101, seed=1)
    prepare_dataset(small.image, small.labels, _isolated_workspace / "data" / "tiny", tile=32, stride=16)
    meta = json.loads((_isolated_workspace / "data" / "tiny" / "meta.json").read_text())
    at = open_app(**{"olr.dataset": "tiny"})
    shown = [str(w.value).replace("\\", "") for w in at.warning]
    assert meta["warnings"] and all(sentence in shown for sentence in meta["warnings"])
    split_help = next(m for m in at.metric if m.label == "Train / val / test").help.replace("\\", "")
    assert "sharing pixels with a tile of another split are dropped" in split_help
    assert "band statistics are over the training tiles" in split_help
