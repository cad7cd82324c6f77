"""prepare_dataset on real GeoTIFFs: alignment, fractions, nodata, schemes, pruning, splits,
atomic output, and the CLI's bad-input handling (real subprocesses)."""

import errno
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from olr.data import label_schemes, splits, tile_reader, tile_writer
from olr.data.dataset import band_statistics, load_dataset
from olr.data.prepare import prepare_dataset
from olr.data.prepare_estimate import estimate_dataset
from olr.errors import OLRError
from tests.fixtures.data import (
    IMAGE_CRS,
    IMAGE_ORIGIN,
    LABEL_CRS,
    Scene,
    codes_to_grid,
    expected_code_index,
    expected_tile_counts,
    make_scene,
    run_cli_concurrently,
    write_clc_raster,
    write_label_vector,
    write_raster,
)

TILE_COLUMNS = [
    "tile_id",
    "row_off",
    "col_off",
    "split",
    "block_id",
    "nodata_share",
    "x_min",
    "y_min",
    "x_max",
    "y_max",
    "lon_min",
    "lat_min",
    "lon_max",
    "lat_max",
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Scene:
    """128 x 128 px (8 x 8 tiles of 16 px) over 100 m labels in another CRS."""
    return make_scene(tmp_path_factory.mktemp("prep_scene"), size=128, seed=3)


def source_pixels(scene: Scene) -> np.ndarray:
    with rasterio.open(scene.image) as src:
        return src.read().transpose(1, 2, 0)  # (h, w, b)


def expected_fractions(scene, ds):
    """(N, 44) code fractions over labelled valid pixels, computed independently."""
    t = ds.meta["tile"]
    counts = expected_tile_counts(scene, ds.tiles.row_off.to_numpy(), ds.tiles.col_off.to_numpy(), t)[:, 1:]
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def all_code_fractions(ds) -> np.ndarray:
    """(N, 44) dataset code fractions expanded to every CLC code."""
    out = np.zeros((ds.n_tiles, len(label_schemes.ALL_CODES)), dtype=np.float32)
    for j, code in enumerate(ds.codes):
        out[:, label_schemes.ALL_CODES.index(code)] = ds.code_fractions[:, j]
    return out


# ---------------------------------------------------------------- the dataset contract


def test_tiny_dataset_follows_the_contract(tiny_dataset, tiny_rasters):
    ds = load_dataset(tiny_dataset)
    meta = ds.meta
    n, t = ds.n_tiles, 16
    assert isinstance(ds.images, np.memmap) and ds.images.shape == (n, t, t, 4) and ds.images.dtype == np.uint16
    assert ds.fractions.dtype == np.float32 and ds.fractions.shape == (n, len(meta["labels"]))
    assert np.array_equal(ds.presence, (ds.fractions >= meta["min_fraction"]).astype(np.uint8))
    assert list(ds.tiles.columns[: len(TILE_COLUMNS)]) == TILE_COLUMNS or set(TILE_COLUMNS) <= set(ds.tiles.columns)
    assert np.array_equal(ds.tiles.tile_id, np.arange(n))
    assert set(ds.tiles.split) <= {"train", "val", "test"}
    for split in ("train", "val", "test"):  # the rows of each split, found once, handed out as copies
        rows = ds.split_indices(split)
        assert np.array_equal(rows, np.flatnonzero(ds.tiles.split.to_numpy() == split))
        rows[:] = -1
        assert np.array_equal(ds.split_indices(split), np.flatnonzero(ds.tiles.split.to_numpy() == split))

    # Every tile holds the source pixels at its offsets.
    pixels = source_pixels(tiny_rasters)
    for i, (r, c) in enumerate(zip(ds.tiles.row_off, ds.tiles.col_off)):
        assert np.array_equal(ds.images[i], pixels[r : r + t, c : c + t])

    # Fractions equal an independent per-pixel computation; labels follow from codes.
    assert np.allclose(all_code_fractions(ds), expected_fractions(tiny_rasters, ds), atol=1e-7, rtol=0)
    assert (ds.code_fractions.max(0) > 0).all() and ds.codes == sorted(ds.codes)
    matrix = label_schemes.Scheme("x", tuple(ds.labels)).code_matrix(ds.codes)
    assert np.allclose(ds.fractions, np.asarray(ds.code_fractions) @ matrix, atol=1e-6)
    legend = label_schemes.by_code()
    for lab in meta["labels"]:
        assert lab["color"] == legend[lab["codes"][0]].color and lab["name"] == legend[lab["codes"][0]].level3

    # Tile bounds in the image CRS and lon/lat; the preview covers them.
    with rasterio.open(tiny_rasters.image) as src:
        x0, y0 = src.transform * (ds.tiles.col_off.to_numpy(), ds.tiles.row_off.to_numpy())
    assert np.allclose(ds.tiles.x_min, x0) and np.allclose(ds.tiles.y_max, y0)
    assert np.allclose(ds.tiles.x_max - ds.tiles.x_min, t * 10) and np.allclose(ds.tiles.y_max - ds.tiles.y_min, t * 10)
    (south, west), (north, east) = meta["preview"]["bounds_lonlat"]
    assert 34 < south < north < 36 and 32.9 < west < east < 33.2
    assert (ds.tiles.lon_min >= west - 1e-6).all() and (ds.tiles.lat_max <= north + 1e-6).all()
    with rasterio.open(tiny_dataset / meta["preview"]["file"]) as png:
        assert png.driver == "PNG" and png.count == 4 and max(png.width, png.height) <= 1024
        alpha = png.read(4)
        assert alpha.mean() > 200  # the scene is there

    # Meta: sources with checksums, CRS, grid, parameters.
    for key in ("image", "labels"):
        source = meta["sources"][key]
        path = Path(source["path"])
        assert source["size"] == path.stat().st_size
        assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["crs"]["epsg"] == 32636 and meta["resolution"] == [10.0, 10.0]
    assert (meta["width"], meta["height"], meta["tile"], meta["stride"]) == (192, 192, 16, 16)
    assert meta["kind"] == "raster" and meta["label_encoding"] == "grid" and meta["dtype"] == "uint16"
    assert meta["parameters"]["tile"] == 16 and meta["parameters"]["split_block"] == 3
    assert meta["created"].endswith("+00:00")
    # The scene's bands carry no names: they are numbered, not given a guessed colour order.
    assert [b["name"] for b in meta["bands"]] == ["band 1", "band 2", "band 3", "band 4"]
    assert meta["band_statistics_split"] == "train"  # validation and test tiles do not shape the inputs
    exact = band_statistics(ds.images, rows=ds.split_indices("train"))
    for got, want in zip(meta["bands"], exact):
        for k in ("mean", "std", "min", "max"):
            assert got[k] == pytest.approx(want[k], rel=1e-6)
    assert meta["split"]["method"] == "spatial_blocks" and meta["split"]["counts"] == meta["split_counts"]
    assert meta["scheme"]["name"] == "level3" and meta["scheme"]["n_labels"] == 44
    assert len(meta["scheme"]["absent"]) == 44 - len(meta["labels"])


def test_overlapping_tiles_with_a_stride(scene, tmp_path):
    ds = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "s", tile=16, stride=8, split_block=4))
    assert ds.meta["tile_grid"] == {"rows": 15, "cols": 15, "tiles": 225}
    assert ds.n_tiles + sum(ds.meta["dropped"].values()) == 225
    assert set(ds.tiles.row_off % 8) == {0} and ds.tiles.row_off.max() == 112
    pixels = source_pixels(scene)
    for i in range(0, ds.n_tiles, 7):
        r, c = ds.tiles.row_off[i], ds.tiles.col_off[i]
        assert np.array_equal(ds.images[i], pixels[r : r + 16, c : c + 16])
    assert np.allclose(all_code_fractions(ds), expected_fractions(scene, ds), atol=1e-7, rtol=0)


def test_grid_and_clc_rasters_give_identical_datasets(scene, tmp_path):
    a = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "grid", tile=16))
    clc_raster = write_clc_raster(tmp_path / "clc.tif", scene)
    b = load_dataset(prepare_dataset(scene.image, clc_raster, tmp_path / "clc", tile=16))
    assert (a.meta["label_encoding"], b.meta["label_encoding"]) == ("grid", "clc")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.fractions, b.fractions)
    assert np.array_equal(a.code_fractions, b.code_fractions) and a.codes == b.codes
    assert a.tiles.equals(b.tiles) and a.meta["labels"] == b.meta["labels"]


def test_vector_labels_give_the_raster_fractions_away_from_borders(scene, tmp_path):
    gpkg = write_label_vector(tmp_path / "clc.gpkg", scene.codes, scene.label_transform)
    r = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "r", tile=16, min_labels=0))
    v = load_dataset(prepare_dataset(scene.image, gpkg, tmp_path / "v", tile=16, min_labels=0))
    assert v.meta["sources"]["labels"]["kind"] == "vector" and v.meta["label_encoding"] == "clc"
    assert r.tiles[["row_off", "col_off"]].equals(v.tiles[["row_off", "col_off"]])
    rf, vf = all_code_fractions(r), all_code_fractions(v)
    interior = rf.max(1) == 1.0
    assert interior.sum() >= 10 and np.array_equal(rf[interior], vf[interior])
    # At borders at most a pixel or two per tile differs (polygon edges are straight in the image CRS).
    assert np.abs(rf - vf).max() <= 2 / 256 + 1e-6


def test_image_nodata_is_measured_and_drops_tiles(tmp_path):
    scene = make_scene(tmp_path / "scene", size=128, image_nodata=0, nodata_rows=24, seed=5)
    strict = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "strict", tile=16, max_nodata=0.1))
    assert strict.meta["dropped"]["nodata"] == 16  # tile rows 0 (all nodata) and 1 (half)
    assert strict.tiles.row_off.min() == 32 and (strict.tiles.nodata_share == 0).all()

    loose = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "loose", tile=16, max_nodata=0.6))
    assert loose.meta["dropped"]["nodata"] == 8
    half = loose.tiles.row_off.to_numpy() == 16
    assert half.sum() == 8 and np.allclose(loose.tiles.nodata_share[half], 0.5)
    # Fractions of half-nodata tiles count only their valid rows 24..31.
    got = all_code_fractions(loose)[half]
    for k, (r, c) in enumerate(zip(loose.tiles.row_off[half], loose.tiles.col_off[half])):
        codes = expected_code_index(scene, np.arange(r + 8, r + 16)[:, None], np.arange(c, c + 16)[None, :])
        counts = np.bincount(codes.ravel(), minlength=45)[1:]
        assert np.allclose(got[k], counts / counts.sum(), atol=1e-7)
    assert min(b["min"] for b in loose.meta["bands"]) >= 1  # the nodata value 0 is not in the statistics


def test_label_values_outside_1_to_44_are_unlabelled(tmp_path):
    scene = make_scene(tmp_path / "scene", size=128, seed=7)
    grid = codes_to_grid(scene.codes)
    codes = scene.codes.copy()
    _h, _w = grid.shape
    for k, value in enumerate((48, 49, 50, 255)):  # four stripes of "no label"
        rows = slice(3 + 4 * k, 5 + 4 * k)
        grid[rows] = value
        codes[rows] = 0
    labels = write_raster(tmp_path / "labels.tif", grid, LABEL_CRS, scene.label_transform)
    truth = Scene(scene.image, labels, codes, scene.label_transform, scene.image_transform, scene.size, scene.res)
    # No colour table: grid codes only when said so (auto does not guess small values).
    ds = load_dataset(
        prepare_dataset(scene.image, labels, tmp_path / "ds", tile=16, min_labels=0, label_encoding="grid")
    )
    counts = expected_tile_counts(truth, ds.tiles.row_off.to_numpy(), ds.tiles.col_off.to_numpy(), 16)
    assert counts[:, 0].sum() > 0
    assert np.allclose(ds.tiles.unlabelled_share, counts[:, 0] / 256)
    want = counts[:, 1:] / np.maximum(counts[:, 1:].sum(1, keepdims=True), 1)
    assert np.allclose(all_code_fractions(ds), want, atol=1e-7)
    labelled = counts[:, 1:].sum(1) > 0
    assert np.allclose(ds.fractions[labelled].sum(1), 1.0, atol=1e-5)
    empty = ~labelled
    assert empty.any() and (ds.fractions[empty] == 0).all()  # tiles with no label kept only because min_labels=0
    dropped = load_dataset(
        prepare_dataset(scene.image, labels, tmp_path / "ds1", tile=16, min_labels=1, label_encoding="grid")
    )
    assert dropped.n_tiles == ds.n_tiles - int(empty.sum())
    assert dropped.meta["dropped"]["too_few_labels"] == int(empty.sum())


# ---------------------------------------------------------------- schemes and pruning


@pytest.mark.parametrize("scheme", [*label_schemes.SCHEME_NAMES, "custom", "json"])
def test_every_scheme_aggregates_code_fractions(scene, tmp_path, scheme):
    if scheme == "custom":
        scheme = {"Built": [112, 121], "Farmland": [211, 223], "Wild": [312, 323, 333]}
    elif scheme == "json":
        path = tmp_path / "mapping.json"
        path.write_text(json.dumps({"Land": [112, 211, 223, 312, 323], "Water": [523]}))
        scheme = str(path)
    ds = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, scheme=scheme, min_labels=0))
    s = label_schemes.get_scheme(scheme)
    full = all_code_fractions(ds) @ s.code_matrix(label_schemes.ALL_CODES)
    occurs = (full >= ds.meta["min_fraction"]).any(0)
    assert ds.label_names == [lab.name for lab, o in zip(s.labels, occurs) if o]
    assert ds.meta["scheme"]["absent"] == [lab.name for lab, o in zip(s.labels, occurs) if not o]
    assert ds.meta["scheme"]["n_labels"] == len(s.labels)
    assert list(ds.meta["scheme"]["dropped_codes"]) == list(s.dropped_codes)
    assert np.allclose(ds.fractions, full[:, occurs], atol=1e-6)
    assert (ds.presence.sum(0) > 0).all()


def test_ben19_tiles_covered_only_by_dropped_codes_have_no_labels(tmp_path):
    # 122 (road and rail) and 131 (mineral extraction) are among BigEarthNet-19's dropped codes.
    scene = make_scene(tmp_path / "scene", size=128, codes=(122, 131, 211, 312), patch=8, seed=2)
    ds = load_dataset(
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, scheme="ben19", min_labels=0)
    )
    cf = all_code_fractions(ds)
    dropped_only = cf[:, [label_schemes.ALL_CODES.index(122), label_schemes.ALL_CODES.index(131)]].sum(1) == 1.0
    assert dropped_only.sum() >= 3
    assert (ds.fractions[dropped_only] == 0).all() and (ds.presence[dropped_only] == 0).all()
    assert {122, 131} <= set(ds.meta["scheme"]["dropped_codes"])
    kept = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "ds1", tile=16, scheme="ben19"))
    assert kept.n_tiles == ds.n_tiles - int((ds.presence.sum(1) == 0).sum())
    assert kept.meta["dropped"]["too_few_labels"] == int((ds.presence.sum(1) == 0).sum())


def test_pruning_drops_rare_labels_and_the_tiles_left_without_labels(tmp_path):
    scene = make_scene(tmp_path / "scene", size=128, codes=(112, 211, 223, 312, 323, 523, 333, 411), patch=3, seed=4)
    full = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "full", tile=16))
    freq = full.presence.sum(0)
    threshold = int(np.sort(freq)[len(freq) // 2])  # prune about half the labels
    pruned = load_dataset(
        prepare_dataset(scene.image, scene.labels, tmp_path / "pruned", tile=16, prune_below=threshold)
    )
    keep = freq >= threshold
    assert 0 < keep.sum() < len(keep)
    assert pruned.label_names == [n for n, k in zip(full.label_names, keep) if k]
    assert pruned.meta["pruned"] == [n for n, k in zip(full.label_names, keep) if not k]
    left = full.presence[:, keep].sum(1) >= 1
    assert pruned.meta["dropped"]["too_few_labels_after_pruning"] == int((~left).sum())
    assert pruned.n_tiles == int(left.sum())
    # images.npy was compacted in place: every remaining tile still holds its own pixels.
    pixels = source_pixels(scene)
    for i, (r, c) in enumerate(zip(pruned.tiles.row_off, pruned.tiles.col_off)):
        assert np.array_equal(pruned.images[i], pixels[r : r + 16, c : c + 16])
    assert np.array_equal(pruned.fractions, full.fractions[left][:, keep])
    exact = band_statistics(pruned.images, rows=pruned.split_indices("train"))
    assert [b["mean"] for b in pruned.meta["bands"]] == pytest.approx([b["mean"] for b in exact], rel=1e-9)


# ---------------------------------------------------------------- splits


def test_split_is_spatial_reproducible_and_balanced(scene, tmp_path):
    a = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "a", tile=16, split_block=2, seed=1))
    b = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "b", tile=16, split_block=2, seed=1))
    c = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / "c", tile=16, split_block=2, seed=2))
    assert a.tiles.split.equals(b.tiles.split)
    assert not a.tiles.split.equals(c.tiles.split)
    for ds in (a, c):
        t = ds.tiles
        assert (t.groupby("block_id").split.nunique() == 1).all()  # blocks never straddle splits
        blocks = t.groupby("block_id")
        assert (blocks.tile_row.apply(lambda r: (r // 2).nunique()) == 1).all()
        assert (blocks.tile_col.apply(lambda r: (r // 2).nunique()) == 1).all()
        counts = t.split.value_counts()
        for name, share in zip(splits.SPLITS, (0.7, 0.15, 0.15)):
            assert abs(counts.get(name, 0) - share * len(t)) <= 2 * 4  # within two blocks of 2 x 2 tiles
    assert a.meta["split"] == {**a.meta["split"], "method": "spatial_blocks", "block": 2, "seed": 1}


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=60),
    seed=st.integers(0, 2**31),
    fractions=st.tuples(st.floats(0.1, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_block_assignment_is_deterministic_and_close_to_the_fractions(sizes, seed, fractions):
    block_ids = np.repeat(np.arange(len(sizes)) * 7 + 3, sizes)  # arbitrary ids
    first = splits.assign_blocks(block_ids, fractions, seed)
    assert np.array_equal(first, splits.assign_blocks(block_ids, fractions, seed))
    for b in np.unique(block_ids):
        assert len(set(first[block_ids == b])) == 1
    norm = np.asarray(fractions) / sum(fractions)
    counts = splits.split_counts(first)
    for name, share in zip(splits.SPLITS, norm):
        if share == 0:
            assert counts[name] == 0
        assert counts[name] - share * len(block_ids) <= max(sizes)  # never over by more than one block


# ---------------------------------------------------------------- atomic output and bad input


def test_existing_dataset_is_kept_unless_overwrite(scene, tmp_path):
    out = prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16)
    before = (out / "meta.json").read_bytes()
    with pytest.raises(OLRError, match="already exists"):
        prepare_dataset(scene.image, scene.labels, out, tile=32)
    assert (out / "meta.json").read_bytes() == before
    prepare_dataset(scene.image, scene.labels, out, tile=32, overwrite=True)
    assert load_dataset(out).tile_shape == (32, 32, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no leftovers


def test_two_prepares_of_one_name_at_once_never_replace_each_other(tmp_path, _isolated_workspace):
    """Two real `prepare` processes on one name, neither with --overwrite: one wins, the other refuses."""
    import sys

    big = make_scene(tmp_path / "big", size=384, seed=4)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OLR_HOME=str(_isolated_workspace), PYTHONPATH=str(repo))
    command = [sys.executable, "-m", "olr", "prepare", "--image", big.image, "--labels", big.labels, "--out", "data/ds"]
    procs = {
        tile: subprocess.Popen(
            [*command, "--tile", str(tile)],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tile in (16, 32)
    }
    results = {tile: (p.wait(300), p.stderr.read()) for tile, p in procs.items()}
    winners = [tile for tile, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    loser_code, loser_err = results[({16, 32} - set(winners)).pop()]
    last_line = loser_err.strip().splitlines()[-1]
    # Which refusal the loser gives depends on when it looked: before the winner's rename it learns at its own
    # rename that the name "was created meanwhile" (that path alone is pinned in test_atomic); after it, it
    # refuses up front because the name "already exists". Either way it exits 2 and names --overwrite.
    refusals = ("was created meanwhile", "already exists")
    assert loser_code == 2 and any(r in last_line for r in refusals) and "--overwrite" in last_line, loser_err
    assert load_dataset(_isolated_workspace / "data" / "ds").tile_shape[0] == winners[0]
    assert sorted(p.name for p in (_isolated_workspace / "data").iterdir()) == ["ds"]


def test_disk_full_mid_write_leaves_nothing(scene, tmp_path, monkeypatch):
    monkeypatch.setattr(tile_reader, "WINDOW_BYTES", 1)  # one tile column per window: many writes
    calls = []
    real_write_at = tile_writer.TileWriter._write_at

    def write_at(self, data, offset):  # where tile bytes reach the disk
        calls.append(len(data))
        if len(calls) == 3:  # two windows of tiles written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_at(self, data, offset)

    monkeypatch.setattr(tile_writer.TileWriter, "_write_at", write_at)
    with pytest.raises(OLRError, match="disk is full"):
        prepare_dataset(scene.image, scene.labels, tmp_path / "data" / "ds", tile=16)
    assert len(calls) == 3
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("direct", [True, False])
def test_tile_writer_streams_any_tile_size_into_a_plain_npy(tmp_path, monkeypatch, direct):
    if not direct:
        monkeypatch.delattr(os, "O_DIRECT", raising=False)  # a file system without direct I/O
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 2**16, (40, 9, 9, 3)).astype(np.uint16)  # 486 bytes: never page-aligned
    writer = tile_writer.TileWriter(tmp_path / "images.npy", (9, 9, 3), np.uint16)
    assert (writer._direct is not None) == (direct and hasattr(os, "O_DIRECT"))
    writer.append(tiles[:7])
    out = writer.region(20)
    out[...] = tiles[7:27]
    out[:5] = out[[0, 3, 4, 10, 19]]  # keep 5 of the 20, like dropped tiles in a window
    writer.commit(5)
    writer.append(tiles[27:], chunk=4)
    kept = np.concatenate([tiles[:7], tiles[7:27][[0, 3, 4, 10, 19]], tiles[27:]])
    writer.keep_only(np.arange(len(kept)) % 3 != 1)
    assert writer.close() == len(kept[np.arange(len(kept)) % 3 != 1])
    loaded = np.load(tmp_path / "images.npy", mmap_mode="r")
    assert loaded.dtype == np.uint16 and np.array_equal(loaded, kept[np.arange(len(kept)) % 3 != 1])
    assert (tmp_path / "images.npy").stat().st_size == writer.header_len + loaded.nbytes


def _read_only(folder: Path):
    """Make `folder` unwritable, even for root (chattr +i); returns an undo function, or None
    when this machine cannot (root without chattr)."""
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return lambda: folder.chmod(0o755)
    (folder / "probe").unlink()
    folder.chmod(0o755)
    try:
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_permission_denied_leaves_nothing(scene, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    undo = _read_only(parent)
    if undo is None:
        pytest.skip("cannot make a folder read-only on this machine")
    try:
        with pytest.raises(OLRError, match=r"(?i)cannot write|permission denied"):
            prepare_dataset(scene.image, scene.labels, parent / "ds", tile=16)
        assert list(parent.iterdir()) == []
    finally:
        undo()


# ---------------------------------------------------------------- size estimate before writing


def no_tile_written(done: int, total: int, message: str) -> None:
    """A progress callback that fails the test as soon as a tile has been written."""
    if done > 0:
        raise AssertionError(f"a tile was written ({message}: {done}/{total})")


def test_a_sparse_geotiff_declaring_a_huge_size_is_refused_before_any_tile(scene, tmp_path, _isolated_workspace):
    huge = tmp_path / "huge.tif"
    side = 10**6  # 10^12 pixels at 1 mm over the scene: a terabyte of tiles from a file of a few MB
    transform = rasterio.transform.from_origin(*IMAGE_ORIGIN, 0.001, 0.001)
    with rasterio.open(
        huge, "w", driver="GTiff", width=side, height=side, count=1, dtype="uint8", crs=IMAGE_CRS,
        transform=transform, tiled=True, blockxsize=1024, blockysize=1024, sparse_ok=True, bigtiff="YES",
    ):  # fmt: skip
        pass
    assert huge.stat().st_size < 50 * 2**20
    out = _isolated_workspace / "data" / "huge"
    refused = r"would take up to 2\.\d TB \(3,906,250,000 tiles\), above the limit of 20 GB"
    with pytest.raises(OLRError, match=refused) as info:
        prepare_dataset(huge, scene.labels, out, tile=16, progress=no_tile_written)
    assert len(str(info.value).splitlines()) == 1
    data = _isolated_workspace / "data"
    assert not data.exists() or list(data.iterdir()) == []


def test_the_size_cap_refuses_a_normal_scene(scene, tmp_path, monkeypatch):
    monkeypatch.setenv("OLR_MAX_DATASET_GB", "0.0001")  # 105 KB; the scene's tiles take 128 KB
    with pytest.raises(OLRError, match=r"above the limit of 0\.0001 GB \(OLR_MAX_DATASET_GB\)"):
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, progress=no_tile_written)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("OLR_MAX_DATASET_GB", "lots")
    with pytest.raises(OLRError, match="OLR_MAX_DATASET_GB='lots' is not a positive number"):
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs), unmounted afterwards."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_dataset_larger_than_the_free_disk_is_refused_before_writing(small_disk, tmp_path):
    big = make_scene(tmp_path / "big", size=512, seed=2)  # 2 MB of uint16 pixels, more with the tile table
    with pytest.raises(OLRError, match=r"would take up to 2\.\d MB \(1,024 tiles\), more than the 2\.0 MB free"):
        prepare_dataset(big.image, big.labels, small_disk / "ds", tile=16, progress=no_tile_written)
    assert list(small_disk.iterdir()) == []


def test_the_estimate_is_close_to_the_real_size(scene, tmp_path):
    estimate = estimate_dataset(scene.image, tile=16)
    out = prepare_dataset(scene.image, scene.labels, tmp_path / "ds", tile=16, min_labels=0)
    real = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert estimate.tiles == 64 and estimate.tile_bytes == 16 * 16 * 4 * 2
    assert 0.5 < real / estimate.bytes < 2, (real, estimate)
    assert estimate.describe().startswith("about 64 tiles, ") and estimate.seconds > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"tile": 4}, "tile size 4 is not valid"),
        ({"tile": 256}, "larger than the image"),
        ({"stride": 0}, "stride"),
        ({"scheme": "level4"}, "Unknown label scheme"),
        ({"scheme": {"Urban": [111, 999]}}, "unknown CLC code 999"),
        ({"min_fraction": 0}, "min fraction"),
        ({"max_nodata": 1.5}, "max nodata"),
        ({"split_fractions": (0, 1, 1)}, "split fractions"),
        ({"label_encoding": "utf8"}, "Unknown label encoding"),
    ],
)
def test_bad_parameters(scene, tmp_path, kwargs, message):
    with pytest.raises(OLRError, match=message):
        prepare_dataset(scene.image, scene.labels, tmp_path / "ds", **{"tile": 16, **kwargs})
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------- the CLI, as a user runs it


@pytest.fixture(scope="module")
def cli(tmp_path_factory, scene):
    """Every CLI case at once, each in its own workspace."""
    root = tmp_path_factory.mktemp("cli")
    files = root / "files"
    files.mkdir()
    text = files / "notes.tif"
    text.write_text("this is not a raster")
    no_crs = files / "no_crs.tif"
    with rasterio.open(
        no_crs, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", transform=scene.image_transform
    ) as dst:
        dst.write(np.ones((1, 64, 64), np.uint8))
    no_transform = files / "no_transform.tif"
    with rasterio.open(
        no_transform, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=IMAGE_CRS
    ) as dst:
        dst.write(np.ones((1, 64, 64), np.uint8))
    far = write_raster(
        files / "far.tif",
        codes_to_grid(scene.codes),
        LABEL_CRS,
        rasterio.transform.from_origin(2_000_000, 5_000_000, 100, 100),
    )
    empty = write_raster(
        files / "empty.tif", np.full(scene.codes.shape, 255, np.uint8), LABEL_CRS, scene.label_transform
    )
    mapping = files / "mapping.json"
    mapping.write_text(json.dumps({"Urban": [111, 112], "Ghost": [999]}))
    ok = ["prepare", "--image", scene.image, "--labels", scene.labels, "--tile", "16"]

    def existing(home):
        prepare_dataset(scene.image, scene.labels, home / "data" / "ds", tile=16)

    def locked(home):
        (home / "data").mkdir()
        undo = _read_only(home / "data")
        if undo is not None:
            locks.append(undo)

    locks: list = []
    cases = {
        "ok": ([*ok, "--out", "data/ds", "--split-block", "2"], None),
        "missing_image": (
            ["prepare", "--image", files / "nope.tif", "--labels", scene.labels, "--tile", "16", "--out", "data/ds"],
            None,
        ),
        "not_raster": (
            ["prepare", "--image", text, "--labels", scene.labels, "--tile", "16", "--out", "data/ds"],
            None,
        ),
        "no_crs": (["prepare", "--image", no_crs, "--labels", scene.labels, "--tile", "16", "--out", "data/ds"], None),
        "no_transform": (
            ["prepare", "--image", no_transform, "--labels", scene.labels, "--tile", "16", "--out", "data/ds"],
            None,
        ),
        "no_overlap": (["prepare", "--image", scene.image, "--labels", far, "--tile", "16", "--out", "data/ds"], None),
        "no_class": (["prepare", "--image", scene.image, "--labels", empty, "--tile", "16", "--out", "data/ds"], None),
        "tile_too_large": ([*ok[:-1], "512", "--out", "data/ds"], None),
        "tile_too_small": ([*ok[:-1], "4", "--out", "data/ds"], None),
        "unknown_scheme": ([*ok, "--scheme", "corine9", "--out", "data/ds"], None),
        "unknown_code": ([*ok, "--scheme", mapping, "--out", "data/ds"], None),
        "name_with_slash": ([*ok, "--out", "data/a/b"], None),
        "name_with_dotdot": ([*ok, "--out", "data/.."], None),
        "name_escaping": ([*ok, "--out", "../escape"], None),
        "exists": ([*ok, "--out", "data/ds"], existing),
        "read_only": ([*ok, "--out", "data/ds"], locked),
        "bench": (["bench", "prepare", "--size", "160", "--tile", "16", "--workdir", root / "bench"], None),
    }
    try:
        results = run_cli_concurrently(cases, root / "homes")
        probe = subprocess.run(
            [
                os.sys.executable,
                "-c",
                "import sys, olr.data.prepare, olr.data.thesis_import, olr.workflows.bench, olr.cli; "
                "print('tensorflow' in sys.modules)",
            ],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
        )
    finally:
        for undo in locks:
            undo()
    return results, probe


def test_cli_prepares_a_dataset_and_prints_tile_counts(cli):
    results, _ = cli
    r = results["ok"]
    assert r.returncode == 0, r.stderr
    ds = load_dataset(r.home / "data" / "ds")
    assert "64/64 tiles" in r.stderr and f"{ds.n_tiles} tiles" in r.stdout
    assert ds.meta["split"]["block"] == 2


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing_image", "does not exist"),
        ("not_raster", "is not a raster"),
        ("no_crs", "no coordinate reference system"),
        ("no_transform", "no geotransform"),
        ("no_overlap", "do not overlap"),
        ("no_class", "no valid land-cover class"),
        ("tile_too_large", "larger than the image"),
        ("tile_too_small", "tile size 4 is not valid"),
        ("unknown_scheme", "Unknown label scheme 'corine9'"),
        ("unknown_code", "unknown CLC code 999"),
        ("name_with_slash", "not allowed"),
        ("name_with_dotdot", "not allowed"),
        ("name_escaping", "not allowed"),
        ("exists", "already exists"),
        ("read_only", "(?i)cannot write|permission denied"),
    ],
)
def test_cli_bad_input_is_one_sentence_exit_2_and_writes_nothing(cli, case, message):
    import re

    r = cli[0][case]
    if case == "read_only" and r.returncode == 0:
        pytest.skip("cannot make a folder read-only on this machine")
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr
    assert re.search(message, lines[0]), lines[0]
    data = r.home / "data"
    left = sorted(p.name for p in data.iterdir()) if data.exists() else []
    assert left == (["ds"] if case == "exists" else [])


def test_bench_prepare_reports_its_figures(cli):
    r = cli[0]["bench"]
    assert r.returncode == 0, r.stderr
    for line in ("read (I/O floor):", "prepare:", "ratio prepare/read:", "peak RSS prepare:", "tiles/s:"):
        assert line in r.stdout
    figures = {line.split(":")[0]: float(line.split(":")[1].split()[0]) for line in r.stdout.splitlines()[1:]}
    assert figures["read (I/O floor)"] > 0 and figures["prepare"] > 0 and figures["peak RSS prepare"] > 10
    assert figures["ratio prepare/read"] > 0 and figures["tiles/s"] > 0
    assert load_dataset(r.home.parent.parent / "bench" / "prepared").n_tiles > 0  # the benchmark's real output


def test_prepare_does_not_import_tensorflow(cli):
    probe = cli[1]
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"
