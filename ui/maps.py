"""Folium maps of tile grids over the scene preview, rendered with streamlit-folium.

The maps work offline: no basemap tiles unless asked for, and Leaflet (plus Leaflet.Sync
for the dual map) is served by the app itself from `static/vendor/` instead of public
CDNs. Colour scales and legends are plain HTML (branca's legend would pull d3 from a CDN).
Coordinates are EPSG:4326; bounds are in Leaflet order [[south, west], [north, east]] (as
meta["preview"]["bounds_lonlat"] stores them) and tile rectangles come from the tile table's
lon_min/lat_min/lon_max/lat_max.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import folium
import folium.plugins
import numpy as np
import pandas as pd
import streamlit as st
from branca.element import MacroElement, Template
from streamlit_folium import st_folium

from olr.data import summary

LEAFLET = "vendor/leaflet-1.9.3"
LEAFLET_SYNC = "vendor/leaflet.sync-0.2.4"
MAX_TILES_DRAWN = 20000  # beyond this a browser struggles with one polygon per tile

# Viridis at 9 stops: perceptually even and readable for colour-blind viewers.
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]
# Diverging blue-white-red for signed values (correlations, differences), -1..1.
DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]


def static_url(relative: str) -> str:
    """URL of a file under `static/` as served by Streamlit (`server.enableStaticServing`)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static/{relative}" if base else f"/app/static/{relative}"


def _use_local_assets(m: folium.Map) -> None:
    # Instance attributes shadow folium's CDN lists; streamlit-folium reads them per element.
    m.default_js = [("leaflet", static_url(f"{LEAFLET}/leaflet.js"))]
    m.default_css = [("leaflet_css", static_url(f"{LEAFLET}/leaflet.css"))]


def ramp(values: np.ndarray, stops: list[str], vmin: float, vmax: float) -> list[str]:
    """Hex colours for `values` on the colour ramp `stops` spanning vmin..vmax (NaN -> grey)."""
    rgb = np.array([[int(s[i : i + 2], 16) for i in (1, 3, 5)] for s in stops], dtype=float)
    v = np.asarray(values, dtype=float)
    t = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0) * (len(stops) - 1)
    lo = np.floor(np.nan_to_num(t)).astype(int).clip(0, len(stops) - 2)
    frac = (np.nan_to_num(t) - lo)[:, None]
    out = np.rint(rgb[lo] * (1 - frac) + rgb[lo + 1] * frac).astype(int)
    colours = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in out]
    return [("#9e9e9e" if np.isnan(x) else c) for x, c in zip(v, colours)]


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
    """The preview as an embedded WebP (keeps transparency; ~10x smaller than the PNG, sent with every map)."""
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.save(buf, "WEBP", quality=75)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bounds_latlon(bounds) -> list[list[float]]:
    (south, west), (north, east) = bounds
    return [[float(south), float(west)], [float(north), float(east)]]


def tiles_bounds(tiles: pd.DataFrame) -> list[list[float]]:
    """[[south, west], [north, east]] around all tiles (Leaflet order)."""
    return [
        [float(tiles["lat_min"].min()), float(tiles["lon_min"].min())],
        [float(tiles["lat_max"].max()), float(tiles["lon_max"].max())],
    ]


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


def tiles_geojson(tiles: pd.DataFrame, properties: dict[str, list], colours: list[str], opacities: list[float]) -> dict:
    """A GeoJSON FeatureCollection of tile rectangles (lon/lat, 6 decimals ~ 0.1 m) with style and properties."""
    lon0, lat0, lon1, lat1 = (
        np.round(tiles[c].to_numpy(float), 6).tolist() for c in ("lon_min", "lat_min", "lon_max", "lat_max")
    )
    features = []
    for k in range(len(tiles)):
        ring = [[lon0[k], lat0[k]], [lon1[k], lat0[k]], [lon1[k], lat1[k]], [lon0[k], lat1[k]], [lon0[k], lat0[k]]]
        props = {name: values[k] for name, values in properties.items()}
        props["_fill"] = colours[k]
        props["_opacity"] = opacities[k]
        features.append(
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}
        )
    return {"type": "FeatureCollection", "features": features}


class TileGrid(MacroElement):
    """Tile rectangles drawn on a canvas, styled from each feature's `_fill`/`_opacity` in the browser.

    folium's GeoJson computes a style per feature in Python and embeds mappings; for thousands of
    tiles this element is several times smaller and faster. Tooltip on hover, popup on click.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ this.data|tojson }}, {
            renderer: L.canvas(),
            style: function (f) {
                return {fillColor: f.properties._fill, fillOpacity: f.properties._opacity,
                        color: "#333333", weight: 0.3};
            },
            onEachFeature: function (f, layer) {
                function rows(fields) {  // a field without a title is the heading (the tile's name)
                    return fields.map(function (p) {
                        var value = f.properties[p[0]];
                        return p[1] ? "<b>" + p[1] + "</b>: " + value : "<b>" + value + "</b>";
                    }).join("<br>");
                }
                layer.bindTooltip(rows({{ this.tooltip|tojson }}), {sticky: true});
                layer.bindPopup(rows({{ this.popup|tojson }}), {maxWidth: 360});
                layer.on({
                    mouseover: function (e) { e.target.setStyle({weight: 2, color: "#000000"}); },
                    mouseout: function (e) { {{ this.get_name() }}.resetStyle(e.target); },
                    // the popup keeps the click from the map, which is what streamlit-folium reports
                    click: function (e) { {{ this._parent.get_name() }}.fire("click", {latlng: e.latlng}); }
                });
            }
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, geojson: dict, tooltip_fields: list[tuple[str, str]], popup_fields: list[tuple[str, str]]):
        super().__init__()
        self._name = "TileGrid"
        self.data = geojson
        self.tooltip = [[f, html.escape(a)] for f, a in tooltip_fields]
        self.popup = [[f, html.escape(a)] for f, a in popup_fields]


def add_tile_layer(
    m, geojson: dict, *, tooltip_fields: list[tuple[str, str]], popup_fields: list[tuple[str, str]]
) -> None:
    """Draw tile rectangles styled by their `_fill`/`_opacity` properties, with tooltip and click popup."""
    TileGrid(geojson, tooltip_fields, popup_fields).add_to(m)


def labels_text(fractions: np.ndarray, names: list[str], min_fraction: float, limit: int = 6) -> list[str]:
    """`olr.data.summary.tile_label_text`, HTML-escaped for the map's tooltips and popups."""
    return [html.escape(t) for t in summary.tile_label_text(fractions, names, min_fraction, limit)]


def fraction_map(
    tiles: pd.DataFrame,
    values: np.ndarray,
    label_text: list[str],
    *,
    title: str,
    bounds,
    preview_png: Path | None,
    preview_bounds,
    basemap: bool = False,
    tile_names: list[str] | None = None,
) -> folium.Map:
    """Tile grid coloured by `values` in 0..1 (e.g. one label's area fraction) over the preview.

    Tiles with value 0 are drawn as outlines only, so the preview shows through. `tile_names`:
    `olr.data.summary.dataset_tile_names` of the tiles (default: their ids only).
    """
    values = np.asarray(values, dtype=float)
    m = base_map(bounds, basemap=basemap, preview_png=preview_png, preview_bounds=preview_bounds)
    colours = ramp(values, VIRIDIS, 0.0, 1.0)
    opacities = [0.0 if v <= 0 else 0.7 for v in values]
    geojson = tiles_geojson(
        tiles,
        {
            "tile": _names(tiles, tile_names),
            "split": [str(s) for s in tiles["split"]],
            "value": [f"{v * 100:.1f}%" for v in values],
            "labels": label_text,
        },
        colours,
        opacities,
    )
    add_tile_layer(
        m,
        geojson,
        tooltip_fields=[("tile", ""), ("value", title)],
        popup_fields=[("tile", ""), ("split", "Split"), ("value", title), ("labels", "Labels")],
    )
    Legend(title, VIRIDIS, 0.0, 1.0, note="outline only = 0").add_to(m)
    if basemap:
        folium.LayerControl(collapsed=True).add_to(m)
    return m


def tile_map(
    tiles: pd.DataFrame,
    colours: list[str],
    opacities: list[float],
    properties: dict[str, list],
    *,
    tooltip_fields: list[tuple[str, str]],
    popup_fields: list[tuple[str, str]],
    legend: MacroElement,
    basemap: bool = False,
) -> folium.Map:
    """Tiles (lon/lat bounds) drawn in the given colours, without a scene preview (e.g. a prediction on an
    image that has none); `properties` (already escaped) feed the tooltip and popup fields."""
    m = base_map(tiles_bounds(tiles), basemap=basemap)
    add_tile_layer(
        m,
        tiles_geojson(tiles, properties, colours, opacities),
        tooltip_fields=tooltip_fields,
        popup_fields=popup_fields,
    )
    legend.add_to(m)
    if basemap:
        folium.LayerControl(collapsed=True).add_to(m)
    return m


def dual_map(
    tiles: pd.DataFrame,
    left: np.ndarray,
    right: np.ndarray,
    label_text: list[str],
    *,
    left_title: str,
    right_title: str,
    left_range: tuple[float, float],
    right_range: tuple[float, float],
    bounds,
    preview_png: Path | None,
    preview_bounds,
    basemap: bool = False,
    tile_names: list[str] | None = None,
) -> folium.plugins.DualMap:
    """Two synchronised panes over the same tiles: `left` and `right` values, each with its legend.

    A click on a tile in either pane is reported to `show(..., clicks=True)`; `tile_names` as in `fraction_map`.
    """
    dm = SyncedPanes(tiles=None, control_scale=True, prefer_canvas=True)
    dm.default_js = [("Leaflet.Sync", static_url(f"{LEAFLET_SYNC}/L.Map.Sync.js"))]
    for pane in (dm.m1, dm.m2):
        _use_local_assets(pane)
        if basemap:
            folium.TileLayer("OpenStreetMap").add_to(pane)
        add_preview(pane, preview_png, preview_bounds)
    props = {
        "tile": _names(tiles, tile_names),
        "labels": label_text,
        "left": [f"{v:.3f}" for v in left],
        "right": [f"{v:.3f}" for v in right],
    }
    for pane, values, title, (lo, hi) in (
        (dm.m1, left, left_title, left_range),
        (dm.m2, right, right_title, right_range),
    ):
        values = np.asarray(values, dtype=float)
        stops = DIVERGING if lo < 0 else VIRIDIS
        colours = ramp(values, stops, lo, hi)
        geojson = tiles_geojson(tiles, props, colours, [0.75] * len(values))
        add_tile_layer(
            pane,
            geojson,
            tooltip_fields=[("tile", ""), ("left", left_title), ("right", right_title)],
            popup_fields=[("tile", ""), ("left", left_title), ("right", right_title), ("labels", "Labels")],
        )
        Legend(title, stops, lo, hi).add_to(pane)
    dm.fit_bounds(_bounds_latlon(bounds))
    return dm


def _names(tiles: pd.DataFrame, tile_names: list[str] | None) -> list[str]:
    return [html.escape(n) for n in (tile_names if tile_names is not None else summary.tile_names(tiles))]


class SyncedPanes(folium.plugins.DualMap):
    """folium's DualMap (two panes kept in step by Leaflet.Sync) with what the tile maps need besides.

    - Leaflet.Sync ends a drag by resetting the view with the panes' "viewprereset" handlers taken
      off (to spare tile layers a flicker). That event is what tells a canvas renderer to project its
      paths again before it draws, so the dragged pane kept drawing its tiles where they had been
      (even off the scene) until the next zoom. Each canvas is redrawn after every view reset instead.
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
