"""Tiles drawn for a web map as one image: each tile one pixel of its grid, warped to Web Mercator.

A browser stalls on a few tens of thousands of tile polygons; an image of half a million tiles is
a PNG of well under a megabyte. `tile_image` paints each tile's colour into the one-pixel-per-tile
grid of `olr.analysis.exports.tile_places` (pixel (r, c) centred on the tile at pixel offset
(r * step, c * step) of the source image, spanning one step, in the source CRS; overlapping tiles
get the step-sized cell around their centre), warps that grid to Web Mercator (EPSG:3857) with
nearest-neighbour resampling and encodes it as a PNG. Leaflet's ImageOverlay stretches an image
linearly in Web Mercator between its lat/lon bounds, so warping to EPSG:3857 first is what makes the
tiles lie right whatever the source CRS. Pixels without a tile, and tiles not drawn (another split,
a colour of alpha 0), are transparent.

`tile_at` is the inverse: the tile under a clicked (lon, lat), found on the same grid. Where the tiles
lie comes from `map_places` (a dataset's) or `prediction_places` (a stored prediction's).

Tiles on no common grid (`TilePlaces.raster is None`: BigEarthNet patches in several UTM zones, a
dataset imported without a transform) have no such image; a map draws them as polygons
(`tiles_geojson`, lon/lat): such datasets are expected to be small, and a browser draws only a few
tens of thousands of polygons well.

The colour ramps of the app's maps and legends (`VIRIDIS`, `DIVERGING`, `ramp_rgba`) live here too.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from olr.analysis.exports import TilePlaces, TileRaster, tile_grid_transform, tile_places
from olr.data.label_schemes import hex_rgba
from olr.data.summary import COORDINATE_COLUMNS
from olr.errors import OLRError

#: Viridis at 9 stops: perceptually even and readable for colour-blind viewers.
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]
#: Diverging blue-white-red for signed values (correlations, differences), -1..1.
DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]
#: the colour of a missing (NaN) value
NO_VALUE = "#9e9e9e"
#: opacity (0..255) of the tiles on a map, so the scene shows through a little
TILE_ALPHA = 191
#: a ramp is drawn in this many steps: no eye tells them from a continuous ramp, and with the NaN grey
#: and transparency an image of one ramp fits a PNG palette of 256 colours (several times smaller and faster)
RAMP_STEPS = 254
WEB_MERCATOR = "EPSG:3857"
#: the warped image's pixel budget; it has at least 2 x 2 pixels per tile, so that no tile of a grid at an
#: angle to Web Mercator's falls between pixels, and at most 16 x 16
MAX_IMAGE_PIXELS = 4_000_000
MIN_OVERSAMPLE, MAX_OVERSAMPLE = 2, 16
#: points per edge of the grid's outline when it is projected to Web Mercator
OUTLINE_POINTS = 64
#: Web Mercator's limit of latitude (degrees), beyond which it has no map
MAX_LATITUDE = 85.05


@dataclass(frozen=True)
class TileImage:
    """A PNG of tiles in Web Mercator and where it lies: bounds [[south, west], [north, east]] in degrees
    (Leaflet's order), width and height in pixels."""

    png: bytes
    bounds: list[list[float]]
    width: int
    height: int

    @property
    def data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


# ------------------------------------------------------------------ colours


def rgba_hex(rgba) -> list[str]:
    """Hex colours ("#rrggbb") of (n, 4) RGBA colours, opacity left out."""
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in np.asarray(rgba, dtype=np.uint8)[:, :3].tolist()]


def _ramp_table(stops: list[str]) -> np.ndarray:
    """(RAMP_STEPS, 3) uint8: the ramp through `stops`, linear between neighbouring stops."""
    rgb = hex_rgba(stops)[:, :3].astype(float)
    t = np.linspace(0.0, len(stops) - 1, RAMP_STEPS)
    lo = np.minimum(np.floor(t).astype(int), len(stops) - 2)
    frac = (t - lo)[:, None]
    return np.rint(rgb[lo] * (1 - frac) + rgb[lo + 1] * frac).astype(np.uint8)


def ramp_rgba(values, stops: list[str], vmin: float, vmax: float, alpha: int = 255) -> np.ndarray:
    """(n, 4) uint8 RGBA of `values` on the ramp through `stops` spanning vmin..vmax (clipped beyond),
    in RAMP_STEPS steps, of opacity `alpha`; NaN -> NO_VALUE."""
    v = np.asarray(values, dtype=float).ravel()
    t = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    step = np.rint(np.nan_to_num(t) * (RAMP_STEPS - 1)).astype(np.intp)
    out = np.empty((len(v), 4), dtype=np.uint8)
    out[:, :3] = _ramp_table(stops)[step]
    out[:, 3] = alpha
    out[np.isnan(v)] = hex_rgba([NO_VALUE], alpha)[0]
    return out


def fraction_rgba(values) -> np.ndarray:
    """(n, 4) uint8 colours of a fraction map: `values` 0..1 on viridis at TILE_ALPHA, transparent at 0
    (so the scene shows where the label is absent)."""
    rgba = ramp_rgba(values, VIRIDIS, 0.0, 1.0, TILE_ALPHA)
    rgba[np.asarray(values, dtype=float).ravel() <= 0, 3] = 0
    return rgba


# ------------------------------------------------------------------ the image


def tile_image(places: TilePlaces, rows, rgba) -> TileImage:
    """The tiles at `rows` (positions in `places`: dataset rows) in colours `rgba` ((n, 4) uint8, aligned
    with `rows`) as a PNG in Web Mercator; other pixels transparent. `places.raster` must not be None."""
    raster = places.raster
    if raster is None:
        raise OLRError(
            f"These tiles cannot be drawn as one image because {places.note}; draw them as polygons (tiles_geojson)."
        )
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8).reshape(-1, 4)
    index, palette = to_palette(rgba)
    grid = paint(raster, rows, rgba if palette is None else index[:, None])
    warped, bounds = warp_to_web_mercator(grid, raster.transform, places.crs_wkt, oversample(raster))
    return TileImage(encode_png(warped, palette), bounds, warped.shape[2], warped.shape[1])


def paint(raster: TileRaster, rows, values) -> np.ndarray:
    """(b, height, width) grid of `raster` holding each tile's (b,) `values` (n rows, aligned with `rows`)
    at its pixel, 0 elsewhere; a later tile on the same pixel wins."""
    rows = np.asarray(rows, dtype=np.int64)
    values = np.asarray(values)
    grid = np.zeros((values.shape[1], raster.height, raster.width), dtype=values.dtype)
    grid[:, raster.rows[rows], raster.cols[rows]] = values.T
    return grid


def to_palette(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(n,) uint8 index of each colour into a palette of at most 256 RGBA colours whose entry 0 is
    transparent (a colour of alpha 0 becomes 0), and that palette; (zeros, None) with more colours."""
    drawn = rgba[:, 3] > 0
    colours, inverse = np.unique(rgba.view(np.uint32).ravel()[drawn], return_inverse=True)
    if len(colours) > 255:
        return np.zeros(len(rgba), dtype=np.uint8), None
    index = np.zeros(len(rgba), dtype=np.uint8)
    index[drawn] = inverse + 1
    palette = np.vstack([np.zeros((1, 4), dtype=np.uint8), colours.view(np.uint8).reshape(-1, 4)])
    return index, palette


def oversample(raster: TileRaster) -> int:
    """Warped pixels per tile side: as many as MAX_IMAGE_PIXELS allows, within MIN_OVERSAMPLE..MAX_OVERSAMPLE."""
    k = int(np.sqrt(MAX_IMAGE_PIXELS / max(raster.height * raster.width, 1)))
    return min(max(k, MIN_OVERSAMPLE), MAX_OVERSAMPLE)


def web_mercator_grid(transform, width: int, height: int, crs, oversample: int = 1):
    """(transform, width, height) of a Web Mercator grid around a `width` x `height` grid of `transform` in
    `crs`, its pixels of the source pixels' mean area divided by oversample²; and its bounds
    [[south, west], [north, east]] in degrees."""
    from affine import Affine
    from rasterio.warp import transform as transform_points

    t = np.linspace(0.0, 1.0, OUTLINE_POINTS, endpoint=False)
    # the outline, clockwise from the upper-left corner, in pixel (col, row) coordinates
    cols = np.concatenate([t * width, np.full_like(t, width), (1 - t) * width, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * height, np.full_like(t, height), (1 - t) * height])
    xs, ys = transform * (cols, rows)
    lon, lat = (np.asarray(a) for a in transform_points(crs, "EPSG:4326", xs.tolist(), ys.tolist()))
    if not (np.isfinite(lon).all() and np.ptp(lon) < 180 and np.abs(lat).max() < MAX_LATITUDE):
        raise OLRError(
            "These tiles cannot be drawn as one image on a web map because they cross the antimeridian or lie "
            f"beyond {MAX_LATITUDE:g}° of latitude; open their GIS export (python -m olr export) instead."
        )
    mx, my = (np.asarray(a) for a in transform_points("EPSG:4326", WEB_MERCATOR, lon.tolist(), lat.tolist()))
    area = 0.5 * abs(np.dot(mx, np.roll(my, -1)) - np.dot(my, np.roll(mx, -1)))  # shoelace
    res = np.sqrt(area / max(width * height, 1)) / oversample
    west, east, south, north = mx.min(), mx.max(), my.min(), my.max()
    out_width, out_height = max(int(np.ceil((east - west) / res)), 1), max(int(np.ceil((north - south) / res)), 1)
    east, south = west + out_width * res, north - out_height * res  # whole pixels
    (west_lon, east_lon), (south_lat, north_lat) = transform_points(
        WEB_MERCATOR, "EPSG:4326", [west, east], [south, north]
    )
    bounds = [[float(south_lat), float(west_lon)], [float(north_lat), float(east_lon)]]
    return Affine.translation(west, north) * Affine.scale(res, -res), out_width, out_height, bounds


def warp_to_web_mercator(grid: np.ndarray, transform, crs, oversample: int = 1) -> tuple[np.ndarray, list]:
    """(b, h, w) `grid` of `transform` in `crs` warped to Web Mercator (`web_mercator_grid`) by nearest
    neighbour, 0 where it does not reach; and the result's bounds [[south, west], [north, east]] in degrees."""
    from rasterio.warp import Resampling, reproject

    dst_transform, width, height, bounds = web_mercator_grid(transform, grid.shape[2], grid.shape[1], crs, oversample)
    out = np.zeros((grid.shape[0], height, width), dtype=grid.dtype)
    reproject(
        grid,
        out,
        src_transform=transform,
        src_crs=crs,
        dst_transform=dst_transform,
        dst_crs=WEB_MERCATOR,
        resampling=Resampling.nearest,
    )
    return out, bounds


def encode_png(image: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of a (1, h, w) uint8 palette index image with its (k, 4) RGBA `palette`, or of a (4, h, w)
    RGBA image (`palette` None)."""
    from PIL import Image

    if palette is None:
        picture = Image.fromarray(np.ascontiguousarray(np.moveaxis(image, 0, -1)), "RGBA")
        extra = {}
    else:
        picture = Image.fromarray(np.ascontiguousarray(image[0]), "P")
        picture.putpalette(palette[:, :3].tobytes(), "RGB")
        extra = {"transparency": palette[:, 3].tobytes()}
    buffer = io.BytesIO()
    # zlib level 3: a third smaller than level 1 here, in a fraction of the time of the default 6
    picture.save(buffer, "PNG", compress_level=3, **extra)
    return buffer.getvalue()


# ------------------------------------------------------------------ which tile a click is on


def tile_at(places: TilePlaces, point: tuple[float, float] | None, rows=None) -> int | None:
    """The tile under `point` (lon, lat, e.g. a click on the map): its position in `places` (a dataset
    row), among `rows` when given; None for no point or a point on none of them.

    On a grid, the tile whose pixel holds the point (what `tile_image` draws there); else the tile
    whose bounds hold it, of overlapping ones the one whose centre is nearest."""
    from rasterio.warp import transform as transform_points

    if point is None:
        return None
    candidates = np.arange(len(places.bounds)) if rows is None else np.asarray(rows, dtype=np.int64)
    (x,), (y,) = transform_points("EPSG:4326", places.crs_wkt, [float(point[0])], [float(point[1])])
    if not (np.isfinite(x) and np.isfinite(y)):
        return None
    if places.raster is not None:
        col, row = ~places.raster.transform * (x, y)
        at = (places.raster.rows[candidates] == np.floor(row)) & (places.raster.cols[candidates] == np.floor(col))
        hits = candidates[at]
        return int(hits[-1]) if len(hits) else None  # the one `paint` drew last, were there several
    x0, y0, x1, y1 = places.bounds[candidates].T
    inside = (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)
    if not inside.any():
        return None
    hits = candidates[inside]
    distance = ((x0 + x1)[inside] / 2 - x) ** 2 + ((y0 + y1)[inside] / 2 - y) ** 2
    return int(hits[np.argmin(distance)])


# ------------------------------------------------------------------ where tiles lie


def map_places(dataset) -> TilePlaces:
    """Where a dataset's tiles lie for a map: `exports.tile_places`, or for a dataset that records them in
    lon/lat only (no CRS or source bounds) those boxes, on no grid (OLRError without coordinates)."""
    try:
        return tile_places(dataset)
    except OLRError:
        if not set(COORDINATE_COLUMNS).issubset(dataset.tiles.columns):
            raise
        bounds = dataset.tiles[list(COORDINATE_COLUMNS)].to_numpy(dtype=np.float64)
        if not np.isfinite(bounds).all():
            raise
        return TilePlaces(_lonlat_wkt(), bounds, None, "the dataset records its tiles in lon/lat only")


def prediction_places(scene) -> TilePlaces:
    """Where a stored prediction's tiles lie (`olr.analysis.predict.PredictedScene`, one row per predicted
    tile): their bounds in the image CRS and their pixels of the prediction's GeoTIFF grid."""
    from affine import Affine

    record, table = scene.record, scene.tiles
    tile, stride = int(record["tile"]), int(record["stride"])
    transform = tile_grid_transform(Affine(*record["image_transform"][:6]), tile, tile, stride)
    grid = record["tile_grid"]
    raster = TileRaster(
        transform,
        int(grid["rows"]),
        int(grid["cols"]),
        table["tile_row"].to_numpy(dtype=np.int64),
        table["tile_col"].to_numpy(dtype=np.int64),
    )
    bounds = table[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=np.float64)
    return TilePlaces(record["crs"]["wkt"], bounds, raster)


def _lonlat_wkt() -> str:
    from rasterio.crs import CRS

    return CRS.from_epsg(4326).to_wkt()


# ------------------------------------------------------------------ tiles on no grid


def tiles_geojson(lonlat, rgba, properties: dict[str, list] | None = None) -> dict:
    """A GeoJSON FeatureCollection of tile rectangles: `lonlat` (n, 4) lon_min, lat_min, lon_max, lat_max
    (rounded to 6 decimals, ~0.1 m), each styled by `_fill` ("#rrggbb") and `_opacity` (0..1) from its
    (4,) `rgba`, with `properties` {name: (n,) values} besides."""
    lon0, lat0, lon1, lat1 = np.round(np.asarray(lonlat, dtype=float), 6).T.tolist()
    fills = rgba_hex(rgba)
    opacities = np.round(np.asarray(rgba)[:, 3] / 255.0, 3).tolist()
    properties = properties or {}
    features = []
    for k in range(len(fills)):
        ring = [[lon0[k], lat0[k]], [lon1[k], lat0[k]], [lon1[k], lat1[k]], [lon0[k], lat1[k]], [lon0[k], lat0[k]]]
        props = {name: values[k] for name, values in properties.items()}
        props["_fill"], props["_opacity"] = fills[k], opacities[k]
        features.append(
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}
        )
    return {"type": "FeatureCollection", "features": features}
