"""Tiles drawn as one image (olr.analysis.tile_images) on real datasets and real rasterio warps: each tile's
centre, placed on the map as Leaflet places the image (linearly in Web Mercator between its lat/lon bounds),
falls on a pixel of that tile's colour, in UTM, in ETRS89-LAEA (EPSG:3035, at an angle to Web Mercator's grid
over Cyprus) and in the Cyprus local Transverse Mercator (EPSG:6312); a click there finds the tile again;
what is not drawn is transparent; tiles on no common grid are drawn as polygons."""

import io
import json
import shutil

import numpy as np
import pytest
import rasterio.warp
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from olr.analysis import tile_images
from olr.analysis.exports import TilePlaces, TileRaster, tile_grid_transform
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from tests.fixtures.data import write_raster


@pytest.fixture(scope="module")
def laea_dataset(tmp_path_factory, tiny_rasters):
    """A real dataset prepared from an image in EPSG:3035 (96 x 96 px at 10 m, 16 px tiles) over the middle
    of the tiny scene's CORINE raster (also EPSG:3035)."""
    from olr.data.prepare import prepare_dataset

    folder = tmp_path_factory.mktemp("laea")
    h, w = tiny_rasters.codes.shape
    t = tiny_rasters.label_transform
    centre_x, centre_y = t * (w / 2, h / 2)
    pixels = np.random.default_rng(0).integers(300, 3000, (4, 96, 96)).astype(np.uint16)
    image = write_raster(folder / "image.tif", pixels, "EPSG:3035", from_origin(centre_x - 480, centre_y + 480, 10, 10))
    return prepare_dataset(image, tiny_rasters.labels, folder / "laea", tile=16, split_block=2, seed=0)


def distinct_colours(n: int) -> np.ndarray:
    """(n, 4) uint8 opaque colours, all different (n < 2**24)."""
    k = np.arange(1, n + 1)
    return np.stack([k % 256, (k // 256) % 256, (k * 37) % 251, np.full(n, 255)], axis=1).astype(np.uint8)


def decoded(image: tile_images.TileImage) -> np.ndarray:
    """(h, w, 4) uint8 RGBA of the PNG, as a browser decodes it (palette and transparency applied)."""
    with Image.open(io.BytesIO(image.png)) as picture:
        assert picture.size == (image.width, image.height)
        return np.asarray(picture.convert("RGBA"))


def on_image(image: tile_images.TileImage, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) pixels of the image under lon/lat points, placed as Leaflet's ImageOverlay places it: its
    bounds' corners projected to Web Mercator and the image stretched linearly between them."""
    (south, west), (north, east) = image.bounds
    (x0, x1), (y0, y1) = rasterio.warp.transform("EPSG:4326", "EPSG:3857", [west, east], [south, north])
    x, y = rasterio.warp.transform("EPSG:4326", "EPSG:3857", list(lon), list(lat))
    col = np.floor((np.asarray(x) - x0) / (x1 - x0) * image.width).astype(int)
    row = np.floor((y1 - np.asarray(y)) / (y1 - y0) * image.height).astype(int)
    return row, col


def tile_centres(places: TilePlaces, rows) -> tuple[list[float], list[float]]:
    """lon/lat of the centres of the tiles at `rows`, from their bounds in the source CRS (not from the grid)."""
    x0, y0, x1, y1 = places.bounds[np.asarray(rows)].T
    lon, lat = rasterio.warp.transform(places.crs_wkt, "EPSG:4326", ((x0 + x1) / 2).tolist(), ((y0 + y1) / 2).tolist())
    return lon, lat


def synthetic_places(epsg: int, origin: tuple[float, float], rows: int, cols: int, step: float) -> TilePlaces:
    """A full grid of rows x cols tiles of `step` metres in EPSG `epsg`, upper-left corner at `origin`."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    x0, y1 = origin[0] + c * step, origin[1] - r * step
    bounds = np.stack([x0, y1 - step, x0 + step, y1], axis=1).astype(float)
    transform = from_origin(*origin, step, step)
    return TilePlaces(CRS.from_epsg(epsg).to_wkt(), bounds, TileRaster(transform, rows, cols, r, c))


def assert_centres_have_their_colours(places: TilePlaces, rows, rgba, image: tile_images.TileImage) -> None:
    pixels = decoded(image)
    lon, lat = tile_centres(places, rows)
    r, c = on_image(image, lon, lat)
    assert ((r >= 0) & (r < image.height) & (c >= 0) & (c < image.width)).all()
    np.testing.assert_array_equal(pixels[r, c], rgba)


@pytest.mark.parametrize("which", ["utm", "laea"])
def test_each_tiles_centre_falls_on_a_pixel_of_its_colour_after_the_warp(which, tiny_dataset, laea_dataset):
    ds = load_dataset({"utm": tiny_dataset, "laea": laea_dataset}[which])
    places = tile_images.map_places(ds)
    assert places.raster is not None and CRS.from_wkt(places.crs_wkt).to_epsg() == {"utm": 32636, "laea": 3035}[which]
    rows = np.arange(ds.n_tiles)
    rgba = distinct_colours(len(rows))  # fewer than 256 colours: a palette image
    image = tile_images.tile_image(places, rows, rgba)
    with Image.open(io.BytesIO(image.png)) as picture:
        assert picture.mode == "P"
    assert_centres_have_their_colours(places, rows, rgba, image)
    # the image covers the tiles and little more: its bounds are the tiles' lon/lat bounds, within a pixel
    (south, west), (north, east) = image.bounds
    lonlat = ds.tiles[["lon_min", "lat_min", "lon_max", "lat_max"]].to_numpy()
    pixel = max((east - west) / image.width, (north - south) / image.height)
    assert west == pytest.approx(lonlat[:, 0].min(), abs=2 * pixel) and east == pytest.approx(
        lonlat[:, 2].max(), abs=2 * pixel
    )
    assert south == pytest.approx(lonlat[:, 1].min(), abs=2 * pixel) and north == pytest.approx(
        lonlat[:, 3].max(), abs=2 * pixel
    )


def test_more_than_a_palettes_colours_make_an_rgba_image_that_lies_right_in_epsg_6312():
    # 30 x 40 tiles of 160 m in CGRS93 / Cyprus Local Transverse Mercator, each its own colour
    places = synthetic_places(6312, (200_000.0, 3_900_000.0), 30, 40, 160.0)
    rows = np.arange(30 * 40)
    rgba = distinct_colours(len(rows))
    image = tile_images.tile_image(places, rows, rgba)
    with Image.open(io.BytesIO(image.png)) as picture:
        assert picture.mode == "RGBA"
    assert_centres_have_their_colours(places, rows, rgba, image)


def test_a_click_on_a_tiles_centre_finds_that_tile_and_off_the_tiles_none(laea_dataset):
    ds = load_dataset(laea_dataset)
    places = tile_images.map_places(ds)
    rows = np.arange(ds.n_tiles)
    lon, lat = tile_centres(places, rows)
    assert [tile_images.tile_at(places, p) for p in zip(lon, lat, strict=True)] == rows.tolist()
    # a corner of a tile, a little inside it, is still that tile
    x0, _, _, y1 = places.bounds[5]
    (corner_lon,), (corner_lat,) = rasterio.warp.transform(places.crs_wkt, "EPSG:4326", [x0 + 0.5], [y1 - 0.5])
    assert tile_images.tile_at(places, (corner_lon, corner_lat)) == 5
    # among some tiles only: a tile left out is not found
    train = ds.split_indices("train")
    other = int(np.setdiff1d(rows, train)[0])
    assert tile_images.tile_at(places, (lon[other], lat[other]), train) is None
    assert tile_images.tile_at(places, (lon[train[0]], lat[train[0]]), train) == train[0]
    # off the tiles, far away, and no click
    assert tile_images.tile_at(places, (min(lon) - 0.05, min(lat) - 0.05)) is None
    assert tile_images.tile_at(places, (-120.0, 10.0)) is None
    assert tile_images.tile_at(places, None) is None


def test_tiles_not_drawn_colours_of_no_opacity_and_the_grid_around_are_transparent(laea_dataset):
    ds = load_dataset(laea_dataset)
    places = tile_images.map_places(ds)
    train = ds.split_indices("train")
    others = np.setdiff1d(np.arange(ds.n_tiles), train)
    assert len(train) and len(others)
    values = np.linspace(0.0, 1.0, len(train))  # the first tile's value is 0: transparent
    rgba = tile_images.fraction_rgba(values)
    assert rgba[0, 3] == 0 and (rgba[1:, 3] == tile_images.TILE_ALPHA).all()
    image = tile_images.tile_image(places, train, rgba)
    pixels = decoded(image)
    r, c = on_image(image, *tile_centres(places, others))
    assert (pixels[r, c, 3] == 0).all()  # another split's tiles
    r, c = on_image(image, *tile_centres(places, train))
    assert pixels[r[0], c[0], 3] == 0 and (pixels[r[1:], c[1:], 3] == tile_images.TILE_ALPHA).all()
    # the grid lies at an angle to Web Mercator's: the image's corners are outside it
    assert (pixels[[0, 0, -1, -1], [0, -1, 0, -1], 3] == 0).all()


def test_ramps_span_their_range_in_at_most_a_palettes_colours():
    values = np.append(np.linspace(-0.5, 1.5, 10_000), np.nan)
    rgba = tile_images.ramp_rgba(values, tile_images.VIRIDIS, 0.0, 1.0)
    assert tile_images.rgba_hex(rgba[[0, -2, -1]]) == [
        tile_images.VIRIDIS[0],  # clipped below
        tile_images.VIRIDIS[-1],  # clipped above
        tile_images.NO_VALUE,
    ]
    assert len(np.unique(rgba.view(np.uint32))) <= tile_images.RAMP_STEPS + 1
    assert (rgba[:, 3] == 255).all()


def test_tiles_on_no_common_grid_are_drawn_as_polygons_and_found_by_their_bounds(tiny_dataset, tmp_path):
    """A dataset without an image transform (as BigEarthNet patches in several UTM zones have none) has no
    image: its tiles become GeoJSON rectangles in lon/lat, and a click is looked up in their bounds."""
    folder = tmp_path / "gridless"
    shutil.copytree(tiny_dataset, folder)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["transform"]
    (folder / "meta.json").write_text(json.dumps(meta))
    ds = load_dataset(folder)
    places = tile_images.map_places(ds)
    assert places.raster is None and "no image grid" in places.note
    rows = np.array([0, 3, 7])
    rgba = tile_images.fraction_rgba(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(OLRError, match="cannot be drawn as one image because the dataset records no image grid"):
        tile_images.tile_image(places, rows, rgba)
    lonlat = ds.tiles[["lon_min", "lat_min", "lon_max", "lat_max"]].to_numpy()
    geojson = tile_images.tiles_geojson(lonlat[rows], rgba, {"tile": ["a", "b", "c"]})
    assert [f["properties"]["tile"] for f in geojson["features"]] == ["a", "b", "c"]
    assert [f["properties"]["_opacity"] for f in geojson["features"]] == [0.0, 0.749, 0.749]
    assert geojson["features"][2]["properties"]["_fill"] == tile_images.VIRIDIS[-1]
    lon0, lat0, lon1, lat1 = np.round(lonlat[3], 6)
    assert geojson["features"][1]["geometry"]["coordinates"] == [
        [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    ]
    lon, lat = tile_centres(places, rows)
    assert [tile_images.tile_at(places, p) for p in zip(lon, lat, strict=True)] == rows.tolist()


def test_on_no_grid_a_click_where_tiles_overlap_finds_the_nearest_centre():
    # lon/lat boxes (as a dataset recording only lon/lat has them): two rows of tiles 0.01° apart, the second
    # row overlapping the first by half a tile (a stride below the tile size)
    bounds = np.array([[33.00, 35.000, 33.01, 35.010], [33.01, 35.000, 33.02, 35.010], [33.00, 35.005, 33.01, 35.015]])
    places = TilePlaces(CRS.from_epsg(4326).to_wkt(), bounds, None, "lon/lat only")
    assert tile_images.tile_at(places, (33.015, 35.002)) == 1
    assert tile_images.tile_at(places, (33.004, 35.009)) == 2  # in tiles 0 and 2: the nearer centre
    assert tile_images.tile_at(places, (33.004, 35.006)) == 0
    assert tile_images.tile_at(places, (33.004, 35.006), rows=[1, 2]) == 2
    assert tile_images.tile_at(places, (33.05, 35.0)) is None


def test_overlapping_tiles_on_a_grid_each_get_the_cell_around_their_centre():
    # 32 px tiles every 16 px (stride half the tile): the grid's pixel is the step-sized cell at the tile's
    # centre, so neighbouring tiles' pixels touch without overlapping and a click finds the nearest centre
    image_transform = from_origin(500_000.0, 3_880_000.0, 10.0, 10.0)
    transform = tile_grid_transform(image_transform, 32, 32, 16)
    r, c = np.divmod(np.arange(12), 4)
    x0 = 500_000.0 + c * 160.0
    y1 = 3_880_000.0 - r * 160.0
    bounds = np.stack([x0, y1 - 320.0, x0 + 320.0, y1], axis=1)
    places = TilePlaces(CRS.from_epsg(32636).to_wkt(), bounds, TileRaster(transform, 3, 4, r, c))
    rgba = distinct_colours(12)
    image = tile_images.tile_image(places, np.arange(12), rgba)
    assert_centres_have_their_colours(places, np.arange(12), rgba, image)
    lon, lat = tile_centres(places, np.arange(12))
    assert [tile_images.tile_at(places, p) for p in zip(lon, lat, strict=True)] == list(range(12))


def test_a_grid_across_the_antimeridian_is_refused_in_one_sentence():
    # UTM zone 1 (central meridian 177° W) at 65° N, 600 km wide: its western part lies beyond 180° W
    places = synthetic_places(32601, (100_000.0, 7_250_000.0), 10, 30, 20_000.0)
    with pytest.raises(OLRError, match="cannot be drawn as one image on a web map because they cross the antimeridian"):
        tile_images.tile_image(places, np.arange(300), distinct_colours(300))
