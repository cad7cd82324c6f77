"""Folium maps of tile grids over the scene preview, rendered with streamlit-folium.

Tiles are drawn as one image, a pixel per tile warped to Web Mercator (`olr.analysis.tile_images`):
the map of half a million tiles is one PNG of about half a megabyte, every tile drawn. Tiles that lie
on no common grid (BigEarthNet patches in several UTM zones) are drawn as polygons instead. An image has no hover, so
a tile's values are shown by the page on a click: `show(..., clicks=True)` returns the clicked
(lon, lat) and `tile_at` finds the tile there. Images are cached per set of tiles (a dataset's path
and modification time) and colours.

The maps work offline: no basemap tiles unless asked for, and Leaflet (plus Leaflet.Sync
for the dual map) is served by the app itself from `static/vendor/` instead of public
CDNs. Colour scales and legends are plain HTML (branca's legend would pull d3 from a CDN).
Coordinates are EPSG:4326; bounds are in Leaflet order [[south, west], [north, east]] (as
meta["preview"]["bounds_lonlat"] stores them).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from dataclasses import dataclass
from pathlib import Path

import folium
import folium.plugins
import numpy as np
import streamlit as st
from branca.element import MacroElement, Template
from streamlit_folium import st_folium

from olr.analysis import predict, tile_images
from olr.analysis.exports import TilePlaces
from olr.analysis.tile_images import DIVERGING, VIRIDIS, TileImage
from olr.data import summary
from olr.runs.store import RunLayout
from ui import loaders

LEAFLET = "vendor/leaflet-1.9.3"
LEAFLET_SYNC = "vendor/leaflet.sync-0.2.4"
#: tiles on no common grid are drawn one polygon each; beyond this many a browser struggles
MAX_POLYGONS = 20000
#: the class of the tile image's <img> (drawn with crisp pixels)
TILE_IMAGE_CLASS = "olr-tiles"


def static_url(relative: str) -> str:
    """URL of a file under `static/` as served by Streamlit (`server.enableStaticServing`)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static/{relative}" if base else f"/app/static/{relative}"


def _use_local_assets(m: folium.Map) -> None:
    # Instance attributes shadow folium's CDN lists; streamlit-folium reads them per element.
    m.default_js = [("leaflet", static_url(f"{LEAFLET}/leaflet.js"))]
    m.default_css = [("leaflet_css", static_url(f"{LEAFLET}/leaflet.css"))]


def stops_for(value_range: tuple[float, float]) -> list[str]:
    """The ramp of a value range: diverging when it reaches below 0, else viridis."""
    return DIVERGING if value_range[0] < 0 else VIRIDIS


def value_rgba(values, value_range: tuple[float, float]) -> np.ndarray:
    """(n, 4) uint8 colours of `values` on the ramp of `value_range` (`stops_for`), at `tile_images.TILE_ALPHA`."""
    return tile_images.ramp_rgba(values, stops_for(value_range), *value_range, alpha=tile_images.TILE_ALPHA)


class Legend(MacroElement):
    """A colour-bar legend in a map corner: title, gradient, min/max labels."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "{{ this.position }}"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "olr-legend");
            div.style.cssText = "background: rgba(255,255,255,0.92); padding: 6px 8px; border-radius: 4px;"
                + "font: 12px/1.3 sans-serif; color: #222; box-shadow: 0 1px 4px rgba(0,0,0,0.3); min-width: 150px;";
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self, title: str, stops: list[str], vmin: float, vmax: float, note: str = "", position: str = "bottomright"
    ):
        super().__init__()
        self._name = "Legend"
        self.position = position
        gradient = ", ".join(stops)
        extra = f"<div style='margin-top:4px;color:#555'>{note}</div>" if note else ""
        self.html = (
            f"<div style='font-weight:600;margin-bottom:4px'>{html.escape(title)}</div>"
            f"<div style='height:10px;background:linear-gradient(to right, {gradient});border:1px solid #999'></div>"
            f"<div style='display:flex;justify-content:space-between'><span>{vmin:.3g}</span>"
            f"<span>{(vmin + vmax) / 2:.3g}</span><span>{vmax:.3g}</span></div>{extra}"
        )


class SwatchLegend(Legend):
    """A legend of categories in a map corner: title, then one colour swatch and name per line."""

    def __init__(self, title: str, items: list[tuple[str, str]], note: str = "", position: str = "bottomright"):
        MacroElement.__init__(self)
        self._name = "Legend"
        self.position = position
        lines = "".join(
            f"<div><span style='display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle;"
            f"background:{colour};border:1px solid #999'></span>{html.escape(name)}</div>"
            for name, colour in items
        )
        extra = f"<div style='margin-top:4px;color:#555'>{html.escape(note)}</div>" if note else ""
        self.html = f"<div style='font-weight:600;margin-bottom:4px'>{html.escape(title)}</div>{lines}{extra}"


@st.cache_data(max_entries=8, show_spinner=False)
def _preview_data_url(path: str, mtime: float) -> str:
    """The preview as an embedded WebP (keeps transparency; ~10x smaller than the PNG, sent with every map).
    Encoded with libwebp's fastest method: a map's first opening waits for it (1024 px: ~90 ms, not ~200 ms,
    for a file ~6 % larger)."""
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.save(buf, "WEBP", quality=75, method=0)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bounds_latlon(bounds) -> list[list[float]]:
    (south, west), (north, east) = bounds
    return [[float(south), float(west)], [float(north), float(east)]]


def base_map(bounds, *, basemap: bool = False, preview_png: Path | None = None, preview_bounds=None) -> folium.Map:
    """A Leaflet map fitted to `bounds` [[south, west], [north, east]], without basemap unless asked."""
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25, prefer_canvas=True)
    _use_local_assets(m)
    if basemap:
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap (needs internet)").add_to(m)
    add_preview(m, preview_png, preview_bounds)
    m.fit_bounds(_bounds_latlon(bounds))
    return m


def add_preview(m, preview_png: Path | None, preview_bounds) -> None:
    if preview_png is not None and preview_bounds is not None and Path(preview_png).is_file():
        folium.raster_layers.ImageOverlay(
            image=_preview_data_url(str(preview_png), Path(preview_png).stat().st_mtime),
            bounds=_bounds_latlon(preview_bounds),
            name="Scene preview",
            opacity=1.0,
            interactive=False,
        ).add_to(m)


# ------------------------------------------------------------------ where tiles lie, and their layer


@dataclass(frozen=True)
class MapTiles:
    """A set of tiles a map draws: `places` (`tile_images.map_places`: on a grid or not), `lonlat` (N, 4)
    lon_min, lat_min, lon_max, lat_max (the polygons of tiles on no grid) and `key`, what names them
    in the image cache (their file's path and modification time)."""

    key: tuple
    places: TilePlaces
    lonlat: np.ndarray

    @property
    def on_grid(self) -> bool:
        return self.places.raster is not None

    def bounds(self, rows) -> list[list[float]]:
        """[[south, west], [north, east]] around the tiles at `rows` (Leaflet order)."""
        lon0, lat0, lon1, lat1 = self.lonlat[np.asarray(rows, dtype=np.int64)].T
        return [[float(lat0.min()), float(lon0.min())], [float(lat1.max()), float(lon1.max())]]


@st.cache_resource(max_entries=8, show_spinner=False)
def _dataset_tiles(path: str, stamp: float, _ds) -> MapTiles:
    lonlat = _ds.tiles[list(summary.COORDINATE_COLUMNS)].to_numpy(dtype=np.float64)
    return MapTiles(("dataset", path, stamp), tile_images.map_places(_ds), lonlat)


def dataset_tiles(ds) -> MapTiles:
    """The tiles of a dataset with coordinates (`summary.has_coordinates`), held once per dataset version."""
    return _dataset_tiles(str(ds.path), loaders.stamp(ds.path / "meta.json"), ds)


@st.cache_resource(max_entries=8, show_spinner=False)
def _prediction_tiles(path: str, name: str, stamp: float, _scene) -> MapTiles:
    lonlat = _scene.tiles[list(summary.COORDINATE_COLUMNS)].to_numpy(dtype=np.float64)
    return MapTiles(("prediction", path, name, stamp), tile_images.prediction_places(_scene), lonlat)


def prediction_tiles(run, name: str, scene) -> MapTiles:
    """The tiles of a run's stored prediction `name` (`olr.analysis.predict.read_prediction`), held once per version."""
    record = RunLayout(run.path).prediction_for(name) / predict.RECORD
    return _prediction_tiles(str(run.path), name, loaders.stamp(record), scene)


@st.cache_data(max_entries=24, show_spinner=False)
def _layer(key: tuple, digest: str, _rows: np.ndarray, _rgba: np.ndarray, _tiles: MapTiles) -> TileImage | dict:
    if _tiles.on_grid:
        return tile_images.tile_image(_tiles.places, _rows, _rgba)
    return tile_images.tiles_geojson(_tiles.lonlat[_rows], _rgba)


def tile_layer(tiles: MapTiles, rows, rgba) -> TileImage | dict:
    """The tiles at `rows` (positions in `tiles`) in colours `rgba` ((n, 4) uint8): an image
    (`tile_images.tile_image`) when they lie on a grid, else GeoJSON polygons; cached per version of the
    tiles and the rows and colours themselves."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    # a digest of every byte (a few ms): Streamlit's own hash of an array this large samples it
    digest = hashlib.blake2b(rows, digest_size=16)
    digest.update(rgba)
    return _layer(tiles.key, digest.hexdigest(), rows, rgba, tiles)


def tile_at(tiles: MapTiles, point: tuple[float, float] | None, rows=None) -> int | None:
    """The tile under a clicked `point` (lon, lat) among `rows` (`tile_images.tile_at`): its position in `tiles`."""
    return tile_images.tile_at(tiles.places, point, rows)


class TileOverlay(MacroElement):
    """The tile image (`TileImage`) over the map, its pixels drawn crisp at any zoom (CSS image-rendering:
    pixelated on its class `TILE_IMAGE_CLASS`) and letting clicks through to the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        if (!document.getElementById("{{ this.css_class }}-style")) {
            var style = document.createElement("style");
            style.id = "{{ this.css_class }}-style";
            style.textContent = ".{{ this.css_class }} { image-rendering: crisp-edges; image-rendering: pixelated; }";
            document.head.appendChild(style);
        }
        var {{ this.get_name() }} = L.imageOverlay({{ this.url|tojson }}, {{ this.bounds|tojson }}, {
            className: "{{ this.css_class }}", interactive: false
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, image: TileImage):
        super().__init__()
        self._name = "TileOverlay"
        self.url = image.data_url
        self.bounds = image.bounds
        self.css_class = TILE_IMAGE_CLASS


class TileGrid(MacroElement):
    """Tile rectangles (GeoJSON of `tile_images.tiles_geojson`) drawn on a canvas, styled from each
    feature's `_fill`/`_opacity` in the browser; not interactive, so a click reaches the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ this.data|tojson }}, {
            renderer: L.canvas(),
            interactive: false,
            style: function (f) {
                return {fillColor: f.properties._fill, fillOpacity: f.properties._opacity,
                        color: "#333333", weight: 0.3};
            }
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, geojson: dict):
        super().__init__()
        self._name = "TileGrid"
        self.data = geojson


def add_tiles(m, layer: TileImage | dict) -> None:
    """Draw a `tile_layer`: the image, or the polygons of tiles on no grid."""
    (TileOverlay(layer) if isinstance(layer, TileImage) else TileGrid(layer)).add_to(m)


# ------------------------------------------------------------------ the maps


def fraction_map(
    layer: TileImage | dict,
    *,
    title: str,
    bounds,
    preview_png: Path | None,
    preview_bounds,
    basemap: bool = False,
) -> folium.Map:
    """Tiles coloured by a value in 0..1 (e.g. one label's area fraction, `tile_images.fraction_rgba`) over
    the preview: `layer` is their `tile_layer`. Tiles of value 0 are transparent, so the preview shows."""
    m = base_map(bounds, basemap=basemap, preview_png=preview_png, preview_bounds=preview_bounds)
    add_tiles(m, layer)
    Legend(title, VIRIDIS, 0.0, 1.0, note="transparent = 0").add_to(m)
    if basemap:
        folium.LayerControl(collapsed=True).add_to(m)
    return m


def tile_map(layer: TileImage | dict, *, bounds, legend: MacroElement, basemap: bool = False) -> folium.Map:
    """Tiles (`tile_layer`) fitted to `bounds`, without a scene preview (e.g. a prediction on an image that
    has none), with `legend`."""
    m = base_map(bounds, basemap=basemap)
    add_tiles(m, layer)
    legend.add_to(m)
    if basemap:
        folium.LayerControl(collapsed=True).add_to(m)
    return m


def dual_map(
    left: TileImage | dict,
    right: TileImage | dict,
    *,
    left_title: str,
    right_title: str,
    left_range: tuple[float, float],
    right_range: tuple[float, float],
    bounds,
    preview_png: Path | None,
    preview_bounds,
    basemap: bool = False,
) -> folium.plugins.DualMap:
    """Two synchronised panes over the same tiles: the `tile_layer`s `left` and `right`, coloured by
    `value_rgba` over their ranges, each with its legend. A click in either pane is reported to
    `show(..., clicks=True)`."""
    dm = SyncedPanes(tiles=None, control_scale=True, prefer_canvas=True)
    dm.default_js = [("Leaflet.Sync", static_url(f"{LEAFLET_SYNC}/L.Map.Sync.js"))]
    for pane, layer, title, (lo, hi) in (
        (dm.m1, left, left_title, left_range),
        (dm.m2, right, right_title, right_range),
    ):
        _use_local_assets(pane)
        if basemap:
            folium.TileLayer("OpenStreetMap").add_to(pane)
        add_preview(pane, preview_png, preview_bounds)
        add_tiles(pane, layer)
        Legend(title, stops_for((lo, hi)), lo, hi).add_to(pane)
    dm.fit_bounds(_bounds_latlon(bounds))
    return dm


class SyncedPanes(folium.plugins.DualMap):
    """folium's DualMap (two panes kept in step by Leaflet.Sync) with what the tile maps need besides.

    - Leaflet.Sync ends a drag by resetting the view with the panes' "viewprereset" handlers taken
      off (to spare tile layers a flicker). That event is what tells a canvas renderer to project its
      paths again before it draws, so the dragged pane kept drawing its polygons where they had been
      (even off the scene) until the next zoom. Each canvas is redrawn after every view reset instead
      (tile images follow the view by themselves).
    - streamlit-folium reports clicks on the first pane only, so a click on the second is passed on
      to the first: a tile opens from either pane.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this.m1.get_name() }}.sync({{ this.m2.get_name() }});
        {{ this.m2.get_name() }}.sync({{ this.m1.get_name() }});
        [{{ this.m1.get_name() }}, {{ this.m2.get_name() }}].forEach(function (pane) {
            pane.on("viewreset", function () {
                // next frame: after every handler of this reset has projected the paths again;
                // "update" is the renderer's own event for clearing the canvas and drawing all its paths
                L.Util.requestAnimFrame(function () {
                    pane.eachLayer(function (layer) { if (layer instanceof L.Canvas) { layer.fire("update"); } });
                });
            });
        });
        {{ this.m2.get_name() }}.on("click", function (e) {
            {{ this.m1.get_name() }}.fire("click", {latlng: e.latlng});
        });
        {% endmacro %}
        """
    )


def show(m, key: str, height: int = 560, clicks: bool = False) -> tuple[float, float] | None:
    """Render a map. Panning never reruns the page; with `clicks`, a click reruns it (or the fragment
    the map is in) and this returns the clicked (lon, lat), else None."""
    state = st_folium(
        m, key=key, height=height, use_container_width=True, returned_objects=["last_clicked"] if clicks else []
    )
    point = (state or {}).get("last_clicked") if clicks else None
    return (float(point["lng"]), float(point["lat"])) if point else None
