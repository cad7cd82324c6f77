"""Images as researchers have them: Sentinel-2 band files at 10, 20 and 60 m stacked onto one
grid, bands chosen by name or index, NaN/inf and nodata overrides, reflectance scales, the RGB
preview by band name or `--rgb`, and the bad inputs of band files (real GeoTIFFs, real CLI)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import reproject

from olr import workspace
from olr.data import composites, rasters
from olr.data.dataset import load_dataset
from olr.data.prepare import prepare_dataset
from olr.data.prepare_estimate import estimate_dataset
from olr.data.rasters.band_stack import REFLECTANCE_RESAMPLING, sentinel2_band
from olr.errors import OLRError
from olr.workspace import REPO_ROOT
from tests.fixtures.data import (
    IMAGE_CRS,
    IMAGE_ORIGIN,
    LABEL_CRS,
    codes_to_grid,
    label_grid,
    make_scene,
    patchy_codes,
    write_raster,
)
from tests.fixtures.pages import open_app
from tests.fixtures.runs import olr_env

#: Sentinel-2-like band files: name -> resolution (m). 1200 m square: 120, 60 and 20 px.
S2_BANDS = {"B02": 10, "B03": 10, "B04": 10, "B05": 20, "B01": 60}
SIDE_M = 1200.0


def _band_values(name: str, res: float, rng) -> np.ndarray:
    """A smooth field plus noise; B04 (red) is bright in the west half, B02/B03 in the east half."""
    n = int(SIDE_M / res)
    x = np.linspace(0, 1, n)[None, :].repeat(n, 0)
    y = np.linspace(0, 1, n)[:, None].repeat(n, 1)
    field = 800 + 600 * np.sin(3 * x + 2 * y) + rng.normal(0, 40, (n, n))
    west = x < 0.5
    if name == "B04":
        field += np.where(west, 1500, 0)
    elif name in ("B02", "B03"):
        field += np.where(west, 0, 1500)
    return field


def write_s2_band_files(folder, origin=IMAGE_ORIGIN, crs=IMAGE_CRS, float_band="B01") -> list:
    """One single-band GeoTIFF per band of S2_BANDS, named like Sentinel-2's (`..._B04_10m.tif`), no description.

    `float_band` is written as float32 reflectance-like values, the others as uint16."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for name, res in S2_BANDS.items():
        values = _band_values(name, res, rng)
        array = values.astype(np.float32) / 10000 if name == float_band else values.astype(np.uint16)
        path = folder / f"T36SWD_20230601T083601_{name}_{res}m.tif"
        paths.append(write_raster(path, array, crs, from_origin(*origin, res, res)))
    return paths


def write_labels(folder, size_m=SIDE_M, seed=0):
    """A CORINE grid-code raster (EPSG:3035, 100 m) covering the 1200 m scene; returns (path, codes, transform)."""
    bounds = (IMAGE_ORIGIN[0], IMAGE_ORIGIN[1] - size_m, IMAGE_ORIGIN[0] + size_m, IMAGE_ORIGIN[1])
    transform, width, height = label_grid(bounds)
    codes = patchy_codes((height, width), patch=3, seed=seed).astype(np.int16)
    path = write_raster(folder / "clc_grid.tif", codes_to_grid(codes), LABEL_CRS, transform)
    return path, codes, transform


def warped(path, transform, width, height) -> np.ndarray:
    """The file reprojected onto a grid by rasterio.warp.reproject (the oracle), same resampling."""
    with rasterio.open(path) as src:
        out = np.zeros((height, width), dtype=src.dtypes[0])
        reproject(
            src.read(1),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs=src.crs,
            resampling=REFLECTANCE_RESAMPLING,
        )
    return out


def statistics_rows(ds) -> np.ndarray:
    """(N,) bool: the tiles the band statistics are taken from (the training split, or all tiles)."""
    split = ds.meta.get("band_statistics_split", "all")
    return np.ones(ds.n_tiles, bool) if split == "all" else (ds.tiles["split"] == split).to_numpy()


def tiles_of(ds, plane: np.ndarray) -> np.ndarray:
    """(N, t, t) windows of a full-grid plane at the dataset's tile offsets."""
    t = ds.tile_shape[0]
    return np.stack([plane[r : r + t, c : c + t] for r, c in zip(ds.tiles.row_off, ds.tiles.col_off, strict=True)])


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2")
    labels, _, _ = write_labels(folder)
    return {"bands": write_s2_band_files(folder / "bands"), "labels": labels, "folder": folder}


# ---------------------------------------------------------------- band files stacked


def test_sentinel2_band_files_at_three_resolutions_stack_onto_the_10m_grid(s2, tmp_path):
    out = prepare_dataset(
        s2["bands"], s2["labels"], tmp_path / "s2", tile=16, label_encoding="grid", min_labels=0, split_block=2
    )
    ds = load_dataset(out)
    meta = ds.meta
    assert [b["name"] for b in meta["bands"]] == list(S2_BANDS)  # from the file names, in the order given
    assert meta["resolution"] == [10.0, 10.0] and (meta["width"], meta["height"]) == (120, 120)
    assert ds.n_tiles == 49  # 7 x 7 whole 16-px tiles on 120 px
    # uint16 and float32 files: read as float32, every value kept, and said so.
    assert meta["dtype"] == "float32" and meta["band_stack"]["dtype_promoted_from"] == ["float32", "uint16"]
    assert meta["band_stack"]["resampling"] == "bilinear" and meta["band_stack"]["grid_file"] == str(s2["bands"][0])
    transform = from_origin(*IMAGE_ORIGIN, 10, 10)
    images = np.asarray(ds.images)
    for k, path in enumerate(s2["bands"]):
        oracle = tiles_of(ds, warped(path, transform, 120, 120)).astype(np.float32)
        np.testing.assert_allclose(images[..., k], oracle, rtol=1e-6, atol=1e-6, err_msg=path.name)
    # The 60 m band really was interpolated (not repeated in 6 x 6 blocks) on the 10 m grid.
    assert len(np.unique(images[0, :6, :6, 4])) > 1
    # Band statistics are those of the stacked tiles (of the split they are taken from).
    flat = images[statistics_rows(ds)].reshape(-1, len(S2_BANDS)).astype(np.float64)
    np.testing.assert_allclose([b["mean"] for b in meta["bands"]], flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose([b["max"] for b in meta["bands"]], flat.max(0), rtol=1e-6)


def test_grid_chooses_the_20m_grid(s2, tmp_path):
    ds = load_dataset(
        prepare_dataset(
            s2["bands"], s2["labels"], tmp_path / "g20", tile=8, min_labels=0, label_encoding="grid", grid="B05"
        )
    )
    assert ds.meta["resolution"] == [20.0, 20.0] and (ds.meta["width"], ds.meta["height"]) == (60, 60)
    assert ds.meta["band_stack"]["grid_file"] == str(s2["bands"][3])
    transform = from_origin(*IMAGE_ORIGIN, 20, 20)
    images = np.asarray(ds.images)
    for k in (2, 3, 4):  # B04 coarsened, B05 as it is, B01 refined
        oracle = tiles_of(ds, warped(s2["bands"][k], transform, 60, 60)).astype(np.float32)
        np.testing.assert_allclose(images[..., k], oracle, rtol=1e-6, atol=1e-6)
    assert estimate_dataset(s2["bands"], tile=8, grid="B05").tiles == 49  # the estimate reads the same grid
    with pytest.raises(OLRError, match=r"--grid B12 names none of the band files"):
        prepare_dataset(s2["bands"], s2["labels"], tmp_path / "bad", grid="B12", label_encoding="grid")


def test_band_files_take_their_common_extent_on_the_finest_files_pixels(tmp_path):
    folder = tmp_path
    fine = write_raster(folder / "B04.tif", np.ones((100, 100), np.uint16), IMAGE_CRS, from_origin(0, 1000, 10, 10))
    # 20 m file starting 105 m east and 95 m south of the fine one, reaching beyond it.
    coarse = write_raster(folder / "B05.tif", np.ones((60, 60), np.uint16), IMAGE_CRS, from_origin(105, 905, 20, 20))
    with rasters.open_image_files([fine, coarse]) as stack:
        # Intersection x 105..1000, y 0..905, snapped inwards onto the 10 m pixels: x 110..1000, y 0..900.
        assert stack.bounds == (110.0, 0.0, 1000.0, 900.0) and (stack.width, stack.height) == (89, 90)
        assert stack.descriptions == ("B04", "B05") and stack.res == (10.0, 10.0)


def test_sentinel2_band_names_come_from_descriptions_then_file_names_then_stems(tmp_path):
    assert sentinel2_band("S2A_MSIL2A_20170613T101031_0_45_B8A.tif") == "B8A"
    assert sentinel2_band("T33UUP_B04_10m.jp2") == "B04" and sentinel2_band("b11.tif") == "B11"
    assert sentinel2_band("B13.tif") is None and sentinel2_band("AB04.tif") is None
    t = from_origin(0, 160, 10, 10)
    named = write_raster(tmp_path / "x_B02.tif", np.ones((16, 16), np.uint16), IMAGE_CRS, t)
    with rasterio.open(named, "r+") as dst:
        dst.descriptions = ("blue",)
    plain = write_raster(tmp_path / "ndvi.tif", np.ones((16, 16), np.uint16), IMAGE_CRS, t)
    s2_file = write_raster(tmp_path / "x_B08_10m.tif", np.ones((16, 16), np.uint16), IMAGE_CRS, t)
    with rasters.open_image_files([named, plain, s2_file]) as stack:
        assert stack.descriptions == ("blue", "ndvi", "B08")
    twin = write_raster(tmp_path / "other_B08.tif", np.ones((16, 16), np.uint16), IMAGE_CRS, t)
    with pytest.raises(OLRError, match=r"both hold a band named B08; give each band once"):
        rasters.open_image_files([s2_file, twin])


# ---------------------------------------------------------------- bad band files


def _cli(home, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "olr", *map(str, args)],
        cwd=REPO_ROOT,
        env=olr_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_band_files_in_two_crs_are_refused_by_the_cli_with_one_sentence(s2, tmp_path, _isolated_workspace):
    other = write_raster(
        tmp_path / "B8A_utm35.tif", np.ones((20, 20), np.uint16), "EPSG:32635", from_origin(700_000, 3_880_000, 20, 20)
    )
    proc = _cli(
        _isolated_workspace, "prepare", "--image", *s2["bands"][:2], other, "--labels", s2["labels"], "--out", "data/x"
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, lines[:3]
    assert str(s2["bands"][0]) in lines[0] and str(other) in lines[0]
    assert "EPSG:32636" in lines[0] and "EPSG:32635" in lines[0] and "reproject them to one" in lines[0]
    assert not (workspace.data_dir() / "x").exists()
    assert list(workspace.data_dir().glob("*")) == []  # no staged leftovers either


def test_band_files_that_do_not_overlap_are_refused(s2, tmp_path):
    far = write_raster(
        tmp_path / "B05_far.tif", np.ones((20, 20), np.uint16), IMAGE_CRS, from_origin(600_000, 3_880_000, 20, 20)
    )
    with pytest.raises(OLRError) as e:
        prepare_dataset([s2["bands"][0], far], s2["labels"], tmp_path / "no")
    assert str(e.value) == (
        f"The band files {s2['bands'][0]} and {far} do not overlap (by at least one pixel); "
        "give band files of the same scene."
    )
    assert not (tmp_path / "no").exists()
    with pytest.raises(OLRError, match="--grid B04 chooses among several band files"):
        prepare_dataset(s2["bands"][0], s2["labels"], tmp_path / "no", grid="B04")


# ---------------------------------------------------------------- NaN and inf


def test_nan_and_inf_are_nodata_and_never_reach_the_tiles(tmp_path):
    scene = make_scene(tmp_path / "scene", size=64, seed=2)  # 4 x 4 tiles of 16 px, no declared nodata
    with rasterio.open(scene.image) as src:
        pixels = src.read().astype(np.float32)
    pixels[:, :16, :16] = np.nan  # tile (0, 0): all NaN -> dropped
    pixels[1, 20:24, 20] = np.nan  # tile (1, 1): 4 pixels with one NaN band -> kept
    pixels[2, 40, 40] = np.inf  # tile (2, 2): one +inf pixel -> kept
    pixels[0, 50, 60] = -np.inf  # tile (3, 3): one -inf pixel -> kept
    pixels[:, 32:48, :16][:, :5] = np.nan  # tile (2, 0): 5 rows of 16 = 31 % NaN -> dropped
    image = write_raster(tmp_path / "float.tif", pixels, IMAGE_CRS, scene.image_transform)
    ds = load_dataset(
        prepare_dataset(image, scene.labels, tmp_path / "ds", tile=16, label_encoding="grid", min_labels=0)
    )
    images = np.asarray(ds.images)
    assert np.isfinite(images).all() and ds.meta["finite"] is True and "mean" in ds.meta["nodata_fill"]
    assert ds.meta["dropped"]["nodata"] == 2 and ds.n_tiles == 14
    share = dict(zip(zip(ds.tiles.row_off, ds.tiles.col_off, strict=True), ds.tiles.nodata_share, strict=True))
    assert share[(16, 16)] == pytest.approx(4 / 256) and share[(32, 32)] == pytest.approx(1 / 256)
    # Statistics over the valid pixels of the kept tiles, as numpy computes them.
    hwb = pixels.transpose(1, 2, 0)
    kept = np.stack([hwb[r : r + 16, c : c + 16] for r, c in zip(ds.tiles.row_off, ds.tiles.col_off, strict=True)])
    counted = kept[statistics_rows(ds)]
    valid = counted[np.isfinite(counted).all(-1)].astype(np.float64)
    bands = ds.meta["bands"]
    np.testing.assert_allclose([b["mean"] for b in bands], valid.mean(0), rtol=1e-6)
    np.testing.assert_allclose([b["std"] for b in bands], valid.std(0), rtol=1e-4)
    assert [b["min"] for b in bands] == valid.min(0).tolist() and [b["max"] for b in bands] == valid.max(0).tolist()
    # A kept tile's nodata pixels hold its per-band mean over its valid pixels; valid pixels are untouched.
    i = int(np.flatnonzero((ds.tiles.row_off == 16) & (ds.tiles.col_off == 16))[0])
    bad = ~np.isfinite(kept[i]).all(-1)
    np.testing.assert_allclose(images[i][bad], np.broadcast_to(kept[i][~bad].mean(0), (4, 4)), rtol=1e-5)
    np.testing.assert_array_equal(images[i][~bad], kept[i][~bad])


def test_image_nodata_overrides_the_declared_value(tmp_path):
    scene = make_scene(tmp_path / "scene", size=64, image_nodata=0, nodata_rows=16, seed=4)
    declared = load_dataset(
        prepare_dataset(scene.image, scene.labels, tmp_path / "a", tile=16, label_encoding="grid", min_labels=0)
    )
    assert declared.meta["dropped"]["nodata"] == 4 and declared.meta["nodata"] == 0.0
    ignored = load_dataset(
        prepare_dataset(
            scene.image, scene.labels, tmp_path / "b", tile=16, label_encoding="grid", min_labels=0, image_nodata="none"
        )
    )
    assert ignored.meta["dropped"]["nodata"] == 0 and ignored.meta["nodata"] is None and ignored.n_tiles == 16
    assert (np.asarray(ignored.images)[ignored.tiles.row_off == 0] == 0).all()  # the zeros are data now
    with rasterio.open(scene.image) as src:
        first = int(src.read(1, window=((20, 21), (0, 1)))[0, 0])
        block = src.read(window=((16, 32), (0, 16)))
    with rasterio.open(scene.image, "r+") as dst:  # tile (1, 0) becomes a block of one value in every band
        dst.write(np.full_like(block, first), window=((16, 32), (0, 16)))
    other = load_dataset(
        prepare_dataset(
            scene.image,
            scene.labels,
            tmp_path / "c",
            tile=16,
            label_encoding="grid",
            min_labels=0,
            image_nodata=str(first),
        )
    )
    assert other.meta["nodata"] == float(first) and other.meta["dropped"]["nodata"] == 1
    with pytest.raises(OLRError, match=r"The image nodata 'zero' is not a number or none"):
        prepare_dataset(scene.image, scene.labels, tmp_path / "d", image_nodata="zero", label_encoding="grid")


# ---------------------------------------------------------------- bands by name or index


@pytest.fixture
def four_bands(tmp_path):
    """A 4-band uint16 image (descriptions B02 B03 B04 B08) with CORINE labels."""
    scene = make_scene(tmp_path / "scene", size=64, seed=6)
    with rasterio.open(scene.image, "r+") as dst:
        dst.descriptions = ("B02", "B03", "B04", "B08")
    return scene


def test_bands_chosen_by_name_and_by_index(four_bands, tmp_path):
    with rasterio.open(four_bands.image) as src:
        raw = src.read().transpose(1, 2, 0)
        assert rasters.image_bands(src, ["B08", "b4"]) == [4, 3]  # case and leading zero do not matter
        assert rasters.image_bands(src, ["3", 1]) == [3, 1]
        assert rasters.band_names(src, [3, 1]) == ["B04", "B02"]
        with pytest.raises(OLRError) as e:
            rasters.image_bands(src, ["B04", "B12"])
        assert str(e.value) == (
            f"The image {four_bands.image} has no band 'B12' (its bands are 1 B02, 2 B03, 3 B04, 4 B08); "
            "give --bands band names or 1-based indexes from these."
        )
        with pytest.raises(OLRError, match=r"has no band '5'"):
            rasters.image_bands(src, ["5"])
        with pytest.raises(OLRError, match=r"--bands names the band B04 twice"):
            rasters.image_bands(src, ["B04", "3"])
    ds = load_dataset(
        prepare_dataset(
            four_bands.image, four_bands.labels, tmp_path / "ds", tile=16, label_encoding="grid", bands=("B08", "3")
        )
    )
    assert [b["name"] for b in ds.meta["bands"]] == ["B08", "B04"] and ds.tile_shape == (16, 16, 2)
    r, c = int(ds.tiles.row_off[0]), int(ds.tiles.col_off[0])
    np.testing.assert_array_equal(np.asarray(ds.images[0]), raw[r : r + 16, c : c + 16][..., [3, 2]])
    assert (
        estimate_dataset(four_bands.image, tile=16, label_encoding="grid", bands=("B08", "3")).tile_bytes
        == 16 * 16 * 2 * 2
    )
    assert ds.meta["rgb"]["by"] == "first band as grey"  # two bands: no RGB, and it says so


def test_unnamed_bands_keep_their_names_when_chosen(tmp_path):
    t = from_origin(0, 80, 10, 10)
    path = write_raster(tmp_path / "rgbn.tif", np.ones((4, 8, 8), np.uint16), IMAGE_CRS, t)
    with rasterio.open(path) as src:  # unnamed bands are "band i" of the whole image: choosing 3 keeps "band 4"
        assert rasters.band_names(src, rasters.image_bands(src, ["4", "1", "2"])) == ["band 4", "band 1", "band 2"]


# ---------------------------------------------------------------- RGB and scaling


def test_rgb_found_by_sentinel2_names_and_the_preview_red_is_b04(s2, tmp_path):
    assert rasters.rgb_positions(["B02", "B03", "B04", "B08"])["positions"] == [2, 1, 0]
    assert rasters.rgb_positions(["b4", "B3", "b02"])["by"] == "band names"
    assert rasters.rgb_positions(["nir", "Blue", "green", "red"])["positions"] == [3, 2, 1]
    assert rasters.rgb_positions(["x", "y", "z"])["by"] == "first three bands"
    assert composites.default_rgb_bands(["B02", "B03", "B04"]) == [2, 1, 0]
    out = prepare_dataset(s2["bands"][:3], s2["labels"], tmp_path / "rgb", tile=16, label_encoding="grid", min_labels=0)
    ds = load_dataset(out)
    assert ds.meta["rgb"] == {"positions": [2, 1, 0], "bands": ["B04", "B03", "B02"], "by": "band names"}
    assert composites.dataset_rgb_bands(ds) == [2, 1, 0]
    # B04 is bright in the west half, B02/B03 in the east: so are the preview's red and green channels.
    with rasterio.open(out / "preview.png") as png:
        rgba = png.read().astype(float)
    inside = rgba[3] > 0
    cols = np.nonzero(inside.any(0))[0]
    mid = (cols.min() + cols.max()) // 2
    west, east = inside.copy(), inside.copy()
    west[:, mid - 2 :] = False
    east[:, : mid + 3] = False
    assert rgba[0][west].mean() > rgba[0][east].mean() + 100
    assert rgba[1][east].mean() > rgba[1][west].mean() + 100


def test_rgb_flag_chooses_the_preview_bands(four_bands, tmp_path):
    ds = load_dataset(
        prepare_dataset(
            four_bands.image, four_bands.labels, tmp_path / "ds", tile=16, label_encoding="grid", rgb=("B08", "3", "b3")
        )
    )
    assert ds.meta["rgb"] == {"positions": [3, 2, 1], "bands": ["B08", "B04", "B03"], "by": "--rgb"}
    assert composites.dataset_rgb_bands(ds) == [3, 2, 1]
    with pytest.raises(OLRError, match=r"has no band 'red'.*give --rgb band names"):
        prepare_dataset(
            four_bands.image,
            four_bands.labels,
            tmp_path / "x",
            tile=16,
            label_encoding="grid",
            rgb=("red", "B03", "B02"),
        )


def test_reflectance_scale_and_offset_are_recorded_with_the_band_statistics(four_bands, tmp_path):
    with rasterio.open(four_bands.image, "r+") as dst:
        dst.scales = (0.0001, 0.0001, 0.0001, 0.0002)
        dst.offsets = (-0.1, -0.1, -0.1, 0.0)
    own = load_dataset(
        prepare_dataset(four_bands.image, four_bands.labels, tmp_path / "own", tile=16, label_encoding="grid")
    )
    assert [(b["scale"], b["offset"]) for b in own.meta["bands"]] == [
        (0.0001, -0.1),
        (0.0001, -0.1),
        (0.0001, -0.1),
        (0.0002, 0.0),
    ]
    assert own.images.dtype == np.uint16  # tiles keep the raw values
    given = load_dataset(
        prepare_dataset(
            four_bands.image,
            four_bands.labels,
            tmp_path / "given",
            tile=16,
            label_encoding="grid",
            scale=(2.0,),
            offset=(1, 2, 3, 4),
        )
    )
    assert [(b["scale"], b["offset"]) for b in given.meta["bands"]] == [(2.0, 1.0), (2.0, 2.0), (2.0, 3.0), (2.0, 4.0)]
    with pytest.raises(OLRError, match=r"--scale gives 2 values for 4 bands"):
        prepare_dataset(
            four_bands.image, four_bands.labels, tmp_path / "bad", tile=16, label_encoding="grid", scale=(1.0, 2.0)
        )


# ---------------------------------------------------------------- the README's worked commands


def test_the_datasets_page_prepares_band_files_with_chosen_bands(s2, _isolated_workspace, monkeypatch):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    uploads = workspace.data_dir() / "uploads"
    uploads.mkdir(parents=True)
    for path in [*s2["bands"], s2["labels"]]:
        shutil.copy(path, uploads / path.name)
    at = open_app()
    at.text_input(key="prep.image").input("; ".join(f"uploads/{p.name}" for p in s2["bands"]))
    at.text_input(key="prep.labels").input(f"uploads/{s2['labels'].name}")
    at.text_input(key="prep.name").input("s2-page")
    at.number_input(key="prep.tile").set_value(16)
    at.selectbox(key="prep.encoding").set_value("grid")
    at.text_input(key="prep.bands").input("B04, B03 B02 B01")
    at.text_input(key="prep.grid").input("B05")
    next(b for b in at.button if b.label == "Prepare dataset").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ds = load_dataset(workspace.dataset_path("s2-page"))
    assert [b["name"] for b in ds.meta["bands"]] == ["B04", "B03", "B02", "B01"]
    assert ds.meta["resolution"] == [20.0, 20.0] and ds.meta["rgb"]["bands"] == ["B04", "B03", "B02"]
