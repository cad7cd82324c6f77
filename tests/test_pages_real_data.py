"""Real scenes on the pages: the Train page offers only the label schemes that apply to the dataset
picked (a legend without CLC codes has no CORINE scheme), and the Datasets page prepares from
uploaded band files with an uploaded legend exactly as the library does from the same files
(real GeoTIFFs, real preparations, the real app through AppTest)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
from streamlit.testing.v1 import AppTest

from olr import workspace
from olr.data import label_schemes
from olr.data.dataset import load_dataset
from olr.data.prepare import prepare_dataset
from tests.fixtures.data import IMAGE_CRS, IMAGE_ORIGIN, LABEL_CRS, label_grid, make_scene, patchy_codes, write_raster
from tests.fixtures.pages import DEFAULT_PAGE, open_app
from tests.test_uploads import band_uploads

TILE = 16
LEGEND_CSV = b"value,name\n10,Conifer\n20,Broadleaf\n30,Grassland\n"


@pytest.fixture(scope="module")
def legend_scene(tmp_path_factory):
    """(image, land-use raster of values 10/20/30 in another CRS and resolution, legend CSV without CLC codes)."""
    folder = tmp_path_factory.mktemp("pages_real_data")
    scene = make_scene(folder, size=64, seed=2)
    size_m = 64 * scene.res
    bounds = (IMAGE_ORIGIN[0], IMAGE_ORIGIN[1] - size_m, IMAGE_ORIGIN[0] + size_m, IMAGE_ORIGIN[1])
    transform, width, height = label_grid(bounds, IMAGE_CRS, LABEL_CRS, res=30.0)
    values = patchy_codes((height, width), (10, 20, 30), patch=3, seed=2).astype(np.uint8)
    landuse = write_raster(folder / "landuse.tif", values, LABEL_CRS, transform)
    legend = folder / "legend.csv"
    legend.write_bytes(LEGEND_CSV)
    return scene, landuse, legend


def open_without_demo(monkeypatch, page: str = DEFAULT_PAGE) -> AppTest:
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    return open_app(page)


def test_the_train_page_offers_only_the_schemes_that_apply_to_the_dataset_picked(legend_scene, monkeypatch):
    scene, landuse, legend = legend_scene
    prepare_dataset(scene.image, landuse, workspace.dataset_path("landuse"), tile=TILE, min_labels=0, legend=legend)
    prepare_dataset(scene.image, scene.labels, workspace.dataset_path("corine"), tile=TILE, min_labels=0)
    at = open_without_demo(monkeypatch, "pages/train.py")
    offered = {}
    for name in ("landuse", "corine", "landuse"):  # back again: the list follows the pick at once
        at.selectbox(key="train.classifier.dataset").set_value(name).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        offered[name] = at.selectbox(key="train.classifier.scheme").options
    titles = label_schemes.SCHEME_TITLES
    assert offered["landuse"] == ["(dataset's labels)", titles["legend"], "Custom mapping (JSON below)"]
    corine = ["(dataset's labels)", *(titles[s] for s in label_schemes.SCHEME_NAMES), "Custom mapping (JSON below)"]
    assert offered["corine"] == corine
    # The Datasets page's scheme selector offers the legend dataset's schemes from the same call: no CORINE one.
    at.switch_page("pages/datasets.py").run()
    at.selectbox(key="olr.dataset.widget").set_value("landuse").run()  # the sidebar's dataset
    assert at.header[0].value == "Explorer · landuse"
    assert all(title not in at.selectbox(key="ds.scheme").options for title in corine[1:-1])


def test_the_datasets_page_prepares_uploaded_band_files_with_an_uploaded_legend(legend_scene, monkeypatch, tmp_path):
    scene, landuse, legend = legend_scene
    bands = [(f.name, f.data) for f in band_uploads(scene.image)][::-1]  # reversed: stacked in the order uploaded
    at = open_without_demo(monkeypatch)
    at.radio(key="prep.source").set_value("Upload").run()
    at.file_uploader(key="prep.image_upload").set_value([(n, data, "image/tiff") for n, data in bands])
    at.file_uploader(key="prep.labels_upload").upload("landuse.tif", landuse.read_bytes(), "image/tiff")
    at.file_uploader(key="prep.legend_upload").upload("legend.csv", LEGEND_CSV, "text/csv")
    at.run()
    assert "Band files stacked in this order: B4.tif, B3.tif, B2.tif, B1.tif" in [c.value for c in at.caption]
    assert "prep.legend" not in {w.key for w in at.text_input}  # uploaded, the legend is not typed as well
    at.text_input(key="prep.name").input("uploaded")
    at.number_input(key="prep.tile").set_value(TILE)
    at.number_input(key="prep.min_labels").set_value(0)
    next(b for b in at.button if b.label == "Prepare dataset").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    page = load_dataset(workspace.dataset_path("uploaded"))
    # The library on the same files, in the same order, gives the same dataset.
    paths = []
    for name, data in bands:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    library = load_dataset(
        prepare_dataset(paths, landuse, tmp_path / "library", tile=TILE, min_labels=0, legend=legend)
    )
    assert page.meta["label_encoding"] == "legend" and page.label_names == ["Conifer", "Broadleaf", "Grassland"]
    assert [b["name"] for b in page.meta["bands"]] == ["B4", "B3", "B2", "B1"]
    np.testing.assert_array_equal(page.images[:], library.images[:])
    np.testing.assert_array_equal(page.fractions[:], library.fractions[:])
    with rasterio.open(scene.image) as src:  # B4 first: the bands really are in upload order
        assert page.images[0, 0, 0, 0] == src.read(4)[page.tiles.row_off.iloc[0], page.tiles.col_off.iloc[0]]
    saved = sorted(p.name for p in (workspace.data_dir() / "uploads").rglob("*") if p.is_file())
    assert saved == sorted([*(n for n, _ in bands), "landuse.tif", "legend.csv"])


@pytest.mark.parametrize(("option", "flag"), [("image_nodata", "--image-nodata"), ("label_nodata", "--label-nodata")])
def test_a_bad_nodata_value_on_the_page_says_what_is_wrong_and_which_flag_fixes_it(
    legend_scene, monkeypatch, option, flag
):
    scene, _, _ = legend_scene
    folder = workspace.data_dir() / "uploads"
    folder.mkdir(parents=True)
    for path in (scene.image, scene.labels):
        shutil.copy(path, folder / path.name)
    at = open_without_demo(monkeypatch)
    at.text_input(key="prep.image").input(f"uploads/{scene.image.name}")
    at.text_input(key="prep.labels").input(f"uploads/{scene.labels.name}")
    at.text_input(key="prep.name").input("bad-nodata")
    at.text_input(key=f"prep.{option}").input("zero")
    next(b for b in at.button if b.label == "Prepare dataset").click().run()
    what = flag.removeprefix("--").removesuffix("-nodata")
    assert [e.value for e in at.error] == [
        f"The {what} nodata 'zero' is not a number or none; give the {what} value that means no data "
        f"(e.g. {flag} 0), or {flag} none when no {what} value means no data."
    ]
    assert not workspace.dataset_path("bad-nodata").exists()
