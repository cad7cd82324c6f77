"""Datasets of several scenes on real GeoTIFFs: scene lists (list file, folder), scenes tiled in parallel by
Dask into one dataset (scene column, per-scene previews, splits that respect scenes), crash safety when a
worker dies, and the CLI."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from distributed import WorkerPlugin

from olr.data import scenes as scenes_module
from olr.data import splits
from olr.data.dataset import SCENES_FOLDER, band_statistics, load_dataset
from olr.data.prepare import prepare_dataset
from olr.data.scenes import SceneSource, prepare_scenes, read_scene_list
from olr.errors import OLRError
from tests.fixtures.data import make_scene, run_cli_concurrently

#: 16 px tiles, 2 x 2-tile blocks: small scenes still give every split blocks
SETTINGS = {"tile": 16, "split_block": 2, "seed": 1}


@pytest.fixture(scope="module")
def three_scenes(tmp_path_factory) -> list[SceneSource]:
    """Three scenes of other land cover and sizes (128, 96 and 112 px, 10 m) over CORINE labels (100 m)."""
    root = tmp_path_factory.mktemp("scenes")
    made = [
        make_scene(root / name, size=size, seed=seed)
        for name, size, seed in (("a", 128, 1), ("b", 96, 2), ("c", 112, 3))
    ]
    return [SceneSource(name, s.image, s.labels) for name, s in zip("abc", made)]


def local_cluster():
    """A local Dask cluster of two one-thread workers; a scene's task is tried again once on another worker,
    as on `prepare_scenes`' own clusters (`CLUSTER_CONFIG`)."""
    import dask
    import distributed

    with dask.config.set(scenes_module.CLUSTER_CONFIG):
        return distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="2GiB"
        )


@pytest.fixture(scope="module")
def cluster():
    """A local cluster shared by the tests below (`--scheduler`); the test that kills workers has its own."""
    with local_cluster() as shared:
        yield shared


@pytest.fixture(scope="module")
def merged(tmp_path_factory, three_scenes) -> Path:
    """The three scenes prepared in parallel on prepare_scenes' own local cluster (2 workers)."""
    out = tmp_path_factory.mktemp("merged") / "three"
    return prepare_scenes(three_scenes, out, workers=2, **SETTINGS)


# ------------------------------------------------------------------ one dataset of three scenes


def test_three_scenes_become_one_dataset_with_a_scene_column(merged, three_scenes, tmp_path):
    ds = load_dataset(merged)
    assert ds.scene_names == ["a", "b", "c"]
    assert list(ds.tiles["scene"].unique()) == ["a", "b", "c"]  # scene after scene, in the list's order
    assert not (merged / scenes_module.PARTS).exists() and not any(p.name.startswith(".") for p in merged.iterdir())
    start = 0
    for entry, scene in zip(ds.meta["scenes"], three_scenes):
        rows = np.flatnonzero(ds.tiles["scene"].to_numpy() == scene.name)
        assert entry["rows"] == [start, start + len(rows)] and entry["n_tiles"] == len(rows) > 0
        assert np.array_equal(rows, np.arange(start, start + len(rows)))  # consecutive rows
        start += len(rows)
        # each scene holds the tiles, pixels and label fractions its own one-scene preparation has
        alone = load_dataset(prepare_dataset(scene.image, scene.labels, tmp_path / scene.name, **SETTINGS))
        mine = ds.tiles.iloc[rows]
        assert sorted(zip(mine.row_off, mine.col_off)) == sorted(zip(alone.tiles.row_off, alone.tiles.col_off))
        with rasterio.open(scene.image) as src:
            pixels = src.read().transpose(1, 2, 0)
        for i, (r, c) in zip(rows, zip(mine.row_off, mine.col_off)):
            assert np.array_equal(ds.images[i], pixels[r : r + 16, c : c + 16])
        by_place = {(r, c): i for i, (r, c) in enumerate(zip(alone.tiles.row_off, alone.tiles.col_off))}
        order = [by_place[(r, c)] for r, c in zip(mine.row_off, mine.col_off)]
        mine_codes = dict(zip(ds.codes, np.asarray(ds.code_fractions)[rows].T))
        for j, code in enumerate(alone.codes):
            assert np.allclose(mine_codes[code], np.asarray(alone.code_fractions)[order, j], atol=1e-7)
    assert start == ds.n_tiles


def test_band_statistics_are_over_the_training_tiles_of_all_scenes(merged):
    ds = load_dataset(merged)
    expected = band_statistics(ds.images, ds.meta["bands"], rows=ds.split_indices("train"))
    assert ds.meta["band_statistics_split"] == "train"
    for got, want in zip(ds.meta["bands"], expected, strict=True):
        assert got["min"] == want["min"] and got["max"] == want["max"]
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-9) and got["std"] == pytest.approx(
            want["std"], rel=1e-7
        )


def test_blocks_never_span_scenes_and_training_sees_every_scene(merged):
    ds = load_dataset(merged)
    assert ds.meta["split"]["method"] == "spatial_blocks" and ds.meta["split"]["scene_split"] == "blocks"
    per_block = ds.tiles.groupby("block_id").agg(scenes=("scene", "nunique"), splits=("split", "nunique"))
    assert (per_block.scenes == 1).all() and (per_block.splits == 1).all()
    # one array, one split table: the training split draws from every scene, and the splits cover all tiles
    everything = np.concatenate([ds.split_indices(s) for s in ("train", "val", "test")])
    assert sorted(everything) == list(range(ds.n_tiles)) and ds.images.shape[0] == len(ds.tiles) == len(ds.fractions)
    assert set(ds.tiles["scene"].iloc[ds.split_indices("train")]) == {"a", "b", "c"}


def test_each_scene_has_its_preview_grid_and_a_view_of_its_own(merged, three_scenes):
    ds = load_dataset(merged)
    (south, west), (north, east) = ds.meta["preview"]["bounds_lonlat"]  # the mosaic of the scenes' previews
    assert (merged / ds.meta["preview"]["file"]).is_file() and "transform" not in ds.meta
    for scene in three_scenes:
        view = ds.scene(scene.name)
        a, b = next(e["rows"] for e in ds.meta["scenes"] if e["name"] == scene.name)
        assert view.path == merged / SCENES_FOLDER / scene.name and view.n_tiles == b - a
        assert np.array_equal(view.images, ds.images[a:b]) and np.array_equal(view.fractions, ds.fractions[a:b])
        with rasterio.open(scene.image) as src:
            assert view.meta["transform"] == list(src.transform)[:6] and view.meta["width"] == src.width
        assert view.meta["sources"]["image"]["path"] == str(scene.image.resolve())
        (s, w), (n, e) = view.meta["preview"]["bounds_lonlat"]
        assert (view.path / view.meta["preview"]["file"]).is_file()
        assert south <= s < n <= north and west <= w < e <= east
    with pytest.raises(OLRError, match="has no scene 'z'"):
        ds.scene("z")


def test_whole_scene_splits_put_each_scene_in_one_split(tmp_path, three_scenes, cluster):
    out = prepare_scenes(
        three_scenes, tmp_path / "whole", scheduler=cluster.scheduler_address, scene_split="scenes", **SETTINGS
    )
    ds = load_dataset(out)
    per_scene = ds.tiles.groupby("scene")["split"].unique()
    assert all(len(s) == 1 for s in per_scene) and {s[0] for s in per_scene} == {"train", "val", "test"}
    assert ds.meta["split"]["method"] == "whole_scenes"
    assert ds.meta["band_statistics_split"] == "train"


def test_too_few_scenes_for_whole_scene_splits_is_one_sentence(tmp_path, three_scenes):
    with pytest.raises(OLRError) as e:
        prepare_scenes(three_scenes[:2], tmp_path / "two", scene_split="scenes", **SETTINGS)
    assert "need a scene for each of train, val, test" in str(e.value) and "there are 2" in str(e.value)
    assert not (tmp_path / "two").exists()
    splits.require_scenes_for_splits(2, (0.8, 0.2, 0))  # a split asked no share needs no scene
    with pytest.raises(OLRError, match="one image was given"):
        prepare_dataset(three_scenes[0].image, three_scenes[0].labels, tmp_path / "one", scene_split="scenes")


# ------------------------------------------------------------------ crash safety


class KillWorkerOfScene(WorkerPlugin):
    """A Dask worker plugin: the worker that starts the task of scene `index` kills itself (SIGKILL) as soon as
    that scene's tile array appears in its part folder, mid-write, on every worker that tries it."""

    def __init__(self, out: Path, index: int):
        self.pattern = f".{out.name}.*.partial/{scenes_module.PARTS}/{index}.*/images.npy"
        self.parent, self.suffix = str(out.parent), f"-{index}"

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("prepare-scene-") and str(key).endswith(self.suffix):
            threading.Thread(target=self._kill_once_writing, daemon=True).start()

    def _kill_once_writing(self):
        before = set(Path(self.parent).glob(self.pattern))  # an earlier attempt's, left by a killed worker
        deadline = time.monotonic() + 10
        while not (set(Path(self.parent).glob(self.pattern)) - before) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_leaves_no_dataset_and_names_the_scene(tmp_path, three_scenes):
    from distributed import Client

    data = tmp_path / "data"
    data.mkdir()
    out = data / "killed"
    with local_cluster() as cluster, Client(cluster) as client:
        client.register_plugin(KillWorkerOfScene(out, 1), name="kill-scene-1")
        try:
            with pytest.raises(OLRError) as e:
                prepare_scenes(three_scenes, out, scheduler=cluster.scheduler_address, **SETTINGS)
        finally:
            client.unregister_worker_plugin("kill-scene-1")
    message = str(e.value)
    assert message.startswith("The worker preparing scene 'b' died") and "nothing was kept" in message
    assert len(message.splitlines()) == 1
    assert sorted(os.listdir(data)) == []  # no dataset, no staged folder, no part, no lock


def test_a_bad_scene_fails_the_whole_preparation_naming_it(tmp_path, three_scenes, cluster):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    bad = [*three_scenes[:2], SceneSource("broken", three_scenes[2].image, text)]
    data = tmp_path / "data"
    with pytest.raises(OLRError, match=r"^In scene 'broken', .*notes\.tif") as e:
        prepare_scenes(bad, data / "bad", scheduler=cluster.scheduler_address, **SETTINGS)
    assert len(str(e.value).splitlines()) == 1
    assert not data.exists() or sorted(os.listdir(data)) == []


# ------------------------------------------------------------------ scene lists


def test_a_list_file_names_scenes_with_paths_relative_to_it(tmp_path):
    (tmp_path / "x").mkdir()
    listing = tmp_path / "scenes.csv"
    listing.write_text(
        "image,labels,name\n# a comment line\nx/one.tif,x/one_labels.tif,first\n\n/abs/two_image.tif, /abs/l.gpkg\n"
    )
    assert read_scene_list(listing) == [
        SceneSource("first", tmp_path / "x" / "one.tif", tmp_path / "x" / "one_labels.tif"),
        SceneSource("two", Path("/abs/two_image.tif"), Path("/abs/l.gpkg")),
    ]
    listing.write_text("a.tif\n")
    with pytest.raises(OLRError, match=r"^Line 1 of the scene list .* holds 1 field\(s\)"):
        read_scene_list(listing)
    listing.write_text("a.tif,a_labels.tif,s\nb.tif,b_labels.tif,s\n")
    with pytest.raises(OLRError, match="The scene name 's' is used twice"):
        read_scene_list(listing)
    listing.write_text("a.tif,a_labels.tif,../up\n")
    with pytest.raises(OLRError, match=r"The scene name '\.\./up' is not allowed"):
        read_scene_list(listing)


def test_a_folder_pairs_images_and_labels_by_name(tmp_path):
    for name in (
        "north.tif",
        "north_labels.tif",
        "south_image.tif",
        "south_labels.gpkg",
        "readme.txt",
        "x.tif.aux.xml",
    ):
        (tmp_path / name).write_text("")
    assert read_scene_list(tmp_path) == [
        SceneSource("north", tmp_path / "north.tif", tmp_path / "north_labels.tif"),
        SceneSource("south", tmp_path / "south_image.tif", tmp_path / "south_labels.gpkg"),
    ]


def test_a_folder_whose_names_do_not_pair_says_which_file_lacks_its_partner(tmp_path):
    for name in ("north.tif", "north_labels.tif", "east.tif", "west_labels.tif"):
        (tmp_path / name).write_text("")
    with pytest.raises(OLRError) as e:
        read_scene_list(tmp_path)
    message = str(e.value)
    assert len(message.splitlines()) == 1 and message.count(". ") == 0
    assert "the image east.tif has no labels (east_labels.tif, .gpkg or .shp)" in message
    assert "the labels west_labels.tif have no image (west.tif)" in message
    assert "NAME_labels.tif" in message  # the rule
    with pytest.raises(OLRError, match="There is no scene list or scene folder at"):
        read_scene_list(tmp_path / "missing")


# ------------------------------------------------------------------ the command line


def test_cli_prepares_a_scene_folder_and_refuses_one_that_does_not_pair(tmp_path, three_scenes, cluster):
    folder = tmp_path / "folder"
    folder.mkdir()
    for scene in three_scenes:
        os.symlink(scene.image, folder / f"{scene.name}.tif")
        os.symlink(scene.labels, folder / f"{scene.name}_labels.tif")
    unpaired = tmp_path / "unpaired"
    unpaired.mkdir()
    os.symlink(three_scenes[0].image, unpaired / "lonely.tif")
    common = ["--out", "data/ds", "--tile", "16", "--split-block", "2"]
    results = run_cli_concurrently(
        {
            "ok": (["prepare", "--scenes", folder, "--scheduler", cluster.scheduler_address, *common], None),
            "unpaired": (["prepare", "--scenes", unpaired, *common], None),
            "both": (["prepare", "--scenes", folder, "--image", three_scenes[0].image, *common], None),
            "neither": (["prepare", *common], None),
        },
        tmp_path / "homes",
    )
    ok = results["ok"]
    assert ok.returncode == 0, ok.stderr
    ds = load_dataset(ok.home / "data" / "ds")
    assert ds.scene_names == ["a", "b", "c"] and f"{ds.n_tiles} tiles of (16, 16, 4) in 3 scenes" in ok.stdout
    assert "(3/3 scenes)" in ok.stderr
    for case, message in (
        ("unpaired", "the image lonely.tif has no labels"),
        ("both", "Give either --scenes or --image with --labels, not both"),
        ("neither", "Give the image and its labels (--image and --labels), or several scenes"),
    ):
        r = results[case]
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (case, r.stderr)
        assert not (r.home / "data").exists() or os.listdir(r.home / "data") == []


# ------------------------------------------------------------------ the Datasets page


def test_the_datasets_map_shows_all_scenes_or_one_over_its_own_preview(merged):
    import shutil

    from olr import workspace
    from tests.fixtures.pages import open_app

    shutil.copytree(merged, workspace.data_dir() / "three")
    at = open_app("pages/datasets.py", **{"olr.dataset": "three"})
    at.segmented_control(key="ds.view").set_value("Map").run()
    assert not at.exception
    for scene in ("all scenes", "a", "c"):
        at.selectbox(key="ds.map_scene.three").set_value(scene).run()
        assert not at.exception, scene
        assert len(at.get("component_instance")) == 1  # the streamlit-folium map
    first_of_c = int(np.flatnonzero(load_dataset(merged).tiles["scene"].to_numpy() == "c")[0])
    at.session_state["ds.map_tile.three"] = first_of_c  # a click on the map (as the browser tests do) opens the tile
    at.run()
    assert not at.exception
    assert "The tile last clicked on the map, with its labels and their shares of its area:" in [
        c.value for c in at.caption
    ]
