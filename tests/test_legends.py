"""Land-cover maps that are not CORINE, read through a legend; the label encoding never guessed.

Real GeoTIFFs and GeoPackages written with rasterio and fiona, the real preparer and the real
CLI in subprocesses. The oracle for alignment is `rasterio.warp.reproject` (nearest neighbour,
exact transforms: tolerance=0) of the label map onto the image grid, with per-tile class
fractions counted by numpy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from olr.data import label_schemes, legends, rasters
from olr.data.dataset import load_dataset
from olr.data.prepare import prepare_dataset
from olr.errors import OLRError
from tests.fixtures.data import (
    IMAGE_CRS,
    IMAGE_ORIGIN,
    LABEL_CRS,
    NO_SPATIAL_INDEX,
    label_grid,
    patchy_codes,
    run_cli_concurrently,
    write_corine_colormap,
    write_raster,
)
from tests.fixtures.pages import open_app

TILE = 16
VALUES = (10, 20, 30, 40, 50)
LEGEND_CSV = """value,name,color
10,Conifer,#1b7837
20,Broadleaf,
30,Grassland,#a6d96a
40,Urban,
50,Water,#2166ac
"""
#: The same values with CLC codes: two values share 311 (broad-leaved forest).
CLC_LEGEND = [
    {"value": 10, "name": "Conifer", "clc_code": 312},
    {"value": 20, "name": "Broadleaf", "clc_code": 311},
    {"value": 30, "name": "Grassland", "clc_code": 231},
    {"value": 40, "name": "Orchard broadleaf", "clc_code": 311},
    {"value": 50, "name": "Water", "clc_code": 512},
]


def write_scene(folder: Path, values=VALUES, size=96, label_res=30.0, seed=3) -> tuple[Path, Path]:
    """(image, labels): a 3-band uint16 image (EPSG:32636, 10 m, size x size) and a uint8
    categorical raster of `values` in 90 m patches (EPSG:3035, `label_res` m) over it."""
    folder.mkdir(parents=True, exist_ok=True)
    image_transform = from_origin(*IMAGE_ORIGIN, 10.0, 10.0)
    bounds = (IMAGE_ORIGIN[0], IMAGE_ORIGIN[1] - size * 10.0, IMAGE_ORIGIN[0] + size * 10.0, IMAGE_ORIGIN[1])
    label_transform, lw, lh = label_grid(bounds, res=label_res)
    classes = patchy_codes((lh, lw), values, patch=3, seed=seed).astype(np.uint8)
    labels = write_raster(folder / "landuse.tif", classes, LABEL_CRS, label_transform)
    pixels = np.random.default_rng(seed).integers(1, 4000, (3, size, size)).astype(np.uint16)
    image = write_raster(folder / "image.tif", pixels, IMAGE_CRS, image_transform)
    return image, labels


def write_legend(path: Path, text: str = LEGEND_CSV) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def reprojected(labels: Path, image: Path) -> np.ndarray:
    """The label map on the image grid by GDAL's warper: nearest neighbour, exact transforms (0 = none)."""
    with rasterio.open(labels) as lab, rasterio.open(image) as im:
        out = np.zeros((im.height, im.width), dtype=np.int32)
        reproject(
            lab.read(1).astype(np.int32),
            out,
            src_transform=lab.transform,
            src_crs=lab.crs,
            dst_transform=im.transform,
            dst_crs=im.crs,
            resampling=Resampling.nearest,
            tolerance=0,  # no approximate transformer: every pixel centre projected exactly
        )
    return out


def tile_counts(on_grid: np.ndarray, ds, values) -> np.ndarray:
    """(N, len(values)) pixel count of each value in each of the dataset's tiles."""
    rows, cols = ds.tiles.row_off.to_numpy(), ds.tiles.col_off.to_numpy()
    t = ds.tile_shape[0]
    return np.stack(
        [[np.count_nonzero(on_grid[r : r + t, c : c + t] == v) for v in values] for r, c in zip(rows, cols)]
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legend_scene")
    image, labels = write_scene(folder)
    return image, labels, write_legend(folder / "legend.csv")


@pytest.fixture(scope="module")
def legend_dataset(tmp_path_factory, scene) -> Path:
    image, labels, legend = scene
    out = tmp_path_factory.mktemp("legend_ds") / "landuse"
    return prepare_dataset(image, labels, out, tile=TILE, min_labels=0, legend=legend, split_block=2)


# ---------------------------------------------------------------- legend files


def test_csv_and_both_json_forms_give_the_same_legend(tmp_path):
    csv_legend = legends.read_legend(write_legend(tmp_path / "l.csv"))
    as_list = [c.to_json() for c in csv_legend.classes]
    (tmp_path / "list.json").write_text(json.dumps(as_list))
    keyed = {str(c["value"]): {k: v for k, v in c.items() if k != "value"} for c in as_list}
    (tmp_path / "keyed.json").write_text(json.dumps(keyed))
    for path in ("list.json", "keyed.json"):
        assert legends.read_legend(tmp_path / path).classes == csv_legend.classes
    assert [c.value for c in csv_legend.classes] == list(VALUES) and not csv_legend.clc_coded
    assert csv_legend.classes[0].color == "#1b7837" and csv_legend.classes[1].color is None
    colors = legends.class_colors(csv_legend)
    assert colors[10] == "#1b7837" and colors[50] == "#2166ac"
    assert len(set(colors.values())) == len(VALUES)  # made colours are distinct from each other and the given


@pytest.mark.parametrize(
    "text,message",
    [
        ("value,name\n1,Forest\n1,Water\n", "names the value 1 twice"),
        ("value,name\n1,Forest\n2,  \n", "blank name"),
        ("value,name,color\n1,Forest,green\n", "colour 'green'"),
        ("value,name,clc_code\n1,Forest,999\n", "CLC code '999'"),
        ("value,name,clc_code\n1,Forest,311\n2,Water,\n", "CLC codes for some values but not for 'Water'"),
        ("value,label\n1,Forest\n", "start it with the line value,name"),
        ("value,name\n1.5,Forest\n", "value '1.5'"),
        ("value,name\n1,Forest\n2,Forest\n", "names the class 'Forest' twice"),
        ("value,name\n", "names no class"),
    ],
)
def test_a_bad_legend_is_refused_in_one_sentence_naming_the_file(tmp_path, text, message):
    path = write_legend(tmp_path / "bad.csv", text)
    with pytest.raises(OLRError, match=message) as e:
        legends.read_legend(path)
    one_sentence = str(e.value).replace("e.g. ", "")
    assert str(path) in one_sentence and ". " not in one_sentence and one_sentence.endswith(".")


def test_a_json_legend_naming_a_value_twice_is_refused(tmp_path):
    (tmp_path / "twice.json").write_text('{"1": {"name": "Forest"}, "1": {"name": "Water"}}')
    with pytest.raises(OLRError, match="appears twice"):
        legends.read_legend(tmp_path / "twice.json")
    (tmp_path / "twice_list.json").write_text('[{"value": 1, "name": "Forest"}, {"value": 1.0, "name": "Water"}]')
    with pytest.raises(OLRError, match="names the value 1 twice"):
        legends.read_legend(tmp_path / "twice_list.json")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32])
def test_every_dtype_reads_values_alike_and_marks_values_not_covered(dtype):
    legend = legends.Legend.from_json(
        [{"value": 1, "name": "A"}, {"value": 7, "name": "B"}, {"value": 100, "name": "C"}]
    )
    coding = rasters.legend_coding(legend, nodata=0)
    raw = np.array([[0, 1, 7, 100, 5, 101]], dtype=dtype)
    assert coding.code_index(raw).tolist() == [[0, 1, 2, 3, 4, 4]]  # 4 = not covered
    grid = rasters.corine_coding("grid", nodata=None)
    assert grid.code_index(np.array([[48, 49, 50, 0, 44, 45]], dtype=dtype)).tolist() == [[0, 0, 0, 0, 44, 45]]


def test_a_legend_and_a_corine_encoding_are_not_both_taken(scene):
    image, labels, legend = scene
    with rasters.open_image(image) as src:
        with pytest.raises(OLRError, match="Both a legend"):
            rasters.open_labels(labels, src, "grid", legend=legends.read_legend(legend))
        with pytest.raises(OLRError, match="needs a legend file"):
            rasters.open_labels(labels, src, "legend")
        with pytest.raises(OLRError, match="not a number"):
            rasters.open_labels(labels, src, legend=legends.read_legend(legend), nodata="zero")
        with pytest.raises(OLRError, match="are a raster, but --label-field 'klasse'"):
            rasters.open_labels(labels, src, legend=legends.read_legend(legend), label_field="klasse")


# ---------------------------------------------------------------- alignment and class space


#: olr projects tile corners exactly and pixel centres in between affinely (`raster_labels`): within
#: this many label pixels of the exact position. A pixel centre closer than that to a label pixel
#: edge may fall on either side; GDAL (tolerance=0) projects every centre exactly.
AFFINE_ERROR_PX = 1e-3


def near_edge(labels: Path, image: Path, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(n,) bool: whether image pixel centres (rows, cols) project within AFFINE_ERROR_PX of a label pixel edge."""
    from rasterio.warp import transform as transform_points

    with rasterio.open(labels) as lab, rasterio.open(image) as im:
        x, y = im.transform * (cols + 0.5, rows + 0.5)
        lx, ly = transform_points(im.crs, lab.crs, np.atleast_1d(x), np.atleast_1d(y))
        c, r = ~lab.transform * (np.asarray(lx), np.asarray(ly))
    return (np.abs(c - np.round(c)) < AFFINE_ERROR_PX) | (np.abs(r - np.round(r)) < AFFINE_ERROR_PX)


def test_a_legend_map_in_another_crs_and_resolution_labels_tiles_as_rasterio_reproject_does(scene, legend_dataset):
    image, labels, legend = scene
    ds = load_dataset(legend_dataset)
    assert ds.n_tiles == (96 // TILE) ** 2  # min_labels=0, no image nodata: every tile kept
    on_grid = reprojected(labels, image)
    assert set(np.unique(on_grid)) <= set(VALUES)  # the label map covers the whole image
    # olr's own per-pixel labelling of the image, through the same legend.
    with rasters.open_image(image) as src, rasters.open_labels(labels, src, legend=legends.read_legend(legend)) as lab:
        tiles = lab.read_tiles(
            Window(0, 0, 96, 96), 6, 6, TILE, TILE
        )  # the preparer's tiles (the affine map is per tile)
    ours = np.array([0, *lab.classes])[tiles.reshape(6, 6, TILE, TILE).transpose(0, 2, 1, 3).reshape(96, 96)]
    rows, cols = np.nonzero(ours != on_grid)
    assert len(rows) <= 2 and near_edge(labels, image, rows, cols).all()  # only sub-1e-3-pixel ties differ
    counts = tile_counts(on_grid, ds, VALUES)
    want = (counts / counts.sum(1, keepdims=True)).astype(np.float32)
    present = want.max(0) > 0
    assert ds.codes == [v for v, k in zip(VALUES, present) if k] and present.sum() >= 4
    # Exactly equal (same pixels, same division) in every tile without such a tie.
    tie = np.zeros(ds.n_tiles, dtype=bool)
    for r, c in zip(rows, cols):
        tie |= (ds.tiles.row_off.to_numpy() // TILE == r // TILE) & (ds.tiles.col_off.to_numpy() // TILE == c // TILE)
    assert np.array_equal(np.asarray(ds.code_fractions)[~tie], want[~tie][:, present])
    ours_counts = tile_counts(ours, ds, VALUES)
    assert np.array_equal(np.asarray(ds.code_fractions), (ours_counts / TILE**2).astype(np.float32)[:, present])
    # The legend scheme: one label per class, named as in the legend, fractions = class fractions.
    meta = ds.meta
    assert meta["label_encoding"] == "legend" and meta["scheme"]["name"] == "legend"
    assert meta["legend"] == [c.to_json() for c in legends.read_legend(legend).classes]
    assert meta["sources"]["legend"]["sha256"] and meta["parameters"]["legend"] == str(legend)
    names = dict(zip(VALUES, ["Conifer", "Broadleaf", "Grassland", "Urban", "Water"]))
    assert ds.label_names == [names[v] for v in ds.codes]
    assert [lab.codes for lab in ds.labels] == [(v,) for v in ds.codes]
    assert np.array_equal(np.asarray(ds.fractions), np.asarray(ds.code_fractions))
    assert ds.labels[0].color == "#1b7837" and len(set(ds.label_colors)) == len(ds.label_colors)


def test_a_legend_with_clc_codes_makes_a_corine_dataset_where_every_scheme_applies(tmp_path, scene):
    image, labels, _ = scene
    (tmp_path / "clc_legend.json").write_text(json.dumps(CLC_LEGEND))
    out = prepare_dataset(
        image, labels, tmp_path / "ben", tile=TILE, min_labels=0, legend=tmp_path / "clc_legend.json", scheme="ben19"
    )
    ds = load_dataset(out)
    assert ds.meta["label_encoding"] == "legend" and ds.meta["scheme"]["name"] == "ben19"
    assert set(ds.label_names) <= {c.ben19 for c in label_schemes.legend()}
    assert {"Coniferous forest", "Broad-leaved forest"} <= set(ds.label_names)
    # Values 20 and 40 both become CLC 311: its fraction is theirs together.
    counts = tile_counts(reprojected(labels, image), ds, VALUES)
    fractions = counts / counts.sum(1, keepdims=True)
    column = ds.codes.index(311)
    assert np.allclose(ds.code_fractions[:, column], fractions[:, 1] + fractions[:, 3], atol=1e-6)
    assert set(ds.codes) <= set(label_schemes.ALL_CODES)
    # Every CORINE scheme can be rebuilt from the dataset alone.
    level1 = ds.scheme("level1")
    assert "Forest and semi natural areas" in [lab.name for lab in level1.labels]
    assert ds.fractions_for(list(level1.labels)).shape == (ds.n_tiles, 5)
    assert legends.scheme_names(ds.legend) == label_schemes.SCHEME_NAMES


def test_a_user_mapping_groups_legend_classes_by_name_or_value(tmp_path, scene, legend_dataset):
    image, labels, legend = scene
    mapping = {"Forest": ["Conifer", "Broadleaf"], "Open": ["Grassland", 40], "Water": [50]}
    ds = load_dataset(legend_dataset)
    assert ds.codes == list(VALUES)  # every class occurs in the scene
    scheme = ds.scheme(mapping)
    assert [lab.codes for lab in scheme.labels] == [(10, 20), (30, 40), (50,)]
    assert scheme.labels[0].color == "#1b7837"  # a group takes its first class's colour
    cf = np.asarray(ds.code_fractions, dtype=np.float64)
    want = np.stack([cf[:, 0] + cf[:, 1], cf[:, 2] + cf[:, 3], cf[:, 4]], 1)
    assert np.allclose(ds.fractions_for(list(scheme.labels)), want, atol=1e-6)  # float32 sums
    # The same mapping at preparation, from a JSON file.
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(mapping))
    grouped = load_dataset(
        prepare_dataset(image, labels, tmp_path / "g", tile=TILE, min_labels=0, legend=legend, scheme=path)
    )
    assert grouped.meta["scheme"]["name"] == "groups" and grouped.label_names == ["Forest", "Open", "Water"]
    assert np.allclose(np.asarray(grouped.fractions), want, atol=1e-6)
    with pytest.raises(OLRError, match="neither a class name nor a value"):
        ds.scheme({"Forest": ["Pine"]})
    with pytest.raises(OLRError, match="mapped to both"):
        ds.scheme({"Forest": ["Conifer"], "Trees": [10]})


def test_corine_schemes_are_refused_for_a_legend_without_clc_codes(tmp_path, scene, legend_dataset):
    image, labels, legend = scene
    ds = load_dataset(legend_dataset)
    with pytest.raises(OLRError, match="groups CORINE codes") as e:
        ds.scheme("ben19")
    assert '"legend"' in str(e.value)
    assert ds.scheme("level3").labels == ds.scheme("legend").labels  # each class its own label
    with pytest.raises(OLRError, match="groups CORINE codes"):
        prepare_dataset(image, labels, tmp_path / "x", tile=TILE, legend=legend, scheme="level2")
    assert not (tmp_path / "x").exists()


def test_a_training_scheme_request_on_a_legend_dataset_is_refused_before_any_run(legend_dataset):
    from olr.training import options, plan

    cfg = options.resolve({"kind": "classifier", "dataset": str(legend_dataset), "scheme": "level2"})
    with pytest.raises(OLRError, match="groups CORINE codes"):
        plan.prepare_classifier(cfg)
    grouped = {**cfg, "scheme": {"Trees": ["Conifer", "Broadleaf"], "Other": ["Grassland", "Urban", "Water"]}}
    assert [lab["name"] for lab in plan.prepare_classifier(grouped).cfg["labels"]] == ["Trees", "Other"]


# ---------------------------------------------------------------- never guessed


def test_small_values_without_a_colour_table_are_not_read_as_corine(tmp_path):
    image, labels = write_scene(tmp_path, values=tuple(range(1, 10)))
    with pytest.raises(OLRError, match="--label-encoding grid") as e:
        prepare_dataset(image, labels, tmp_path / "auto", tile=TILE)
    assert "--legend FILE" in str(e.value) and "1, 2, 3, 4, 5 and 4 more" in str(e.value)
    assert not (tmp_path / "auto").exists()
    said = load_dataset(prepare_dataset(image, labels, tmp_path / "grid", tile=TILE, label_encoding="grid"))
    assert said.meta["label_encoding"] == "grid"
    assert set(said.codes) <= {c.code for c in label_schemes.legend() if c.grid_code <= 9}
    write_corine_colormap(labels)  # as Copernicus CLC GeoTIFFs carry: now auto may read grid codes
    auto = load_dataset(prepare_dataset(image, labels, tmp_path / "colours", tile=TILE))
    assert auto.meta["label_encoding"] == "grid" and np.array_equal(auto.fractions, said.fractions)


def test_a_legend_must_cover_every_value_and_the_label_nodata_can_say_which_means_none(tmp_path, scene):
    image, labels, _ = scene
    partial = write_legend(tmp_path / "partial.csv", "value,name\n10,Conifer\n20,Broadleaf\n30,Grassland\n")
    with pytest.raises(OLRError, match=r"does not name where they overlap the image \(40, 50\)"):
        prepare_dataset(image, labels, tmp_path / "p", tile=TILE, legend=partial)
    with pytest.raises(OLRError, match=r"does not name .*\(40\)"):
        prepare_dataset(image, labels, tmp_path / "p", tile=TILE, legend=partial, label_nodata="50")
    assert not (tmp_path / "p").exists()
    # CORINE CLC codes with a stray value: refused too, naming the value and the flag.
    clc = write_raster(
        tmp_path / "clc.tif",
        np.array([[211, 312], [7, 312]], np.uint16).repeat(40, 0).repeat(40, 1),
        IMAGE_CRS,
        from_origin(*IMAGE_ORIGIN, 10.0, 10.0),
    )
    with pytest.raises(OLRError, match=r"not CORINE CLC codes 111..523 where they overlap the image \(7\)"):
        prepare_dataset(image, clc, tmp_path / "c", tile=TILE)
    ok = load_dataset(prepare_dataset(image, clc, tmp_path / "c", tile=TILE, label_nodata=7, min_labels=0))
    assert ok.meta["sources"]["labels"]["nodata"] == 7 and set(ok.codes) <= {211, 312}


def test_a_value_the_decimated_check_misses_is_caught_exactly_by_the_tiling_pass(tmp_path):
    """Labels at 2.5 m under a 10 m image: the early check reads every other label pixel, the
    tiling pass the one under each image pixel centre. A single uncovered pixel that only the
    tiling pass sees must still be refused, and nothing written."""
    size, res = 512, 2.5
    image = write_raster(
        tmp_path / "image.tif", np.ones((1, size, size), np.uint8), IMAGE_CRS, from_origin(*IMAGE_ORIGIN, 10.0, 10.0)
    )
    n = size * 4
    legend = write_legend(tmp_path / "legend.csv", "value,name\n1,Field\n2,Wood\n")
    classes = np.where((np.arange(n)[:, None] // 64 + np.arange(n)[None, :] // 64) % 2, 1, 2).astype(np.uint8)
    for shift in (0, 1):  # the image samples label pixels 4 j + 2 (+ shift): pick the one the early check misses
        row = col = 4 * 300 + 2 + shift
        stray = classes.copy()
        stray[row, col] = 9
        origin = (IMAGE_ORIGIN[0] - shift * res, IMAGE_ORIGIN[1] + shift * res)
        labels = write_raster(tmp_path / f"labels{shift}.tif", stray, IMAGE_CRS, from_origin(*origin, res, res))
        with rasterio.open(labels) as src:
            early = src.read(1, out_shape=(rasters.CHECK_READ_SIDE,) * 2, resampling=Resampling.nearest)
        if 9 not in early:
            break
    assert 9 not in early
    with rasterio.open(image) as src:
        rasters.open_labels(labels, src, legend=legends.read_legend(legend)).close()  # the early check passes
    out = tmp_path / "data" / "ds"
    with pytest.raises(OLRError, match=r"does not name where they overlap the image \(9\)"):
        prepare_dataset(image, labels, out, tile=32, legend=legend)
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- vectors


def write_vector(path: Path, classes: np.ndarray, transform, crs=LABEL_CRS) -> Path:
    """A GeoPackage of one square polygon per run of equal pixels in a row, the class in an int field `klasse`."""
    import fiona
    from fiona.crs import CRS

    schema = {"geometry": "Polygon", "properties": {"klasse": "int", "note": "str"}}
    with fiona.open(path, "w", driver="GPKG", crs=CRS.from_user_input(crs), schema=schema, **NO_SPATIAL_INDEX) as dst:
        for r in range(classes.shape[0]):
            c = 0
            while c < classes.shape[1]:
                end = c
                while end < classes.shape[1] and classes[r, end] == classes[r, c]:
                    end += 1
                (x0, y0), (x1, y1) = transform * (c, r), transform * (end, r + 1)
                ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
                props = {"klasse": int(classes[r, c]), "note": "x"}
                dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props})
                c = end
    return path


def test_a_vector_label_field_goes_through_the_legend(tmp_path, scene, legend_dataset):
    image, labels, legend = scene
    with rasterio.open(labels) as src:
        gpkg = write_vector(tmp_path / "landuse.gpkg", src.read(1), src.transform)
    ds = load_dataset(
        prepare_dataset(image, gpkg, tmp_path / "v", tile=TILE, min_labels=0, legend=legend, label_field="klasse")
    )
    assert ds.meta["sources"]["labels"]["field"] == "klasse" and ds.meta["label_encoding"] == "legend"
    raster = load_dataset(legend_dataset)
    counts = tile_counts(reprojected(labels, image), ds, VALUES)
    got = np.round(np.asarray(ds.code_fractions) * TILE * TILE).astype(int)
    want = counts[:, [VALUES.index(v) for v in ds.codes]]
    assert ds.codes == raster.codes
    # Polygon edges are straight in the image CRS, the raster's are projected: only pixels whose
    # centre lies in that sliver may differ (as for CORINE vectors in test_rasters).
    assert np.abs(got - want).sum() / 2 / want.sum() < 0.002
    with pytest.raises(OLRError, match=r"have no field 'kind' \(fields: klasse, note\)"):
        prepare_dataset(image, gpkg, tmp_path / "w", tile=TILE, legend=legend, label_field="kind")


# ---------------------------------------------------------------- the CLI


def test_the_cli_prepares_a_legend_map_and_refuses_bad_input_in_one_line(tmp_path, scene, legend_dataset):
    image, labels, legend = scene
    files = tmp_path / "files"
    files.mkdir()
    small, _ = write_scene(files / "small", values=tuple(range(1, 10)))
    small_labels = files / "small" / "landuse.tif"
    partial = write_legend(files / "partial.csv", "value,name\n10,Conifer\n20,Broadleaf\n30,Grassland\n")
    twice = write_legend(files / "twice.csv", LEGEND_CSV + "20,Oak\n")
    mixed = write_legend(files / "mixed.csv", "value,name,clc_code\n10,Conifer,312\n20,Broadleaf,\n")
    with rasterio.open(labels) as src:
        gpkg = write_vector(files / "landuse.gpkg", src.read(1), src.transform)

    def with_dataset(home):
        shutil.copytree(legend_dataset, home / "data" / "landuse")

    prepare = ["prepare", "--image", image, "--labels", labels, "--tile", str(TILE)]
    cases = {
        # The README's "any land-cover map + legend" command.
        "readme": (
            ["prepare", "--image", image, "--labels", labels, "--legend", legend, "--out", "data/landuse"],
            None,
        ),
        "uncovered": ([*prepare, "--legend", partial, "--out", "data/x"], None),
        "twice": ([*prepare, "--legend", twice, "--out", "data/x"], None),
        "mixed": ([*prepare, "--legend", mixed, "--out", "data/x"], None),
        "small": (["prepare", "--image", small, "--labels", small_labels, "--tile", "16", "--out", "data/x"], None),
        "field": (
            [
                "prepare",
                "--image",
                image,
                "--labels",
                gpkg,
                "--legend",
                legend,
                "--label-field",
                "kind",
                "--out",
                "data/x",
            ],
            None,
        ),
        "stats": (["datasets", "landuse", "--scheme", "level2"], with_dataset),
    }
    results = run_cli_concurrently(cases, tmp_path / "homes")
    ok = results.pop("readme")
    assert ok.returncode == 0, ok.stderr
    ds = load_dataset(ok.home / "data" / "landuse")
    assert ds.meta["label_encoding"] == "legend" and ds.label_names and ds.meta["scheme"]["name"] == "legend"
    expected = {
        "uncovered": "does not name where they overlap the image (40, 50)",
        "twice": "names the value 20 twice",
        "mixed": "gives CLC codes for some values but not for 'Broadleaf'",
        "small": "--label-encoding grid",
        "field": "have no field 'kind' (fields: klasse, note)",
        "stats": "groups CORINE codes",
    }
    for case, result in results.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected[case] in lines[0], (case, result.stderr)
        data = result.home / "data"
        if case != "stats":  # nothing written, not even a hidden staging folder
            assert not data.exists() or not list(data.iterdir()), (case, list(data.iterdir()))


# ---------------------------------------------------------------- the Datasets page


def test_the_datasets_page_prepares_with_a_legend_and_shows_the_encoding(monkeypatch, _isolated_workspace, scene):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    image, labels, legend = scene
    uploads = _isolated_workspace / "data" / "uploads"
    uploads.mkdir(parents=True)
    for path in (image, labels, legend):
        shutil.copy(path, uploads / path.name)
    at = open_app()
    at.text_input(key="prep.image").input("uploads/image.tif")
    at.text_input(key="prep.labels").input("uploads/landuse.tif")
    at.text_input(key="prep.legend").input("uploads/legend.csv")
    at.text_input(key="prep.name").input("landuse")
    at.number_input(key="prep.tile").set_value(TILE)
    next(b for b in at.button if b.label == "Prepare dataset").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ds = load_dataset(_isolated_workspace / "data" / "landuse")
    assert ds.meta["label_encoding"] == "legend" and ds.meta["scheme"]["name"] == "legend"
    # The explorer: the encoding in words, and no CORINE scheme offered for these labels.
    assert any("the values named by the legend legend.csv" in c.value for c in at.caption)
    assert at.selectbox(key="ds.scheme").options == ["As prepared: The legend's classes (one label per entry)"]
