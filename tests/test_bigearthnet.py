"""BigEarthNet-S2 import, on the real example patches that the bigearthnet-common package ships."""

import bz2
import importlib.resources
import json
import shutil
import tarfile

import numpy as np
import pytest
import rasterio
from affine import Affine
from bigearthnet_common.constants import OLD2NEW_LABELS_DICT
from rasterio.warp import reproject
from rasterio.warp import transform as transform_points

from olr.data import bigearthnet, label_schemes
from olr.data.bigearthnet import BAND_NAMES, import_bigearthnet
from olr.data.dataset import load_dataset
from olr.data.rasters.band_stack import REFLECTANCE_RESAMPLING
from olr.errors import OLRError
from olr.training import plan
from tests.fixtures.data import run_cli_concurrently

PACKAGE = importlib.resources.files("bigearthnet_common")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The package's BigEarthNet-S2-Example folder (real patches), extracted once."""
    root = tmp_path_factory.mktemp("bigearthnet")
    with (
        importlib.resources.as_file(PACKAGE / "BigEarthNet-S2-Example.tar.bz2") as archive,
        tarfile.open(archive, "r:bz2") as tar,
    ):
        tar.extractall(root, filter="data")
    return root / "BigEarthNet-S2-Example"


def metadata_names(example, patch: str) -> list[str]:
    return json.loads((example / patch / f"{patch}_labels_metadata.json").read_text())["labels"]


def official_lists() -> dict[str, set[str]]:
    """The package's official split files, read on the test side."""
    lists = {}
    for split in ("train", "val", "test"):
        with importlib.resources.as_file(PACKAGE / f"{split}.csv.bz2") as path, bz2.open(path, "rt") as f:
            lists[split] = set(f.read().split())
    return lists


def test_every_bigearthnet_label_name_maps_to_its_corine_class(tmp_path):
    # The package's 43 level-3 names and their BigEarthNet-19 class are an independent oracle:
    # the code each name gets must carry, in our legend, the class BigEarthNet gives that name.
    legend = label_schemes.by_code()
    codes = {name: bigearthnet.label_codes([name], tmp_path) for name in OLD2NEW_LABELS_DICT}
    assert all(len(c) == 1 for c in codes.values())
    assert len({c for (c,) in codes.values()}) == 43
    for name, (code,) in codes.items():
        assert legend[code].ben19 == OLD2NEW_LABELS_DICT[name], name
    with pytest.raises(OLRError, match=r"'Forest'.*names\.json|names\.json.*'Forest'"):
        bigearthnet.label_codes(["Pastures", "Forest"], tmp_path / "names.json")


def test_real_patches_become_one_tile_each_with_their_labels_bands_and_place(example, tmp_path):
    calls = []
    ds = load_dataset(import_bigearthnet(example, tmp_path / "ben", progress=lambda d, t, m: calls.append((d, t))))
    patches = sorted(p.name for p in example.iterdir())
    legend = label_schemes.by_code()
    assert ds.n_tiles == len(patches) == 6 and ds.tiles["patch"].tolist() == patches
    assert ds.tile_shape == (120, 120, 12) and ds.images.dtype == np.uint16
    assert ds.meta["finite"] is True and np.isfinite(np.asarray(ds.images)).all()
    plan.check_finite_pixels(ds)  # the training plan accepts it
    assert ds.band_names == list(BAND_NAMES) and ds.meta["fractions_kind"] == "presence"
    assert set(np.unique(ds.fractions)) == {0.0, 1.0} and set(np.unique(ds.code_fractions)) == {0.0, 1.0}
    assert calls[-1] == (6, 6)
    for i, patch in enumerate(patches):
        names = metadata_names(example, patch)
        want_codes = {code for name in names for code in bigearthnet.label_codes([name], example)}
        assert {c for c, f in zip(ds.codes, ds.code_fractions[i]) if f == 1} == want_codes
        assert {n for n, f in zip(ds.label_names, ds.fractions[i]) if f == 1} == {legend[c].level3 for c in want_codes}
        assert len(want_codes) == len(names)
        with rasterio.open(example / patch / f"{patch}_B02.tif") as grid:
            assert np.array_equal(ds.images[i, :, :, BAND_NAMES.index("B02")], grid.read(1))
            for band in ("B8A", "B09"):  # 20 m and 60 m: resampled onto the 10 m grid
                with rasterio.open(example / patch / f"{patch}_{band}.tif") as src:
                    assert src.res[0] > grid.res[0]
                    want = np.zeros(grid.shape, dtype=np.uint16)
                    reproject(
                        rasterio.band(src, 1),
                        want,
                        dst_transform=grid.transform,
                        dst_crs=grid.crs,
                        resampling=REFLECTANCE_RESAMPLING,
                    )
                assert np.array_equal(ds.images[i, :, :, BAND_NAMES.index(band)], want), (patch, band)
            row = ds.tiles.iloc[i]
            assert row["epsg"] == grid.crs.to_epsg()
            assert (row["x_min"], row["y_min"], row["x_max"], row["y_max"]) == tuple(grid.bounds)
            (lon,), (lat,) = transform_points(grid.crs, "EPSG:4326", [grid.xy(60, 60)[0]], [grid.xy(60, 60)[1]])
            assert row["lon_min"] < lon < row["lon_max"] and row["lat_min"] < lat < row["lat_max"]
            assert row["lon_max"] - row["lon_min"] < 0.05 and row["lat_max"] - row["lat_min"] < 0.02  # 1.2 km
    assert ds.tiles["epsg"].nunique() == 3 and ds.meta["crs"]["epsg"] == 4326
    assert ds.meta["crs"]["tile_epsgs"] == sorted(ds.tiles["epsg"].unique().tolist())


def test_spatial_split_keeps_blocks_together_and_band_statistics_come_from_training_tiles(example, tmp_path):
    # A second acquisition of one place (a real patch copied under another date) must share its
    # block, whatever the block size: other dates of a place in another split would leak.
    folder = shutil.copytree(example, tmp_path / "patches")
    place, again = "S2A_MSIL2A_20170617T113321_4_55", "S2A_MSIL2A_20180617T113321_4_55"
    shutil.copytree(folder / place, folder / again)
    for f in (folder / again).iterdir():
        f.rename(f.with_name(f.name.replace(place, again)))
    for block in (1, 3):
        ds = load_dataset(import_bigearthnet(folder, tmp_path / f"ben{block}", split_block=block, seed=1))
        assert ds.meta["split"]["method"] == "spatial_blocks" and ds.meta["split"]["block_side_m"] == 1200 * block
        assert (ds.tiles.groupby("block_id")["split"].nunique() == 1).all()
        same = ds.tiles[ds.tiles["patch"].isin([place, again])]
        assert len(same) == 2 and same["block_id"].nunique() == 1
        assert ds.tiles["block_id"].nunique() == ds.n_tiles - 1  # the other patches lie km apart
    train = ds.split_indices("train")
    assert 0 < len(train) < ds.n_tiles
    pixels = np.asarray(ds.images, dtype=np.float64)
    for b, band in enumerate(ds.meta["bands"]):
        train_pixels = pixels[train, :, :, b]
        # BandStats sums in float32 chunks: exact to a ten-thousandth of a standard deviation.
        assert band["mean"] == pytest.approx(train_pixels.mean(), abs=1e-4 * train_pixels.std())
        assert band["std"] == pytest.approx(train_pixels.std(), abs=1e-4 * train_pixels.std())
        assert band["min"] == train_pixels.min() and band["max"] == train_pixels.max()
        all_pixels = pixels[:, :, :, b]
        assert abs(band["mean"] - all_pixels.mean()) > 1e-2 * all_pixels.std()  # not over all tiles
    assert ds.meta["band_statistics_split"] == "train"


def shifted_copy(folder, patch: str, name: str, east_m: float):
    """A copy of a real patch under another name, its georeference moved `east_m` metres east."""
    (folder / name).mkdir()
    for f in (folder / patch).iterdir():
        target = folder / name / f.name.replace(patch, name)
        if f.suffix != ".tif":
            shutil.copy(f, target)
            continue
        with rasterio.open(f) as src:
            profile = dict(src.profile, transform=src.transform @ Affine.translation(east_m / src.res[0], 0))
            with rasterio.open(target, "w", **profile) as dst:
                dst.write(src.read())


def test_patches_sharing_ground_across_splits_are_dropped(example, tmp_path):
    folder = shutil.copytree(example, tmp_path / "patches")
    place = "S2A_MSIL2A_20170617T113321_4_55"
    # Half a patch east (600 m) overlaps it; a whole patch east (1200 m) only touches it.
    shifted_copy(folder, place, "S2A_MSIL2A_20170617T113321_4_56", 600)
    shifted_copy(folder, place, "S2A_MSIL2A_20170617T113321_4_57", 1200)
    patches = [
        bigearthnet.scan_patch(folder / n) for n in (place, *(f"S2A_MSIL2A_20170617T113321_4_5{k}" for k in (6, 7)))
    ]
    for split, want_keep, want_dropped in (
        (["train", "val", "test"], [1, 0, 1], {"val": 1, "test": 0}),  # touching is not sharing ground
        (["train", "test", "val"], [1, 0, 1], {"val": 0, "test": 1}),
        (["val", "test", "train"], [1, 0, 1], {"val": 0, "test": 1}),  # the half-way one overlaps both
        (["test", "val", "train"], [1, 0, 1], {"val": 1, "test": 0}),  # the test one is clear of the kept val
        (["train", "train", "val"], [1, 1, 0], {"val": 1, "test": 0}),
    ):
        keep, dropped = bigearthnet.separate_overlaps(patches, np.array(split, dtype=object))
        assert keep.astype(int).tolist() == want_keep and dropped == want_dropped, split
    # In a whole import, no kept validation or test patch shares ground with a patch of an earlier split.
    total_dropped = 0
    for seed in range(6):
        ds = load_dataset(import_bigearthnet(folder, tmp_path / f"ben{seed}", split_block=1, seed=seed))
        t = ds.tiles
        dropped = ds.meta["split"]["dropped_overlap"]
        total_dropped += sum(dropped.values())
        assert ds.n_tiles == 8 - sum(dropped.values()) and ds.meta["dropped"]["overlapping_another_split"] == sum(
            dropped.values()
        )
        for i in range(len(t)):
            for j in range(len(t)):
                if t.split[i] != t.split[j] and t.epsg[i] == t.epsg[j]:
                    overlap_x = min(t.x_max[i], t.x_max[j]) - max(t.x_min[i], t.x_min[j])
                    overlap_y = min(t.y_max[i], t.y_max[j]) - max(t.y_min[i], t.y_min[j])
                    assert overlap_x <= 0 or overlap_y <= 0, (seed, t.patch[i], t.patch[j])
    assert total_dropped > 0  # some seeds put the overlapping copies into different splits


def test_official_split_from_the_published_files(example, tmp_path):
    lists = official_lists()
    files = []
    for split in ("train", "val", "test"):
        with importlib.resources.as_file(PACKAGE / f"{split}.csv.bz2") as path:
            files.append(shutil.copy(path, tmp_path / path.name))
    ds = load_dataset(import_bigearthnet(example, tmp_path / "ben", split_files=files))
    patches = sorted(p.name for p in example.iterdir())
    listed = [p for p in patches if any(p in names for names in lists.values())]
    assert ds.tiles["patch"].tolist() == listed and len(listed) < len(patches)  # one snowy patch is in no list
    for patch, split in zip(ds.tiles["patch"], ds.tiles["split"]):
        assert patch in lists[split]
    meta = ds.meta["split"]
    assert meta["method"] == "official" and meta["left_out_unlisted"] == len(patches) - len(listed)
    assert meta["left_out_examples"] == sorted(set(patches) - set(listed))
    assert meta["listed_not_in_folder"] == sum(map(len, lists.values())) - len(listed)
    assert (ds.tiles["block_id"] == -1).all()
    # None of the example patches is in the official validation split: the dataset says so before training.
    assert not lists["val"] & set(patches)
    assert any("validation split is empty" in w for w in ds.meta["warnings"])


def test_small_split_files_subset_and_their_bad_lines(example, tmp_path):
    patches = sorted(p.name for p in example.iterdir())
    absent = "S2A_MSIL2A_20170717T113321_28_87"  # a real patch name, not in the example folder
    train, val, test = tmp_path / "train.csv", tmp_path / "val.csv", tmp_path / "test.csv"
    train.write_text("\n".join([*patches[:3], absent]) + "\n\n")
    val.write_text(patches[3] + "\n")
    test.write_text(patches[4] + "\n")
    ds = load_dataset(import_bigearthnet(example, tmp_path / "ben", split_files=[train, val, test]))
    assert ds.tiles["split"].tolist() == ["train"] * 3 + ["val", "test"]
    assert ds.meta["split"]["listed_not_in_folder"] == 1 and ds.meta["split"]["left_out_examples"] == [patches[5]]
    assert ds.meta["split"]["listed"] == {"train": 4, "val": 1, "test": 1}

    test.write_text(patches[4] + "\nname\n")
    with pytest.raises(OLRError, match=r"Line 2 of the split file .*test\.csv holds 'name'"):
        import_bigearthnet(example, tmp_path / "bad", split_files=[train, val, test])
    test.write_text(patches[0] + "\n")
    with pytest.raises(OLRError, match=rf"{patches[0]} is listed in both .*train\.csv and .*test\.csv"):
        import_bigearthnet(example, tmp_path / "bad", split_files=[train, val, test])
    val.write_text(patches[3] + "\n")
    train.write_text(absent + "\n")
    with pytest.raises(OLRError, match="training split"):
        import_bigearthnet(example, tmp_path / "bad", split_files=[train, val, test])
    assert not (tmp_path / "bad").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bigearthnet19_and_other_schemes_apply(example, tmp_path):
    level3 = load_dataset(import_bigearthnet(example, tmp_path / "level3"))
    ben19 = load_dataset(import_bigearthnet(example, tmp_path / "ben19", scheme="ben19"))
    scheme = label_schemes.get_scheme("ben19")
    for i, patch in enumerate(level3.tiles["patch"]):
        # BigEarthNet's own 43 -> 19 mapping (bigearthnet-common) is the oracle.
        want = {OLD2NEW_LABELS_DICT[name] for name in metadata_names(example, patch)} - {None}
        got = level3.fractions_for(list(scheme.labels))[i]
        assert {lab.name for lab, f in zip(scheme.labels, got) if f > 0} == want
        assert set(np.unique(got)) <= {0.0, 1.0}  # presence, not areas: a group of present codes is 1, not 2
        assert {n for n, f in zip(ben19.label_names, ben19.fractions[i]) if f == 1} == want
    assert ben19.meta["scheme"]["name"] == "ben19" and set(np.unique(ben19.fractions)) == {0.0, 1.0}
    assert level3.presence_for(list(label_schemes.get_scheme("level1").labels)).sum(1).min() >= 1


def _broken_copy(example, root, case):
    """A copy of the example folder with one defect; returns (folder, the patch broken)."""
    folder = shutil.copytree(example, root / case)
    patch = sorted(p.name for p in folder.iterdir())[2]
    if case == "no_bands":
        for band in BAND_NAMES:
            (folder / patch / f"{patch}_{band}.tif").unlink()
    elif case == "missing_band":
        (folder / patch / f"{patch}_B8A.tif").unlink()
    elif case == "no_metadata":
        (folder / patch / f"{patch}_labels_metadata.json").unlink()
    elif case == "unknown_label":
        (folder / patch / f"{patch}_labels_metadata.json").write_text(json.dumps({"labels": ["Pastures", "Forest"]}))
    elif case == "not_a_patch":
        (folder / "notes").mkdir()
        patch = "notes"
    return folder, patch


def test_cli_imports_and_refuses_bad_folders_and_split_files(example, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_bigearthnet")
    cases = {"ok": (["import-bigearthnet", "--folder", example, "--out", "data/ben"], None)}
    broken = {}
    for case in ("no_bands", "missing_band", "no_metadata", "unknown_label", "not_a_patch"):
        folder, broken[case] = _broken_copy(example, root, case)
        cases[case] = (["import-bigearthnet", "--folder", folder, "--out", "data/ben"], None)
    bad_csv = root / "train.csv"
    bad_csv.write_text("S2A_MSIL2A_20170613T101031_87_48\nS2A_MSIL2A_2017_87_48.tif\n")
    cases["bad_csv"] = (
        ["import-bigearthnet", "--folder", example, "--out", "data/ben", "--splits", *[bad_csv] * 3],
        None,
    )
    results = run_cli_concurrently(cases, root / "homes")
    ok = results.pop("ok")
    assert ok.returncode == 0, ok.stderr
    assert "imported" in ok.stdout and "6/6 tiles" in ok.stderr
    assert load_dataset(ok.home / "data" / "ben").n_tiles == 6
    expected = {
        "no_bands": "holds no band files",
        "missing_band": "B8A.tif",
        "no_metadata": "labels_metadata.json",
        "unknown_label": "'Forest'",
        "not_a_patch": "no BigEarthNet-S2 patch",
        "bad_csv": "S2A_MSIL2A_2017_87_48.tif",
    }
    for case, r in results.items():
        assert r.returncode == 2, (case, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, (case, r.stderr)
        assert expected[case] in lines[0] and broken.get(case, "train.csv") in lines[0], (case, lines[0])
        assert not (r.home / "data").exists() or list((r.home / "data").iterdir()) == [], case
