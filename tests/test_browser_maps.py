"""The Correlations page's pair map in a real browser: panes that stay in step after a drag, a pair
change that reruns only the map's part of the page, and a click on a tile that opens it below the map.

The browser workspace's trained runs are on a dataset without coordinates, so the map runs on a
throwaway Siamese run on "geo" (prepared from real rasters, with coordinates and a preview): a copy
of "siam" whose test-split matrices are written here from geo's own labels, with per-tile scores
that follow the labels' area shares, as a network that learned them would. Removed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
import pytest
import rasterio.warp
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from streamlit.proto import ForwardMsg_pb2

from olr.analysis import correlations, pair_maps, tile_images
from olr.data import label_stats, summary
from olr.data.dataset import load_dataset
from olr.runs import annotations
from olr.runs.store import RunLayout
from tests.fixtures.browser import SCREENSHOTS
from tests.test_browser import settle

RUN_ID = "maps-geo-siam"

# Where a pane's tile image is drawn against where its bounds should be, both in the pane's pixels: the
# bounding box of the <img> (moved with the map by Leaflet's CSS transforms) and the overlay's lat/lon bounds
# projected with the map's current view.
PANE_EXTENT_JS = """
(map) => {
  let overlay = null;
  map.eachLayer((layer) => {
    if (layer instanceof L.ImageOverlay && layer.options.className === "olr-tiles") { overlay = layer; }
  });
  const pane = map.getContainer().getBoundingClientRect();
  const box = overlay.getElement().getBoundingClientRect();
  const nw = map.latLngToContainerPoint(overlay.getBounds().getNorthWest());
  const se = map.latLngToContainerPoint(overlay.getBounds().getSouthEast());
  return {
    images: map.getPane("overlayPane").querySelectorAll("img.olr-tiles").length,
    painted: [box.left - pane.left, box.top - pane.top, box.right - pane.left, box.bottom - pane.top],
    expected: [nw.x, nw.y, se.x, se.y],
  };
}
"""

# The brightest pixel of a pane's tile image, (R + G) / 2 in 0..255: the top of viridis (yellow) is about 240,
# its middle (teal) about 90, its dark end about 40.
BRIGHTEST_JS = """
(map) => {
  const image = map.getPane("overlayPane").querySelector("img.olr-tiles");
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let best = 0;
  for (let k = 0; k < data.length; k += 4) {
    if (data[k + 3] > 0) { best = Math.max(best, (data[k] + data[k + 1]) / 2); }
  }
  return best;
}
"""

# Where a lat/lon point of a pane is on the screen (the frame's page offset is added by the caller).
POINT_JS = """
([map, lat, lon]) => {
  const point = map.latLngToContainerPoint([lat, lon]);
  const pane = map.getContainer().getBoundingClientRect();
  return {x: pane.left + point.x, y: pane.top + point.y};
}
"""


def tile_centre(ds, row: int) -> tuple[float, float]:
    """(lat, lon) of the centre of the dataset's tile `row` (from its bounds in the source CRS)."""
    places = tile_images.map_places(ds)
    x0, y0, x1, y1 = places.bounds[row]
    (lon,), (lat,) = rasterio.warp.transform(places.crs_wkt, "EPSG:4326", [(x0 + x1) / 2], [(y0 + y1) / 2])
    return lat, lon


@pytest.fixture(scope="module")
def geo_run(browser_workspace):
    """A finished Siamese run on "geo" with test-split correlation matrices (see the module docstring)."""
    yield make_geo_run(browser_workspace)
    shutil.rmtree(browser_workspace / "models" / RUN_ID, ignore_errors=True)


def make_geo_run(home):
    """(run id, the geo dataset, the run's matrices) of a new throwaway run in the workspace `home`."""
    models = home / "models"
    folder = models / RUN_ID
    shutil.copytree(models / "siam", folder)
    for old in folder.glob("correlations*"):
        shutil.rmtree(old)
    ds = load_dataset(home / "data" / "geo")
    config = json.loads((folder / "config.json").read_text())
    config.update(dataset="geo", labels=ds.meta["labels"])
    config.pop("dataset_checksum", None)
    (folder / "config.json").write_text(json.dumps(config))
    status = json.loads((folder / "status.json").read_text())
    status["started"] = status["ended"] = time.time()  # the newest run: the page opens on it
    (folder / "status.json").write_text(json.dumps(status))
    annotations.write(folder, name=RUN_ID)

    names, colors = ds.label_names, ds.label_colors
    rows = ds.split_indices("test")
    fractions = np.asarray(ds.fractions, dtype=np.float64)[rows]
    presence = np.asarray(ds.presence)[rows].astype(np.uint8)
    gt = correlations.ground_truth(presence, fractions, names, colors)
    rng = np.random.default_rng(0)
    scores = np.clip(fractions + rng.normal(0.0, 0.05, fractions.shape), 0.0, None).astype(np.float32)
    probs = np.clip(0.1 + 0.8 * fractions + rng.normal(0.0, 0.05, fractions.shape), 0.0, 1.0).astype(np.float32)
    prior = label_stats.pearson_matrix(np.asarray(ds.presence)[ds.split_indices("train")].astype(float))
    arrays = {
        "label_names": np.array(names, dtype=str),
        "tile_indices": rows.astype(np.int64),
        "gt_phi": gt.phi,
        "gt_cooc": gt.cooc,
        "gt_fraction_corr": gt.fraction_corr,
        "gt_npmi": gt.npmi,
        "gt_cond": gt.cond,
        "label_prior": prior,
        "classifier_prob": label_stats.pearson_matrix(probs),
        "classifier_probabilities": probs,
        "siamese_self": label_stats.pearson_matrix(scores),
        "self_scores": scores,
    }
    agreement = {v: correlations.agreement(arrays[v], gt.phi, names) for v in ("siamese_self", "classifier_prob")}
    agreement["info"] = {"run": RUN_ID, "kind": "siamese", "classifier_run": "cls", "split": "test"}
    out = RunLayout(folder).correlations_for("test")
    out.mkdir(parents=True)
    np.savez(out / RunLayout.MATRICES, **arrays)
    (out / RunLayout.AGREEMENT).write_text(json.dumps(agreement, default=float))
    return RUN_ID, ds, arrays


@pytest.fixture(scope="module")
def map_page(app_server, chromium, geo_run):
    """The Correlations page on the geo run, its pair map drawn; script-run ends are recorded as they arrive."""
    context = chromium.new_context(viewport={"width": 1500, "height": 1000})
    yield open_map_page(context.new_page(), app_server)
    context.close()


def open_map_page(tab, url: str):
    """`tab` on the Correlations page of the geo run, its map drawn; `tab.script_runs`: how each script run ended."""
    tab.script_runs = []

    def record(payload):
        if isinstance(payload, bytes):
            msg = ForwardMsg_pb2.ForwardMsg.FromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                tab.script_runs.append(ForwardMsg_pb2.ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished))

    tab.on("websocket", lambda ws: ws.on("framereceived", record))
    tab.goto(f"{url}/correlations")
    tab.wait_for_selector('[data-testid="stAppViewContainer"]')
    settle(tab)
    picker = tab.get_by_label("Run", exact=True)
    picker.wait_for(timeout=90000)  # the sidebar can come late under load
    if RUN_ID not in picker.input_value():
        choose(tab, "Run", re.compile(RUN_ID))
        settle(tab)
    wait_for_map(tab)
    return tab


def choose(tab, label: str, option) -> None:
    """Pick `option` (a name or pattern) in the selectbox `label`; a click that lands during a rerun may not
    open the list, so it is tried again."""
    for _ in range(3):
        tab.get_by_label(label, exact=True).click()
        try:
            tab.get_by_role("option", name=option, exact=isinstance(option, str)).first.click(timeout=10000)
            return
        except PlaywrightTimeoutError:
            tab.keyboard.press("Escape")
    raise AssertionError(f"the selectbox {label!r} did not offer {option}")


def wait_for_map(tab, timeout: float = 60.0, new: bool = False):
    """The pair map's frame once both panes have drawn their tile images (`new`: a frame not marked olrOldMap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for element in tab.query_selector_all('iframe[title*="st_folium"]'):
            frame = element.content_frame()
            if frame is not None and frame.evaluate(
                "(fresh) => typeof map_div2 !== 'undefined' && !(fresh && window.olrOldMap) && Array.from("
                "document.querySelectorAll('img.olr-tiles')).filter((i) => i.complete && i.naturalWidth).length === 2",
                new,
            ):
                return frame
        time.sleep(0.3)
    raise AssertionError("the pair map did not draw both panes")


def shot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_the_first_map_is_the_informative_pair_and_not_dark(map_page, geo_run):
    _, _, arrays = geo_run
    i, j = pair_maps.informative_pair(arrays)
    names = [str(n) for n in arrays["label_names"]]
    assert map_page.get_by_label("Label i", exact=True).input_value() == names[i]
    assert map_page.get_by_label("Label j", exact=True).input_value() == names[j]
    frame = wait_for_map(map_page)
    for pane in ("map_div", "map_div2"):  # each pane's scale reaches its largest score: some tiles are bright
        assert frame.evaluate(f"() => ({BRIGHTEST_JS})({pane})") > 180, pane


def test_both_panes_tiles_follow_a_drag_of_one_pane(map_page):
    frame = wait_for_map(map_page)
    map_page.locator('iframe[title*="st_folium"]').scroll_into_view_if_needed()
    before = {pane: frame.evaluate(f"() => ({PANE_EXTENT_JS})({pane})") for pane in ("map_div", "map_div2")}
    box = frame.locator("#map_div").bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
    dx, dy = 90, 60
    map_page.mouse.move(x, y)
    map_page.mouse.down()
    map_page.mouse.move(x + dx, y + dy, steps=12)
    map_page.mouse.up()
    map_page.mouse.move(5, 5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = {pane: frame.evaluate(f"() => ({PANE_EXTENT_JS})({pane})") for pane in ("map_div", "map_div2")}
        settled = all(np.allclose(a["painted"], a["expected"], atol=3) for a in after.values())
        if settled:
            break
        time.sleep(0.3)
    shot(map_page, "correlations-map-after-drag")
    for pane in ("map_div", "map_div2"):
        assert after[pane]["images"] == 1
        # the view moved with the mouse: where the tiles should be went (dx, dy) along, or
        # a little further: Leaflet's drag inertia carries the view on after the release when the mouse's last
        # moves were quick, which a loaded machine makes them
        moved = np.subtract(after[pane]["expected"][:2], before[pane]["expected"][:2])
        assert (moved >= np.array([dx, dy]) - 3).all() and (moved <= np.array([dx, dy]) * 1.5).all(), moved
        # and the tile image is drawn there, in the dragged pane as in the other
        assert after[pane]["painted"] == pytest.approx(after[pane]["expected"], abs=3), pane


def test_a_pair_change_reruns_only_the_map(map_page, geo_run):
    _, _, arrays = geo_run
    names = [str(n) for n in arrays["label_names"]]
    map_page.evaluate("() => { window.olrMarker = 'still here'; }")
    wait_for_map(map_page).evaluate("() => { window.olrOldMap = true; }")
    current = map_page.get_by_label("Label j", exact=True).input_value()
    other = next(n for n in names if n not in (current, map_page.get_by_label("Label i", exact=True).input_value()))
    runs_before = len(map_page.script_runs)
    started = time.monotonic()
    choose(map_page, "Label j", other)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(map_page.script_runs) == runs_before:
        map_page.wait_for_timeout(100)  # (not time.sleep: Playwright delivers the frames while it is called)
    ran = time.monotonic() - started
    wait_for_map(map_page, new=True)
    map_page.get_by_text(f"with {other}").first.wait_for(timeout=30000)  # the caption names the new pair
    print(f"pair change: the server's run {ran:.1f} s, the new map drawn after {time.monotonic() - started:.1f} s")
    assert map_page.evaluate("() => window.olrMarker") == "still here"  # the page was not loaded again
    assert map_page.script_runs[runs_before:] == ["FINISHED_FRAGMENT_RUN_SUCCESSFULLY"]  # only the map's part ran


def test_clicking_a_tile_opens_it_below_the_map(map_page, geo_run):
    _, ds, arrays = geo_run
    row = int(arrays["tile_indices"][3])  # a test tile, as the map shows the test split
    frame = wait_for_map(map_page)
    map_page.locator('iframe[title*="st_folium"]').scroll_into_view_if_needed()
    frame_box = map_page.locator('iframe[title*="st_folium"]').bounding_box()
    point = frame.evaluate(f"(p) => ({POINT_JS})([map_div2, p[0], p[1]])", list(tile_centre(ds, row)))
    map_page.mouse.click(frame_box["x"] + point["x"], frame_box["y"] + point["y"])  # the right pane: either opens it
    name = summary.dataset_tile_names(ds, [row])[0]
    entry = map_page.get_by_test_id("stImage").filter(has_text=name)
    entry.wait_for(timeout=30000)
    present = summary.tile_labels(ds.fractions[[row]], ds.presence[[row]], ds.label_names, ds.label_colors)[0]
    opened = map_page.locator('[data-testid="stVerticalBlock"]').filter(has=entry).last.inner_text()
    assert present and all(label in opened for label, _, _ in present)  # the tile's label chips
    assert "ground truth" in opened  # and both values
    map_page.mouse.move(5, 5)
    map_page.locator('[data-testid="stHtml"]').filter(has_text=present[0][0]).last.scroll_into_view_if_needed()
    shot(map_page, "correlations-map-tile-clicked")
