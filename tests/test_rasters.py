"""Opening sources and aligning labels onto the image grid (olr.data.rasters), on real GeoTIFFs."""

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from olr.data import label_schemes, rasters
from olr.errors import OLRError
from tests.fixtures.data import (
    IMAGE_CRS,
    LABEL_CRS,
    NO_SPATIAL_INDEX,
    codes_to_grid,
    corine_colormap,
    expected_code_index,
    make_scene,
    write_clc_raster,
    write_label_vector,
    write_raster,
)

CODE_INDEX = {code: i + 1 for i, code in enumerate(label_schemes.ALL_CODES)}


def window_tiles(n_rows, n_cols, tile, stride, r0=0, c0=0):
    window = Window(c0 * stride, r0 * stride, (n_cols - 1) * stride + tile, (n_rows - 1) * stride + tile)
    rows, cols = rasters.tile_origins(window, n_rows, n_cols, stride)
    return window, rows, cols


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), size=160)


@pytest.mark.parametrize("tile,stride", [(16, 16), (16, 8), (32, 40)])
def test_raster_labels_match_an_independent_per_pixel_projection(scene, tile, stride):
    with rasters.open_image(scene.image) as src, rasters.open_labels(scene.labels, src) as labels:
        assert labels.encoding == "grid"
        n_rows = (src.height - tile) // stride + 1
        n_cols = (src.width - tile) // stride + 1
        window, rows, cols = window_tiles(n_rows, n_cols, tile, stride)
        got = labels.read_tiles(window, n_rows, n_cols, tile, stride)
        counts = labels.read_counts(window, n_rows, n_cols, tile, stride)
    i = np.arange(tile)
    pr = rows[:, None, None] + i[None, :, None] + np.zeros((1, 1, tile), int)
    pc = cols[:, None, None] + i[None, None, :] + np.zeros((1, tile, 1), int)
    want = expected_code_index(scene, pr, pc)
    assert np.array_equal(got, want)  # pixel-exact, borders included
    want_counts = np.stack([np.bincount(t.ravel(), minlength=rasters.N_CODE_INDEX) for t in want])
    assert np.array_equal(counts, want_counts)
    assert (want_counts.max(1) == tile * tile).any() and (want_counts.max(1) < tile * tile).any()  # both kinds of tile


def test_counts_leave_out_excluded_pixels(scene):
    tile = 16
    with rasters.open_image(scene.image) as src, rasters.open_labels(scene.labels, src) as labels:
        window, _rows, _cols = window_tiles(6, 8, tile, tile, r0=1, c0=1)
        codes = labels.read_tiles(window, 6, 8, tile, tile)
        exclude = np.random.default_rng(0).random(codes.shape) < 0.3
        exclude[0] = True  # a tile with no valid pixel at all
        counts = labels.read_counts(window, 6, 8, tile, tile, exclude=exclude)
    kept = np.where(exclude, rasters.N_CODE_INDEX, codes)
    want = np.stack([np.bincount(t.ravel(), minlength=rasters.N_CODE_INDEX + 1)[:-1] for t in kept])
    assert np.array_equal(counts, want)
    assert counts[0].sum() == 0


def test_labels_finer_than_the_image_take_the_general_path(tmp_path):
    # Labels at 1 m under a 10 m image: a 32 px tile spans 320 label pixels a side, more
    # than the compact counting path handles.
    image_t = from_origin(500_000, 3_880_000, 10, 10)
    write_raster(tmp_path / "image.tif", np.ones((3, 64, 64), np.uint8), IMAGE_CRS, image_t)
    codes = np.where((np.arange(700)[:, None] // 37 + np.arange(700)[None, :] // 53) % 2, 211, 312).astype(np.uint16)
    label_t = from_origin(500_000 - 30.5, 3_880_000 + 30.5, 1, 1)
    write_raster(tmp_path / "labels.tif", codes, IMAGE_CRS, label_t)
    with rasters.open_image(tmp_path / "image.tif") as src, rasters.open_labels(tmp_path / "labels.tif", src) as labels:
        assert labels.encoding == "clc"
        window, _rows, _cols = window_tiles(2, 2, 32, 32)
        counts = labels.read_counts(window, 2, 2, 32, 32)
        tiles = labels.read_tiles(window, 2, 2, 32, 32)
    # Image pixel centres (same CRS) lie in the middle of label pixels 35 + 10 * i.
    centre = 35 + 10 * np.arange(64)
    want = codes[centre[:, None], centre[None, :]]
    want_index = np.vectorize(CODE_INDEX.get)(want)
    got_image = tiles.reshape(2, 2, 32, 32).transpose(0, 2, 1, 3).reshape(64, 64)
    assert np.array_equal(got_image, want_index)
    assert counts.sum() == 4 * 32 * 32 and np.array_equal(
        counts, np.stack([np.bincount(t.ravel(), minlength=rasters.N_CODE_INDEX) for t in tiles])
    )


def test_grid_and_clc_rasters_give_the_same_codes(scene, tmp_path):
    clc_path = write_clc_raster(tmp_path / "labels_clc.tif", scene)
    window, _, _ = window_tiles(10, 10, 16, 16)
    with rasters.open_image(scene.image) as src:
        with rasters.open_labels(scene.labels, src) as grid_labels, rasters.open_labels(clc_path, src) as clc_labels:
            assert (grid_labels.encoding, clc_labels.encoding) == ("grid", "clc")
            a = grid_labels.read_tiles(window, 10, 10, 16, 16)
            assert np.array_equal(a, clc_labels.read_tiles(window, 10, 10, 16, 16))
        with pytest.raises(OLRError, match="no valid land-cover class"):
            rasters.open_labels(clc_path, src, encoding="grid")  # CLC codes read as grid codes: nothing valid


def test_vector_labels_match_the_raster_away_from_borders(scene, tmp_path):
    gpkg = write_label_vector(tmp_path / "clc.gpkg", scene.codes, scene.label_transform)
    window, _, _ = window_tiles(10, 10, 16, 16)
    with (
        rasters.open_image(scene.image) as src,
        rasters.open_labels(gpkg, src) as vec,
        rasters.open_labels(scene.labels, src) as ras,
    ):
        assert (vec.kind, vec.encoding) == ("vector", "clc")
        v, r = vec.read_tiles(window, 10, 10, 16, 16), ras.read_tiles(window, 10, 10, 16, 16)
    interior = r.reshape(100, -1).min(1) == r.reshape(100, -1).max(1)
    assert interior.sum() > 10
    assert np.array_equal(v[interior], r[interior])
    # Elsewhere only pixels on a polygon edge may differ (edges are straight in the image CRS).
    assert (v != r).mean() < 0.002


def test_without_fiona_a_vector_map_and_a_geopackage_export_say_how_to_add_it(scene, tmp_path, monkeypatch):
    """On Linux ARM64 the install leaves fiona out (no wheel there): the two places that need it say so."""
    from olr.analysis import exports

    gpkg = write_label_vector(tmp_path / "clc.gpkg", scene.codes, scene.label_transform)
    monkeypatch.setitem(sys.modules, "fiona", None)  # what `import fiona` meets where it is not installed
    from olr.data.rasters import vector_labels

    # what the preparation's child process runs to read the map (the monkeypatch stays in this process)
    with rasters.open_image(scene.image) as src, pytest.raises(OLRError) as refused:
        vector_labels.read_vector_layer(gpkg, src.crs.to_wkt(), src.bounds)
    assert "Reading a vector label map needs the fiona package" in str(refused.value)
    assert "pip install 'fiona~=1.10.1'" in str(refused.value) and "GeoTIFF" in str(refused.value)
    out = tmp_path / "out.gpkg"
    with pytest.raises(OLRError, match="Writing a GeoPackage needs the fiona package"):
        exports.write_gpkg_layer(out, "tiles", {"geometry": None, "properties": {}}, lambda: iter(()), None)
    assert not out.exists()
    # and the pin the message names is the one the project installs
    assert "fiona~=1.10.1;" in (Path(__file__).parents[1] / "pyproject.toml").read_text()


@pytest.mark.parametrize("raw,expected", [(48, 0), (49, 0), (50, 0), (255, 0), (0, 0), (45, 0), (1, 1), (44, 44)])
def test_grid_code_values_outside_1_to_44_are_no_label(raw, expected):
    got = rasters.to_code_index(np.array([[raw]], dtype=np.uint8), "grid")
    assert int(got[0, 0]) == expected


def test_code_index_for_other_dtypes():
    values = np.array([[-9999, 0, 111, 523, 524, 1000]], dtype=np.int32)
    got = rasters.to_code_index(values, "clc")
    assert got.tolist() == [[0, 0, CODE_INDEX[111], CODE_INDEX[523], 0, 0]]
    floats = np.array([[np.nan, 211.0, 3.0]], dtype=np.float32)
    assert rasters.to_code_index(floats, "grid").tolist() == [[0, 0, CODE_INDEX[121]]]


def test_auto_encoding():
    official = corine_colormap()
    grid = np.array([1, 2, 44, 48, 255], dtype=np.uint8)
    assert rasters.auto_encoding("clc.tif", grid, None, official) == "grid"
    assert rasters.auto_encoding("clc.tif", np.array([111, 211, 523, 0], dtype=np.uint16), None, None) == "clc"
    assert rasters.auto_encoding("clc.tif", np.array([48, 49, 50, 255], dtype=np.uint8), None, official) is None
    with pytest.raises(OLRError, match="--label-encoding grid"):  # small values without CORINE's colours
        rasters.auto_encoding("clc.tif", grid, None, None)


def test_image_mask_marks_pixels_whose_bands_all_equal_nodata():
    pixels = np.ones((2, 3, 4), dtype=np.uint16)
    pixels[0, 0] = 0
    pixels[1, 2, 1] = 0  # one band only: still valid
    mask = rasters.ImageMask("value", 0.0).pixels(None, None, pixels)
    assert mask.tolist() == [[True, False, False], [False, False, False]]
    three = np.ones((2, 2, 3), dtype=np.uint8)
    three[1, 1] = 7
    assert rasters.ImageMask("value", 7.0).pixels(None, None, three).tolist() == [[False, False], [False, True]]
    assert rasters.ImageMask("value", -1.0).pixels(None, None, three) is None  # cannot occur in uint8
    floats = np.ones((1, 2, 2), dtype=np.float32)
    floats[0, 1] = np.nan
    assert rasters.ImageMask("value", float("nan")).pixels(None, None, floats).tolist() == [[False, True]]


def test_band_names(tmp_path):
    t = from_origin(500_000, 3_880_000, 10, 10)
    with rasterio.open(write_raster(tmp_path / "a.tif", np.ones((4, 8, 8), np.uint16), IMAGE_CRS, t)) as src:
        # No descriptions, no colour interpretation: the band order is not guessed.
        assert rasters.band_names(src, rasters.image_bands(src)) == ["band 1", "band 2", "band 3", "band 4"]
    # GDAL flags the 4th band of a 4-band uint8 file as alpha: it stays a band.
    with rasterio.open(write_raster(tmp_path / "rgba.tif", np.ones((4, 8, 8), np.uint8), IMAGE_CRS, t)) as src:
        assert rasters.image_bands(src) == [1, 2, 3, 4]
        assert rasters.band_names(src, rasters.image_bands(src)) == ["red", "green", "blue", "alpha"]
        assert rasters.ImageMask.of(src, [1, 2, 3, 4]).kind == "none"
    with rasterio.open(write_raster(tmp_path / "b.tif", np.ones((2, 8, 8), np.uint8), IMAGE_CRS, t)) as src:
        assert rasters.band_names(src, rasters.image_bands(src)) == ["band 1", "band 2"]
    path = write_raster(tmp_path / "c.tif", np.ones((2, 8, 8), np.uint8), IMAGE_CRS, t)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = ("B08", "B04")
    with rasterio.open(path) as src:
        assert rasters.band_names(src, rasters.image_bands(src)) == ["B08", "B04"]


# ---------------------------------------------------------------- bad input


def test_missing_and_unreadable_images(tmp_path):
    with pytest.raises(OLRError, match="does not exist"):
        rasters.open_image(tmp_path / "nope.tif")
    (tmp_path / "text.tif").write_text("not a raster")
    with pytest.raises(OLRError, match="not a raster"):
        rasters.open_image(tmp_path / "text.tif")
    with pytest.raises(OLRError, match="is a folder"):
        rasters.open_image(tmp_path)


def test_image_without_crs_or_geotransform(tmp_path):
    no_crs = tmp_path / "no_crs.tif"
    with rasterio.open(
        no_crs, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", transform=from_origin(0, 0, 1, 1)
    ) as dst:
        dst.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(OLRError, match="no coordinate reference system"):
        rasters.open_image(no_crs)
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs=IMAGE_CRS) as dst:
        dst.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(OLRError, match="no geotransform"):
        rasters.open_image(plain)


def test_labels_that_do_not_overlap_or_hold_no_class(scene, tmp_path):
    far = write_raster(
        tmp_path / "far.tif", codes_to_grid(scene.codes), LABEL_CRS, from_origin(2_000_000, 5_000_000, 100, 100)
    )
    empty = write_raster(
        tmp_path / "empty.tif", np.full(scene.codes.shape, 48, np.uint8), LABEL_CRS, scene.label_transform
    )
    (tmp_path / "text.gpkg").write_text("nothing")
    with rasters.open_image(scene.image) as src:
        with pytest.raises(OLRError, match="do not overlap"):
            rasters.open_labels(far, src)
        with pytest.raises(OLRError, match="no valid land-cover class"):
            rasters.open_labels(empty, src)
        with pytest.raises(OLRError, match="neither a raster nor a vector"):
            rasters.open_labels(tmp_path / "text.gpkg", src)
        with pytest.raises(OLRError, match="does not exist"):
            rasters.open_labels(tmp_path / "missing.tif", src)
        with pytest.raises(OLRError, match="Unknown label encoding"):
            rasters.open_labels(scene.labels, src, encoding="codes")


def test_vector_without_code_field(scene, tmp_path):
    import fiona
    from fiona.crs import CRS

    path = tmp_path / "other.gpkg"
    schema = {"geometry": "Polygon", "properties": {"name": "str"}}
    with fiona.open(
        path, "w", driver="GPKG", crs=CRS.from_user_input(LABEL_CRS), schema=schema, **NO_SPATIAL_INDEX
    ) as dst:
        x0, y0 = scene.label_transform * (0, 0)
        ring = [(x0, y0), (x0 + 5000, y0), (x0 + 5000, y0 - 5000), (x0, y0 - 5000), (x0, y0)]
        dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"name": "x"}})
    with rasters.open_image(scene.image) as src, pytest.raises(OLRError, match="no Code_18 field"):
        rasters.open_labels(path, src)


def test_indexed_geopackage_reads_after_tensorflow_was_imported(scene, tmp_path):
    """A real CORINE GeoPackage has an R-tree index; TensorFlow's SQLite lacks the rtree module
    (the app or a notebook may have imported it before preparing), so reading falls back."""
    import subprocess
    import sys

    from olr import workspace

    path = tmp_path / "indexed.gpkg"
    write = (
        "import sys, numpy as np; from affine import Affine; "
        "from tests.fixtures.data import write_label_vector, NO_SPATIAL_INDEX;"
        "NO_SPATIAL_INDEX.clear();"  # this clean process (no TensorFlow) can build the index
        f"write_label_vector({str(path)!r}, np.load({str(tmp_path / 'codes.npy')!r}), "
        f"Affine(*{tuple(scene.label_transform)[:6]!r}))"
    )
    np.save(tmp_path / "codes.npy", scene.codes)
    subprocess.run([sys.executable, "-c", write], check=True, cwd=workspace.REPO_ROOT, timeout=120)
    read = (
        "import tensorflow, fiona;"  # TensorFlow first, as in a process that trained or evaluated
        "from olr.data import rasters;"
        f"src = rasters.open_image({str(scene.image)!r}); labels = rasters.open_labels({str(path)!r}, src);"
        "print('shapes', len(labels.shapes))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", read], capture_output=True, text=True, cwd=workspace.REPO_ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split("shapes")[-1]) > 0
