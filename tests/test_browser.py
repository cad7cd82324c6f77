"""The app in a real browser: headless Chromium against `streamlit run app.py`.

Every page loads without an exception element, the Datasets charts and the (offline) map render,
and a run launched from the Train page shows its curve on the Live page. Full-page screenshots of
each page go to test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import time
import zipfile

import numpy as np

from olr.runs import annotations, store
from olr.training import options
from tests.fixtures.browser import SCREENSHOTS
from ui.served_app import settle  # the run is over: one definition, shared with the map benchmark

#: opened first after the server starts: a deep link, not the home page (every page is opened, at two
#: widths, by tests/test_browser_layout.py, which checks the same of each)
FIRST_PAGE = ("live", "Live")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1500, "height": int(min(max(height + 40, 1000), 8000))})
    time.sleep(0.6)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1500, "height": 1000})


def open_page(page, url: str, path: str) -> None:
    page.goto(f"{url}/{path}")
    page.wait_for_selector('[data-testid="stAppViewContainer"]')
    settle(page)


def test_a_deep_link_opened_first_runs_inside_the_app(app_server, page):
    path, title = FIRST_PAGE
    open_page(page, app_server, path)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("h1").first.inner_text().strip() == title
    # The page ran inside app.py's navigation (shared sidebar), also when opened by a deep link.
    assert "Workspace" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert page.get_by_role("link", name="Correlations & map").count() == 1
    screenshot(page, path)


def test_datasets_charts_and_offline_map_render(app_server, page, browser_workspace):
    from olr.data import summary
    from olr.data.dataset import load_dataset
    from tests.test_browser_maps import POINT_JS, tile_centre

    open_page(page, app_server, "")  # on "geo", the first dataset
    assert page.locator(".vega-embed").count() >= 3
    page.wait_for_selector(".vega-embed canvas, .vega-embed svg")
    page.get_by_text("Map", exact=True).first.click()
    settle(page)
    frame_element = page.wait_for_selector('iframe[title*="st_folium"]', timeout=30000)
    frame = frame_element.content_frame()
    # Leaflet comes from the app's static folder, so this works without internet access.
    frame.wait_for_selector(".leaflet-container", timeout=30000)
    frame.wait_for_selector("img.leaflet-image-layer.olr-tiles", timeout=30000)  # the tiles: one image
    assert frame.locator(".olr-legend").count() == 1
    assert frame.locator("img.leaflet-image-layer").count() == 2  # the scene preview and the tiles
    rendering = frame.evaluate("() => getComputedStyle(document.querySelector('img.olr-tiles')).imageRendering")
    assert rendering == "pixelated"  # one pixel per tile, crisp at any zoom
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Click a tile on the map to see it here" in page.locator('[data-testid="stMain"]').inner_text()

    # a click on a tile in the middle of the scene (clear of the legend) shows its values and labels below
    ds = load_dataset(browser_workspace / "data" / "geo")
    centres = np.array([tile_centre(ds, row) for row in range(ds.n_tiles)])
    row = int(np.argmin(((centres - centres.mean(axis=0)) ** 2).sum(axis=1)))
    frame_element.scroll_into_view_if_needed()
    box = frame_element.bounding_box()
    point = frame.evaluate(f"(p) => ({POINT_JS})([map_div, p[0], p[1]])", list(centres[row]))
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    name = summary.dataset_tile_names(ds, [row])[0]
    page.get_by_test_id("stImage").filter(has_text=name).wait_for(timeout=30000)
    assert f"{name} · {ds.tiles['split'].iloc[row]} · " in page.locator('[data-testid="stMain"]').inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    time.sleep(1.0)
    screenshot(page, "datasets-map")


def test_a_dataset_downloads_as_a_geopackage_and_geotiff(app_server, page, browser_workspace, tmp_path):
    import fiona
    import rasterio

    from olr.data.dataset import load_dataset

    open_page(page, app_server, "")  # the Datasets page on "geo", the first dataset: prepared from real rasters
    with page.expect_download(timeout=60000) as download:
        page.locator('[data-testid="stDownloadButton"] button').first.click()
    assert download.value.suggested_filename == "geo-tiles.zip"
    download.value.save_as(tmp_path / "geo.zip")
    with zipfile.ZipFile(tmp_path / "geo.zip") as archive:
        assert sorted(archive.namelist()) == ["fractions.tif", "main_label.tif", "tiles.gpkg"]
        archive.extractall(tmp_path)
    ds = load_dataset(browser_workspace / "data" / "geo")
    source_crs = rasterio.crs.CRS.from_wkt(ds.meta["crs"]["wkt"])
    with fiona.open(tmp_path / "tiles.gpkg", layer="tiles") as tiles:
        assert len(tiles) == ds.n_tiles and rasterio.crs.CRS.from_wkt(tiles.crs.to_wkt()) == source_crs
        assert sum(name.startswith("frac_") for name in tiles.schema["properties"]) == len(ds.labels)
    with rasterio.open(tmp_path / "fractions.tif") as fractions:
        assert fractions.count == len(ds.labels) and fractions.crs == source_crs
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_run_launched_on_the_train_page_draws_its_curve_on_the_live_page(app_server, page, browser_workspace):
    open_page(page, app_server, "train")
    page.get_by_label("Dataset", exact=True).last.click()
    page.get_by_role("option", name="tiny").click()
    page.get_by_text("More options", exact=True).click()  # "Log every n steps" is one of the collapsed options
    for label, value in (
        ("Width", "0.25"),
        ("Depth", "1"),
        (options.OPTIONS["batch_size"].label, "16"),
        (options.OPTIONS["epochs"].label, "3"),
        ("Log every n steps", "2"),
    ):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    page.get_by_role("button", name="Launch training").click()
    settle(page)
    success = page.locator('[data-testid="stAlertContentSuccess"]').inner_text()
    assert "Launched" in success
    run_id = success.split("Launched")[1].split()[0].strip("*")
    page.get_by_role("link", name="Live").click()
    settle(page)
    # preselected for the curves, by its readable name (model · loss · dataset · start time)
    run = store.load_run(browser_workspace / "models" / run_id)
    named = annotations.default_run_name(run).rsplit(annotations.SEPARATOR, 1)[0]
    assert named == "resnet · bce · tiny" and named in page.locator('[data-testid="stSidebar"]').inner_text()
    # The chart appears once the run logs its first metrics; the fragment refreshes by itself.
    page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=180000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text(annotations.run_title(store.load_run(run.path))).count() >= 1
    time.sleep(2.0)
    screenshot(page, "live-launched-run")
