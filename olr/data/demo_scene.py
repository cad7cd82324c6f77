"""The synthetic demo scene: a Cyprus-like landscape, its CORINE map and a 4-band image.

`generate_scene` writes, deterministically from a seed:

- `label_schemes.tif`   CORINE grid-code raster (uint8, 1..44, 48 = NODATA, colour table), EPSG:3035,
              100 m cells, like the real CLC raster;
- `image.tif` (4, size_px, size_px) uint16 surface-reflectance-like image (red, green, blue,
              nir; 0..10000), EPSG:32636 (UTM 36N), 10 m pixels, tiled + deflate;
- `scene.json` seed, size, grids, classes present with pixel shares, `PLANTED_STRUCTURE`.

The land cover is drawn by rules on smooth random fields (elevation, moisture, patch noise)
plus planted features (towns, villages, roads, airports, reservoirs, lagoons); the image is
rendered from it by linear mixing of material spectra with class-specific 10 m textures,
hillshade, haze, blur and sensor noise. `ensure_demo_dataset` turns the scene into the
prepared dataset `data/demo` (CLI: `python -m olr demo-data`). See docs/DEMO_SCENE.md.

Coordinates inside the generator are *scene metres*: x east and y south of the image's
upper-left corner, so the image covers [0, L) x [0, L) with L = 10 * size_px.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from olr import atomic, workspace
from olr.data import label_schemes
from olr.errors import OLRError

Progress = Callable[[int, int, str], None]

DEMO_DATASET = "demo"
DEFAULT_SEED = 7
DEFAULT_SIZE_PX = 3584  # 56 x 56 tiles of 64 px = 3136 tiles, 35.84 km square
MIN_SIZE_PX = 256
MAX_SIZE_PX = 8192
PIXEL_M = 10.0
CELL_M = 100.0
IMAGE_CRS = "EPSG:32636"
LABEL_CRS = "EPSG:3035"
CENTER_LONLAT = (33.3, 35.0)  # between Nicosia and Larnaca, like the thesis's area
BAND_NAMES = ("red", "green", "blue", "nir")
NODATA_GRID = 48
#: Presence threshold of the demo dataset; see docs/DEMO_SCENE.md for the reasoning.
DEMO_MIN_FRACTION = 0.05
DEMO_TILE = 64
DEMO_SPLIT = (0.7, 0.15, 0.15)  # train, val, test
DEMO_SPLIT_BLOCK = 6  # tiles per side of a split block: 3.84 km

# The rule-based mosaic of natural and agricultural classes: CLC code -> (most suitable
# elevation m, width m, weight, lowest m, highest m). A class is drawn only inside its band.
_MOSAIC: dict[int, tuple[float, float, float, float, float]] = {
    211: (60, 260, 1.00, 0, 450),
    212: (10, 110, 0.62, 0, 250),
    222: (20, 130, 0.70, 0, 300),
    231: (220, 260, 0.62, 0, 700),
    223: (300, 150, 0.92, 80, 700),
    221: (560, 170, 0.92, 200, 1000),
    243: (380, 260, 0.70, 50, 1300),
    321: (500, 420, 0.56, 0, 1500),
    323: (560, 260, 0.90, 100, 1300),
    324: (820, 260, 0.84, 300, 1500),
    312: (1150, 320, 1.05, 500, 9000),
    313: (1050, 230, 0.70, 500, 1800),
    333: (1450, 180, 0.85, 1000, 9000),
    332: (1650, 160, 0.95, 1200, 9000),
}
_MOUNTAIN_ONLY = (312, 313, 332, 333)
_SHORE = (523, 331, 421, 521)
_MOUNTAIN_MIN_SHORE_M = 3000.0

#: The planted land-cover structure, machine readable; docs/DEMO_SCENE.md explains it and
#: tests check every rule on the generated CORINE grid. Distances are metres between cell
#: centres of the 100 m grid. `near`: with scope "cell", every cell of `class` lies within
#: `within_m` of a cell of one of `of`; with scope "patch", every patch (8-connected) of
#: `class` does. `far`: no cell of `class` lies within `min_m` of a cell of `from`.
#: `elevation_m`: the band (lowest, highest) a class is drawn in.
PLANTED_STRUCTURE: dict = {
    "zones": {
        "coast": "sea (523) in the south and south-east; beaches (331) on the shoreline; a "
        "cluster of coastal lagoons (521) ringed by salt marsh (421), which also fringes low shores",
        "towns": "a coastal city beside the lagoons and three inland towns: a continuous urban "
        "core (111) inside discontinuous fabric (112), parks (141) inside, sport grounds and golf "
        "courses (142) and industrial zones (121) on the edge, airports (124) adjoining three "
        "of them, a small port (123) on the city's shore",
        "villages": "small discontinuous-urban patches (112) ringed by complex cultivation "
        "(242), or by agriculture with natural vegetation (243) on mountain slopes",
        "roads": "motorway corridors (122) linking the towns and leaving the scene, with "
        "commercial zones (121) at junctions near towns",
        "mountains": "a massif in the north-west: sclerophyllous vegetation (323) and "
        "transitional woodland-shrub (324) on the slopes, coniferous (312) and mixed forest "
        "(313) higher, sparse vegetation (333) and bare rock (332) on the summits; reservoirs "
        "(512) ringed by forest; one burnt area (334); a few quarries (131) in the foothills",
        "plain": "non-irrigated arable land (211) with pastures (231); irrigated land (212) and "
        "fruit orchards (222) near the coast; olive groves (223) and vineyards (221) on the "
        "foothill transition; agriculture with natural vegetation (243) and natural grassland (321)",
    },
    "near": [
        {"class": 331, "scope": "cell", "within_m": 300, "of": [523], "why": "beaches lie on the shoreline"},
        {"class": 421, "scope": "cell", "within_m": 500, "of": [523, 521],
         "why": "salt marshes fringe lagoons and low shores"},
        {"class": 521, "scope": "cell", "within_m": 4000, "of": [523], "why": "lagoons are coastal"},
        {"class": 124, "scope": "patch", "within_m": 150, "of": [111, 112, 121, 141, 142],
         "why": "each airport adjoins a town"},
        {"class": 121, "scope": "patch", "within_m": 150, "of": [111, 112, 122, 124, 141, 142],
         "why": "industry sits on a town's edge or at a motorway"},
        {"class": 141, "scope": "patch", "within_m": 150, "of": [111, 112, 121, 122, 124, 142],
         "why": "parks lie inside towns"},
        {"class": 142, "scope": "patch", "within_m": 150, "of": [111, 112, 121, 122, 124, 141],
         "why": "sport grounds sit at a town's edge"},
        {"class": 111, "scope": "patch", "within_m": 150, "of": [112],
         "why": "a dense core is surrounded by lower-density fabric"},
        {"class": 512, "scope": "patch", "within_m": 150, "of": [312, 313, 324],
         "why": "reservoirs lie inside the mountain forests"},
        {"class": 334, "scope": "patch", "within_m": 150, "of": [312, 313, 324],
         "why": "the burnt area is a scar in the forest"},
        {"class": 123, "scope": "patch", "within_m": 150, "of": [523], "why": "the port is on the sea"},
        {"class": 242, "scope": "patch", "within_m": 2000, "of": [112], "why": "complex cultivation rings villages"},
    ],
    "far": [
        {"class": c, "min_m": _MOUNTAIN_MIN_SHORE_M, "from": list(_SHORE),
         "why": "mountain classes never meet the coast"}
        for c in _MOUNTAIN_ONLY
    ]
    + [{"class": 512, "min_m": 3000, "from": [523], "why": "reservoirs are inland"}],
    "elevation_m": {str(c): [lo, hi] for c, (_m, _w, _k, lo, hi) in _MOSAIC.items()},
    "rare": {
        "123": "one small port: a handful of tiles",
        "131": "a few quarries: about 15 tiles",
        "334": "one burnt area: under 10 tiles",
    },
    "confusable_pairs": [
        [223, 222, "olive groves vs fruit orchards: both dot grids of tree crowns"],
        [323, 324, "sclerophyllous vegetation vs transitional woodland-shrub"],
        [321, 231, "natural grassland vs pastures"],
        [211, 242, "arable parcels vs complex cultivation"],
        [332, 333, "bare rock vs sparsely vegetated areas"],
        [111, 112, "continuous vs discontinuous urban fabric"],
    ],
}

# --------------------------------------------------------------------------------------
# Grids and fields
# --------------------------------------------------------------------------------------

_FIELD_M = 40.0  # resolution of the smooth fields (elevation, brightness, displacement)
_NODE_PX = 32  # spacing of the exact UTM -> LAEA transform nodes, interpolated between


class _Grids:
    """The image grid (UTM), the label grid (LAEA) and the field grid (scene metres)."""

    def __init__(self, size_px: int):
        from rasterio.transform import Affine
        from rasterio.warp import transform

        self.size = size_px
        self.L = size_px * PIXEL_M
        (cx,), (cy,) = transform("EPSG:4326", IMAGE_CRS, [CENTER_LONLAT[0]], [CENTER_LONLAT[1]])
        self.x0 = round((cx - self.L / 2) / 100.0) * 100.0
        self.y0 = round((cy + self.L / 2) / 100.0) * 100.0
        self.image_transform = Affine(PIXEL_M, 0.0, self.x0, 0.0, -PIXEL_M, self.y0)

        # Label grid: the image footprint in EPSG:3035, snapped to CORINE's 100 m lattice.
        t = np.linspace(0.0, self.L, 65)
        ex = np.concatenate([t, np.full_like(t, self.L), t[::-1], np.zeros_like(t)])
        ey = np.concatenate([np.zeros_like(t), t, np.full_like(t, self.L), t[::-1]])
        fx, fy = transform(IMAGE_CRS, LABEL_CRS, list(self.x0 + ex), list(self.y0 - ey))
        margin = 3 * CELL_M
        self.lx0 = math.floor((min(fx) - margin) / CELL_M) * CELL_M
        self.ly1 = math.ceil((max(fy) + margin) / CELL_M) * CELL_M
        self.label_w = int(math.ceil((max(fx) + margin - self.lx0) / CELL_M))
        self.label_h = int(math.ceil((self.ly1 - (min(fy) - margin)) / CELL_M))
        self.label_transform = Affine(CELL_M, 0.0, self.lx0, 0.0, -CELL_M, self.ly1)

        # Scene metres of every label-cell centre: exact transform every 8th cell, bilinear
        # in between (the projection change is smooth; the error is far below a millimetre).
        step = 8
        nr, nc = self.label_h // step + 2, self.label_w // step + 2
        gx, gy = np.meshgrid(
            self.lx0 + (np.arange(nc) * step + 0.5) * CELL_M, self.ly1 - (np.arange(nr) * step + 0.5) * CELL_M
        )
        ux, uy = transform(LABEL_CRS, IMAGE_CRS, gx.ravel(), gy.ravel())
        node_x = (np.asarray(ux) - self.x0).reshape(gx.shape)
        node_y = (self.y0 - np.asarray(uy)).reshape(gx.shape)
        pr, pc = np.arange(self.label_h) / step, np.arange(self.label_w) / step
        self.cell_x = _upsample_rows(node_x, pr, pc).astype(np.float32)
        self.cell_y = _upsample_rows(node_y, pr, pc).astype(np.float32)

        # Field grid covering the label grid, in scene metres.
        self.f_margin = 0.2 * self.L + 1000.0
        self.f_n = int(math.ceil((self.L + 2 * self.f_margin) / _FIELD_M)) + 1

        # LAEA coordinates of image pixels at nodes every _NODE_PX pixels (interpolated later).
        n_nodes = size_px // _NODE_PX + 2
        node_m = (np.arange(n_nodes) * _NODE_PX + 0.5) * PIXEL_M
        nx, ny = np.meshgrid(node_m, node_m)
        lx, ly = transform(IMAGE_CRS, LABEL_CRS, list(self.x0 + nx.ravel()), list(self.y0 - ny.ravel()))
        self.node_col = ((np.asarray(lx) - self.lx0) / CELL_M).reshape(nx.shape)
        self.node_row = ((self.ly1 - np.asarray(ly)) / CELL_M).reshape(nx.shape)

    def field_coords(self):
        """(f_n,) scene-metre coordinates of the field grid's cell centres (same for x and y)."""
        return np.arange(self.f_n) * _FIELD_M - self.f_margin


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_cells: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), normalised to mean 0, std 1; float32 (shape).

    Wide filters are computed on a coarser grid (about 4 cells per sigma) and upsampled
    bilinearly: the result is equally smooth and costs a fraction of the time.
    """
    factor = max(1, int(sigma_cells // 4))
    if factor > 1:
        small = (shape[0] // factor + 3, shape[1] // factor + 3)
        coarse = _smooth_noise(rng, small, sigma_cells / factor)
        out = _upsample_rows(coarse, np.arange(shape[0]) / factor + 1, np.arange(shape[1]) / factor + 1)
        out -= out.mean()
        return (out / (out.std() + 1e-12)).astype(np.float32)
    pad = int(min(3 * sigma_cells, 256))
    h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
    white = rng.standard_normal((h, w))
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    gain = np.exp(-2.0 * (math.pi * sigma_cells) ** 2 * (kx**2 + ky**2))
    out = np.fft.irfft2(np.fft.rfft2(white) * gain, s=(h, w))[pad : pad + shape[0], pad : pad + shape[1]]
    out -= out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def _cell_and_offset(shape: tuple[int, int], fx: np.ndarray, fy: np.ndarray):
    """(ix, iy, ax, ay): the upper-left cell of fractional cell coordinates (fx column, fy row),
    clamped so its right and lower neighbours exist, and the float32 offsets into it."""
    h, w = shape
    fx = np.clip(fx, 0, w - 1.001)
    fy = np.clip(fy, 0, h - 1.001)
    ix = fx.astype(np.int64)
    iy = fy.astype(np.int64)
    return ix, iy, (fx - ix).astype(np.float32), (fy - iy).astype(np.float32)


def _bilinear(field: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Sample `field` (H, W) at fractional cell coordinates (fx column, fy row), clamped."""
    ix, iy, ax, ay = _cell_and_offset(field.shape, fx, fy)
    top = field[iy, ix] * (1 - ax) + field[iy, ix + 1] * ax
    bottom = field[iy + 1, ix] * (1 - ax) + field[iy + 1, ix + 1] * ax
    return top * (1 - ay) + bottom * ay


def _upsample_rows(field: np.ndarray, pos_rows: np.ndarray, pos_cols: np.ndarray) -> np.ndarray:
    """Separable bilinear sampling of `field` (..., H, W) on a regular grid of positions.

    pos_rows (h,), pos_cols (w,) are fractional cell coordinates; returns (..., h, w).
    """
    h, w = field.shape[-2:]
    pr = np.clip(pos_rows, 0, h - 1.001)
    pc = np.clip(pos_cols, 0, w - 1.001)
    r0 = pr.astype(np.int64)
    c0 = pc.astype(np.int64)
    ar = (pr - r0).astype(np.float32)[:, None]
    ac = (pc - c0).astype(np.float32)
    rows = field[..., r0, :] * (1 - ar) + field[..., r0 + 1, :] * ar
    return np.ascontiguousarray(rows[..., c0] * (1 - ac) + rows[..., c0 + 1] * ac)


def _distance_m(mask: np.ndarray, cap_m: float, cell_m: float = CELL_M) -> np.ndarray:
    """Chamfer distance (metres, 8-neighbour) from every cell to the nearest True cell, capped."""
    big = np.float32(cap_m)
    d = np.where(mask, np.float32(0.0), big).astype(np.float32)
    diag = np.float32(cell_m * math.sqrt(2.0))
    for _ in range(int(cap_m / cell_m) + 2):
        prev = d
        p = np.pad(d, 1, mode="edge")
        d = np.minimum.reduce(
            [
                d,
                p[:-2, 1:-1] + cell_m,
                p[2:, 1:-1] + cell_m,
                p[1:-1, :-2] + cell_m,
                p[1:-1, 2:] + cell_m,
                p[:-2, :-2] + diag,
                p[:-2, 2:] + diag,
                p[2:, :-2] + diag,
                p[2:, 2:] + diag,
            ]
        )
        d = np.minimum(d, big)
        if np.array_equal(d, prev):
            break
    return d


def _majority(codes: np.ndarray, classes: list[int], passes: int = 2) -> np.ndarray:
    """3x3 majority filter over `classes` (a minimum-mapping-unit clean-up), ties keep the cell."""
    out = codes.copy()
    for _ in range(passes):
        counts = []
        for c in classes:
            p = np.pad((out == c).astype(np.int8), 1)
            counts.append(sum(p[i : i + out.shape[0], j : j + out.shape[1]] for i in range(3) for j in range(3)))
        counts = np.stack(counts)
        best = np.asarray(classes)[counts.argmax(0)]
        own = np.zeros(out.shape, np.int8)
        for k, c in enumerate(classes):
            own = np.where(out == c, counts[k], own)
        change = np.isin(out, classes) & (counts.max(0) > own)
        out = np.where(change, best, out)
    return out


def _smoothstep(e0: float, e1: float, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _hash01(a, b, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) float32 per integer pair (vectorised integer hash)."""
    with np.errstate(over="ignore"):
        h = np.asarray(a).astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
        h ^= np.asarray(b).astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)
        h ^= np.uint32((salt * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
        h *= np.uint32(0x297A2D39)
        h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


# --------------------------------------------------------------------------------------
# Land cover on the 100 m CORINE grid
# --------------------------------------------------------------------------------------

_WATER = (523, 521, 512)


class _Features:
    """Planted geometry in scene metres, shared by the land cover and the renderer."""

    def __init__(self):
        self.roads: list[tuple[float, float, float, float]] = []
        self.airports: list[tuple[float, float, float, float, float]] = []  # cx, cy, angle, length, width
        self.quarries: list[tuple[float, float]] = []
        self.towns: list[tuple[float, float, float]] = []  # cx, cy, radius
        self.villages: list[tuple[float, float, float]] = []

    def road_array(self) -> np.ndarray:
        return np.asarray(self.roads, dtype=np.float32).reshape(-1, 4)


def _segment_distance(px, py, seg: np.ndarray) -> np.ndarray:
    """Distance (metres) from points (px, py) to the nearest of the segments (S, 4)."""
    best = np.full(np.shape(px), np.inf, dtype=np.float32)
    for x1, y1, x2, y2 in seg:
        dx, dy = x2 - x1, y2 - y1
        t = np.clip(((px - x1) * dx + (py - y1) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        best = np.minimum(best, np.hypot(px - (x1 + t * dx), py - (y1 + t * dy)))
    return best


def _fields(g: _Grids, rng: np.random.Generator) -> dict:
    """Smooth fields on the field grid (f_n, f_n), scene-metre frame: land score, elevation, ..."""
    n = g.f_n
    L = g.L
    coord = g.field_coords()
    u = (coord / L)[None, :]
    v = (coord / L)[:, None]
    macro = _smooth_noise(rng, (n, n), 0.06 * L / _FIELD_M)
    meso = _smooth_noise(rng, (n, n), 0.02 * L / _FIELD_M)
    coast_v = 0.84 - 0.27 * _smoothstep(0.45, 1.05, u)
    land = coast_v + 0.035 * macro + 0.02 * meso - v  # > 0 on land (in units of L)

    ridge = _smooth_noise(rng, (n, n), 0.05 * L / _FIELD_M)
    hills = _smooth_noise(rng, (n, n), 0.035 * L / _FIELD_M)
    valleys = _smooth_noise(rng, (n, n), max(0.012 * L, 250.0) / _FIELD_M)
    bell = np.exp(-(((u - 0.22) / 0.30) ** 2 + ((v - 0.27) / 0.27) ** 2))
    inland = _smoothstep(0.0, 0.12, land)
    elev = 1850.0 * bell**1.25 * (1 + 0.15 * ridge) + 170.0 * (1 - bell) * (0.55 + 0.4 * hills) * inland
    elev -= 140.0 * bell * np.abs(valleys)
    elev = np.where(land > 0, np.maximum(elev * (0.25 + 0.75 * inland), 2.0), -5.0)

    # Rendering fields: per-class brightness, haze, boundary displacement, small blobs.
    fine = max(60.0, 600.0 * min(1.0, L / 20000.0)) / _FIELD_M
    return {
        "land": land.astype(np.float32),
        "elev": elev.astype(np.float32),
        "bright1": _smooth_noise(rng, (n, n), fine),
        "bright2": _smooth_noise(rng, (n, n), fine),
        "haze": _smooth_noise(rng, (n, n), 3000.0 / _FIELD_M),
        "disp_x": _smooth_noise(rng, (n, n), 1.5),
        "disp_y": _smooth_noise(rng, (n, n), 1.5),
        "blob": _smooth_noise(rng, (n, n), 0.8),
    }


def _hillshade(elev: np.ndarray) -> np.ndarray:
    """Illumination factor (0.45..1.3, 1 on flat ground) from elevation on the field grid."""
    dzdy, dzdx = np.gradient(elev.astype(np.float64), _FIELD_M)
    # Sun from the south-east (azimuth 135 deg), 55 deg above the horizon (a morning pass).
    az, alt = math.radians(135.0), math.radians(55.0)
    sx, sy, sz = math.sin(az) * math.cos(alt), -math.cos(az) * math.cos(alt), math.sin(alt)
    # Scene y runs south; the normal of z(x, y) is (-dz/dx, -dz/dy, 1).
    nx, ny = -dzdx, -dzdy
    cos_i = (nx * sx + ny * sy + sz) / np.sqrt(nx * nx + ny * ny + 1)
    return np.clip(0.35 + 0.65 * cos_i / sz, 0.45, 1.3).astype(np.float32)


def _patch_labels(mask: np.ndarray) -> np.ndarray:
    """8-connected patches of `mask`: an id per cell (0 outside), by neighbour-minimum spreading."""
    big = np.int64(mask.size + 1)
    ids = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), big)
    h, w = mask.shape
    while True:
        p = np.pad(ids, 1, constant_values=big)
        spread = np.minimum.reduce([p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
        spread = np.where(mask, spread, big)
        if np.array_equal(spread, ids):
            return np.where(mask, ids, 0)
        ids = spread


# What a mountain class (or a reservoir) becomes where it would break a `far` rule.
_FAR_FALLBACK = {312: 323, 313: 323, 332: 321, 333: 321, 512: 324}


def _enforce_structure(codes: np.ndarray, background: np.ndarray) -> None:
    """Make every rule of PLANTED_STRUCTURE hold, in place: cells or patches that break a
    `near` rule fall back to the background mosaic; cells that break a `far` rule become
    the neighbouring lowland class. Chamfer distances overestimate straight-line ones (by up
    to 8 %), so near rules hold exactly and far rules get a 9 % margin."""
    for _ in range(2):  # a reverted patch can strand another; a second pass settles it
        for rule in PLANTED_STRUCTURE["near"]:
            cls = codes == rule["class"]
            if not cls.any():
                continue
            d = _distance_m(np.isin(codes, rule["of"]), cap_m=rule["within_m"] + CELL_M)
            bad = cls & (d > rule["within_m"])
            if rule["scope"] == "patch" and bad.any():
                ids = _patch_labels(cls)
                good_ids = np.unique(ids[cls & ~bad])
                bad = cls & ~np.isin(ids, good_ids)
            codes[bad] = background[bad]
    for rule in PLANTED_STRUCTURE["far"]:
        near = _distance_m(np.isin(codes, rule["from"]), cap_m=rule["min_m"] * 1.1) < rule["min_m"] * 1.09
        codes[near & (codes == rule["class"])] = _FAR_FALLBACK[rule["class"]]


def _land_cover(g: _Grids, fields: dict, rng: np.random.Generator) -> tuple[np.ndarray, _Features, dict]:
    """CLC codes (label_h, label_w) int16 on the 100 m grid, the planted features, cell fields."""
    L = g.L
    f0 = g.f_margin
    fx = (g.cell_x + f0) / _FIELD_M
    fy = (g.cell_y + f0) / _FIELD_M
    land_score = _bilinear(fields["land"], fx, fy)
    elev = _bilinear(fields["elev"], fx, fy)
    sea = land_score <= 0
    land = ~sea
    elev = np.where(land, np.maximum(elev, 1.0), elev)  # interpolation near the shore dips below 0
    shape = sea.shape
    u = g.cell_x / L
    d_sea = _distance_m(sea, cap_m=6000.0)
    xs, ys = g.cell_x, g.cell_y
    scale = L / 35840.0  # feature counts and sizes scale with the scene
    area_scale = scale * scale
    patch = lambda sigma_m: _smooth_noise(rng, shape, max(sigma_m, 120.0) / CELL_M)  # noqa: E731

    # 1. The rule-based mosaic: each class scores its elevation suitability plus its own
    #    patch noise; the best score wins, then a majority filter removes slivers.
    near_coast = _smoothstep(7000.0, 2000.0, d_sea)
    scores = []
    elev_s = np.minimum(elev, 1700.0)  # summits above this are all rock
    for code, (mu, width, weight, lo, hi) in _MOSAIC.items():
        s = weight * np.exp(-(((elev_s - mu) / width) ** 2)) + 0.36 * patch(340.0 if code < 300 else 420.0)
        if code in (212, 222):
            s = s + 0.35 * near_coast - 0.35
        if code in _MOUNTAIN_ONLY:
            s = np.where(d_sea < _MOUNTAIN_MIN_SHORE_M * 1.1, -9.0, s)
        scores.append(np.where((elev >= lo) & (elev <= hi), s, -99.0))
    mosaic_codes = list(_MOSAIC)
    first_choice = np.asarray(mosaic_codes, dtype=np.int16)[np.argmax(np.stack(scores), axis=0)]
    codes = _majority(first_choice, mosaic_codes, passes=2)
    lo = np.zeros(600, np.float32)
    hi = np.zeros(600, np.float32)
    for code, (_m, _w, _k, lo_c, hi_c) in _MOSAIC.items():
        lo[code], hi[code] = lo_c, hi_c
    codes = np.where((elev >= lo[codes]) & (elev <= hi[codes]), codes, first_choice)  # the filter keeps bands
    codes = np.where(sea, 523, codes).astype(np.int16)
    feats = _Features()

    def pick(ok: np.ndarray, pref: np.ndarray | None = None) -> tuple[float, float]:
        """A random cell where `ok` holds (weighted by exp(pref)); the best-scoring land cell if none."""
        cand = np.flatnonzero(ok & in_scene)
        if cand.size == 0:
            cand = np.flatnonzero(land & in_scene) if (land & in_scene).any() else np.arange(ok.size)
        w = np.exp(np.clip(pref.ravel()[cand], -30, 30)) if pref is not None else np.ones(cand.size)
        i = int(rng.choice(cand, p=w / w.sum()))
        return float(xs.flat[i]), float(ys.flat[i])

    def dist(cx: float, cy: float) -> np.ndarray:
        return np.hypot(xs - cx, ys - cy)

    def ellipse(cx, cy, a, b, angle, wobble):
        ca, sa = math.cos(angle), math.sin(angle)
        ex = ((xs - cx) * ca + (ys - cy) * sa) / a
        ey = (-(xs - cx) * sa + (ys - cy) * ca) / b
        return np.sqrt(ex * ex + ey * ey) + wobble

    in_scene = (xs > 0.03 * L) & (xs < 0.97 * L) & (ys > 0.03 * L) & (ys < 0.97 * L)
    wob = 0.18 * patch(250.0)

    # 2. Coastal lagoons (a salt-lake cluster) ringed by salt marsh; marsh on some low shores.
    wet = np.zeros(shape, bool)
    lagoons: list[tuple[float, float, float]] = []
    for k, rel in enumerate((1.8, 1.0, 0.7, 0.6, 0.5, 0.45)[: max(1, round(6 * area_scale))]):
        a = 1000.0 * rel * max(scale, 0.25)
        ok = land & (d_sea > 300 + 0.4 * a) & (d_sea < 1800) & (elev < 40)
        for lx, ly, la in lagoons:
            ok &= dist(lx, ly) > 1.25 * (la + a) + 300
        pref = -np.abs(u - 0.72) * 8 if not lagoons else -dist(lagoons[0][0], lagoons[0][1]) / 1500.0
        cx, cy = pick(ok, pref)
        lagoons.append((cx, cy, a))
        r = ellipse(cx, cy, a, a * rng.uniform(0.45, 0.6), rng.uniform(0, math.pi), wob)
        lagoon = land & (r < 1.0)
        ring = land & ~lagoon & (_distance_m(lagoon, cap_m=600.0) <= 280.0 + 150.0 * wob)
        codes[ring & ~wet] = 421
        codes[lagoon] = 521
        wet |= lagoon | ring
    marsh_noise = patch(900.0)
    codes[land & (d_sea <= 300) & (elev < 25) & (marsh_noise > 1.0) & ~wet] = 421
    wet |= codes == 421

    # 3. Beaches on the shoreline (not where marsh or lagoon is), wider where dunes are.
    beachness = patch(1500.0)
    codes[land & (d_sea <= 150) & (beachness > -1.0) & ~wet] = 331
    codes[land & (d_sea <= 250) & (beachness > 0.8) & ~wet] = 331

    # 4. Reservoirs in the mountain valleys, ringed by forest.
    taken = np.zeros(shape, bool)
    guarded = np.zeros(shape, bool)  # reservoirs and their forest rings: later features keep off
    for _ in range(max(1, round(18 * area_scale))):
        ok = land & (elev > 550) & (elev < 1050) & (d_sea > 4500) & ~taken
        cx, cy = pick(ok)
        taken |= dist(cx, cy) < 2000 * max(scale, 0.3)
        a = rng.uniform(300, 650) * max(scale, 0.35)
        r = ellipse(cx, cy, a, a * rng.uniform(0.4, 0.65), rng.uniform(0, math.pi), 0.5 * wob)
        res = land & (r < 1.0)
        ring = land & ~res & (r < 1.0 + 260 / a) & ~np.isin(codes, [312, 313, 324])
        codes[ring] = np.where(elev > 700, 312, 324)[ring]
        codes[res] = 512
        guarded |= land & (r < 1.0 + 260 / a)

    # 5. One burnt area in the coniferous forest.
    ok = (codes == 312) & (elev < 1300)
    if ok.any():
        cx, cy = pick(ok)
        a = 900 * max(scale, 0.4)
        scar = ellipse(cx, cy, a, a * 0.6, rng.uniform(0, math.pi), 0.6 * wob) < 1.0
        burnt = scar & np.isin(codes, [312, 313, 324, 323]) & ~guarded
        codes[burnt] = 334

    # 6. Towns: a coastal city beside the lagoons, and three inland towns, each with a dense
    #    core, parks inside, sport grounds and industry on the edge.
    keep = np.isin(codes, [521, 421, 331, 512]) | guarded
    lag_x, lag_y, lag_a = lagoons[0]
    towns = [
        (0.095, land & (d_sea > 1200) & (d_sea < 3200) & (elev < 120),
         -np.abs(dist(lag_x, lag_y) - (0.095 * L + 1.5 * lag_a)) / 1000.0),
        (0.07, land & (d_sea >= 6000) & (elev < 220), None),
        (0.05, land & (elev > 120) & (elev < 450), None),
        (0.045, land & (d_sea > 2500) & (elev < 200), None),
        (0.04, land & (d_sea > 1500) & (elev < 350), None),
    ]
    urban = np.zeros(shape, bool)
    for k, (rel, ok, pref) in enumerate(towns):
        R = rel * L
        far = np.ones(shape, bool)
        for tx, ty, tr in feats.towns:
            far &= dist(tx, ty) > (tr + R) * 1.4
        for lx, ly, la in lagoons:
            far &= dist(lx, ly) > R + la + 300
        cx, cy = pick(ok & far, pref)
        feats.towns.append((cx, cy, R))
        rr = dist(cx, cy) / (R * (1 + 0.22 * patch(0.3 * R)))
        town = land & (rr < 1.0) & ~keep
        codes[town] = 112
        codes[town & (rr < 0.5)] = 111
        urban |= town
        sz = max(scale, 0.5)
        for _ in range(max(1, round(R / 320))):  # parks inside
            px, py = pick(town & (rr > 0.2) & (rr < 0.85))
            codes[town & (dist(px, py) < rng.uniform(180, 320) * sz)] = 141
        for _ in range(3 + round(R / 800)):  # sport grounds and golf courses at the edge
            px, py = pick(land & (rr > 0.85) & (rr < 1.05))
            codes[land & (dist(px, py) < rng.uniform(220, 420) * sz) & ~keep & (codes != 111)] = 142
        for _ in range(4 if k == 0 else 3 if k == 1 else 2):  # industrial zones on the outskirts
            px, py = pick(land & (rr > 0.9) & (rr < 1.1) & (d_sea > 500))
            a = rng.uniform(450, 800) * sz
            zone = land & (ellipse(px, py, a, a * 0.6, rng.uniform(0, math.pi), 0.4 * wob) < 1.0)
            codes[zone & ~keep & (codes != 111)] = 121
        if k == 0:  # the port: on the city's shore
            px, py = pick(land & (d_sea <= 150) & ~np.isin(codes, [421, 521]), -dist(cx, cy) / 300.0)
            codes[(dist(px, py) < 500 * sz) & land & ~np.isin(codes, [421, 521])] = 123
    urban |= np.isin(codes, [121, 142])

    # 7. Airports adjoining the city, the second town and the last town (an airfield): each
    #    rounded rectangle overlaps its town's edge, so it always touches urban cells.
    for k, (length, width) in enumerate([(4500.0, 1400.0), (3000.0, 1000.0), (0.0, 0.0), (2000.0, 650.0)]):
        if length == 0 or (scale < 0.5 and k > 0):
            continue
        tx, ty, tr = feats.towns[k]
        length, width = length * min(1.0, max(scale, 0.3)), width * min(1.0, max(scale, 0.3))
        town_cells = np.isin(codes, [111, 112]) & (dist(tx, ty) < 1.6 * tr)
        best = None
        for angle in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            for reach in (0.75, 0.95, 1.15):
                ax = tx + math.cos(angle) * (tr * reach + width / 2)
                ay = ty + math.sin(angle) * (tr * reach + width / 2)
                rwy = angle + math.pi / 2 + rng.uniform(-0.3, 0.3)
                box = ellipse(ax, ay, length / 2, width / 2, rwy, 0) ** 8 < 1.0  # a rounded rectangle
                overlap = (box & town_cells).sum()
                good = (box & land & ~np.isin(codes, [521, 421, 111, 512, 331, 124, 123])).sum()
                good -= 50 * (box & ~land).sum()
                good -= 3 * overlap + (10**6 if overlap == 0 else 0)
                if best is None or good > best[0]:
                    best = (good, ax, ay, rwy, box)
        _, ax, ay, rwy, box = best
        box = box & land & ~np.isin(codes, [521, 421, 331, 123, 111])
        codes[box] = 124
        feats.airports.append((ax, ay, rwy, length, width))
        urban |= box

    # 8. Motorway routes between the towns and out of the scene (drawn after the villages,
    #    half of which grow along them).
    centres = [(tx, ty) for tx, ty, _ in feats.towns]
    (ax_, ay_), (bx, by), (cx_, cy_) = centres[:3]
    routes = [
        [(ax_, ay_), (bx, by)],
        [(ax_, ay_), (cx_, cy_)],
        [(bx, by), (cx_, cy_)],
        [(ax_, ay_), (-0.05 * L, min(0.78 * L, ay_ + 0.05 * L))],
        [(bx, by), (bx + 0.1 * L, -0.05 * L)],
        [(ax_, ay_), (1.05 * L, ay_ - 0.25 * L)],
    ]
    for k in range(3, len(centres)):  # later towns join the nearest earlier one
        tx, ty = centres[k]
        routes.append([(tx, ty), min(centres[:k], key=lambda c: math.hypot(c[0] - tx, c[1] - ty))])
    for (x1, y1), (x2, y2) in routes:
        pts = [(x1, y1)]
        for t in (0.33, 0.66):
            jitter = 0.04 * L
            jx, jy = rng.uniform(-jitter, jitter, size=2)
            pts.append((x1 + t * (x2 - x1) + jx, y1 + t * (y2 - y1) + jy))
        pts.append((x2, y2))
        feats.roads += [(p[0], p[1], q[0], q[1]) for p, q in zip(pts[:-1], pts[1:])]
    d_road = _segment_distance(xs, ys, feats.road_array())

    # 9. Villages ringed by complex cultivation (by 243 on mountain slopes).
    taken = np.zeros(shape, bool)
    for tx, ty, tr in feats.towns:
        taken |= dist(tx, ty) < tr + 1500 * max(scale, 0.3)
    ring_noise = patch(350.0)
    for k in range(max(2, round(22 * area_scale))):
        ok = land & ~taken & (d_sea > 700) & (elev < 1250) & ~np.isin(codes, [512, 334, 124, 521, 421, 121])
        if not ok.any():
            break
        vx, vy = pick(ok, -d_road / 500.0 if k % 2 == 0 else None)
        taken |= dist(vx, vy) < 2300 * max(scale, 0.3)
        r_v = rng.uniform(230, 380) * max(scale, 0.5)
        feats.villages.append((vx, vy, r_v))
        rr = dist(vx, vy) * (1 + 0.25 * np.clip(ring_noise, -1.2, 2.0))
        ring = land & (rr < r_v + rng.uniform(550, 850) * max(scale, 0.5)) & ~guarded
        codes[ring & np.isin(codes, [211, 212, 221, 222, 223, 231, 243, 321]) & (elev < 700)] = 242
        codes[ring & np.isin(codes, [321, 323, 324]) & (elev >= 400) & (elev <= 1300)] = 243
        codes[land & (rr < r_v) & ~guarded & ~np.isin(codes, [124, 331, 421, 521, 123])] = 112
        urban |= land & (rr < r_v)

    # 10. Quarries in the foothills.
    for _ in range(max(1, round(5 * area_scale))):
        ok = land & (elev > 250) & (elev < 750) & ~urban & np.isin(codes, [323, 321, 243, 324, 223])
        if not ok.any():
            break
        qx, qy = pick(ok)
        a = rng.uniform(300, 480) * max(scale, 0.4)
        pit = ellipse(qx, qy, a, a * 0.7, rng.uniform(0, math.pi), 0.4 * wob) < 1.0
        q = land & pit & ~np.isin(codes, [112, 111, 124]) & ~guarded
        codes[q] = 131
        feats.quarries.append((qx, qy))

    # 11. Motorway corridors over the routes; commercial zones at junctions outside towns.
    road = land & (d_road < 72.0) & ~np.isin(codes, [111, 124, 123, 512, 521, 331, 421])
    codes[road] = 122
    near_town = np.zeros(shape, bool)
    for tx, ty, tr in feats.towns:
        near_town |= (dist(tx, ty) > tr) & (dist(tx, ty) < tr + 2500 * max(scale, 0.3))
    for _ in range(max(1, round(4 * area_scale))):
        px, py = pick(road & near_town & ~urban)
        a = rng.uniform(350, 600) * max(scale, 0.5)
        zone = land & (ellipse(px, py, a, a * 0.6, rng.uniform(0, math.pi), 0.4 * wob) < 1.0)
        codes[zone & ~np.isin(codes, [111, 112, 122, 124, 331, 421, 521, 512])] = 121

    _enforce_structure(codes, first_choice)

    # The extract of a CORINE map: cells well outside the image footprint are NODATA.
    outside = (xs < -150) | (ys < -150) | (xs > L + 150) | (ys > L + 150)
    codes[outside] = 0
    cell_fields = {"elev": elev, "d_sea": d_sea}
    return codes, feats, cell_fields


# --------------------------------------------------------------------------------------
# Rendering the 10 m image
# --------------------------------------------------------------------------------------

# Surface reflectance x 10000 (red, green, blue, nir) of the materials the classes mix.
MATERIALS: dict[str, tuple[int, int, int, int]] = {
    "sea": (140, 330, 560, 90),
    "shallow": (430, 780, 900, 240),
    "lagoon": (900, 1150, 1000, 600),
    "reservoir": (260, 470, 420, 170),
    "sand": (2900, 2600, 2150, 3200),
    "wet_sand": (1700, 1550, 1300, 1900),
    "mud": (1250, 1150, 950, 1600),
    "salt": (3900, 3900, 3750, 3950),
    "soil_light": (2500, 2050, 1550, 2900),
    "soil_red": (2150, 1450, 950, 2550),
    "soil_dark": (1350, 1120, 850, 1850),
    "stubble": (2350, 2050, 1450, 2800),
    "crop": (420, 830, 420, 4400),
    "grass_green": (700, 960, 540, 3600),
    "grass_dry": (1850, 1700, 1200, 2600),
    "shrub": (480, 660, 420, 2450),
    "conifer": (250, 430, 260, 2000),
    "broadleaf": (380, 730, 360, 3700),
    "olive": (640, 800, 560, 2350),
    "orchard": (350, 720, 350, 3500),
    "vine": (560, 820, 480, 3100),
    "halophyte": (1100, 950, 700, 2300),
    "asphalt": (850, 850, 820, 950),
    "concrete": (2400, 2400, 2300, 2650),
    "roof_red": (2500, 1350, 1050, 2500),
    "roof_grey": (1700, 1700, 1650, 1850),
    "roof_metal": (3400, 3500, 3600, 3500),
    "rock": (1950, 1820, 1600, 2350),
    "rock_dark": (1050, 1000, 920, 1450),
    "ash": (420, 400, 370, 650),
    "turf": (420, 950, 420, 4600),
    "track": (2100, 1000, 750, 2400),
}
_MAT_NAMES = tuple(MATERIALS)
_MAT = np.asarray([MATERIALS[m] for m in _MAT_NAMES], dtype=np.float32)  # (M, 4)
_MAT_INDEX = {m: i for i, m in enumerate(_MAT_NAMES)}


class _Pixels:
    """The pixels of one class in one strip: coordinates and helpers for textures."""

    def __init__(self, x, y, col, row, blob, shallow, seed, feats):
        self.x, self.y, self.col, self.row = x, y, col, row
        self.blob = blob  # smooth noise ~40-80 m, std ~1
        self.shallow = shallow  # 1 at the shore, 0 in open water
        self.seed = seed
        self.feats = feats
        self.n = x.shape[0]

    def rand(self, salt: int) -> np.ndarray:
        """Per-pixel uniform [0, 1), fixed by the pixel's position."""
        return _hash01(self.col, self.row + 65536 * (salt % 7), self.seed * 131 + salt)

    def parcels(self, size: float, salt: int):
        """Field parcels: (parcel uniform id (n,), edge weight (n,), parcel angle (n,))."""
        block = 2400.0
        bi, bj = np.floor(self.x / block), np.floor(self.y / block)
        angle = (_hash01(bi, bj, self.seed + salt) - 0.5) * 1.2
        ca, sa = np.cos(angle), np.sin(angle)
        xr = self.x * ca + self.y * sa
        yr = -self.x * sa + self.y * ca
        w = size * (0.75 + 0.5 * _hash01(bi, bj, self.seed + salt + 1))
        h = size * (0.5 + 0.7 * _hash01(bi, bj, self.seed + salt + 2))
        i = np.floor(xr / w)
        yr = yr + _hash01(i, bj, self.seed + salt + 3) * h  # staggered parcel rows
        j = np.floor(yr / h)
        ex = np.minimum(xr - i * w, (i + 1) * w - xr)
        ey = np.minimum(yr - j * h, (j + 1) * h - yr)
        edge = np.clip(1.0 - np.minimum(ex, ey) / 7.0, 0.0, 1.0)
        pid = _hash01(i + 7919 * bi, j + 7919 * bj, self.seed + salt + 4)
        return pid, edge, angle + (pid > 0.5) * (math.pi / 2)

    def dots(self, spacing: float, radius: float, angle, jitter: float, salt: int) -> np.ndarray:
        """Cover (0..1) of a regular grid of tree crowns, as seen by 10 m pixels."""
        ca, sa = np.cos(angle), np.sin(angle)
        xr = self.x * ca + self.y * sa
        yr = -self.x * sa + self.y * ca
        i, j = np.floor(xr / spacing), np.floor(yr / spacing)
        cx = (i + 0.5 + jitter * (_hash01(i, j, self.seed + salt) - 0.5)) * spacing
        cy = (j + 0.5 + jitter * (_hash01(j, i, self.seed + salt + 1) - 0.5)) * spacing
        d = np.hypot(xr - cx, yr - cy)
        return np.clip((radius + PIXEL_M / 2 - d) / PIXEL_M, 0.0, 1.0).astype(np.float32)

    def stripes(self, period: float, angle, duty: float) -> np.ndarray:
        """Cover (0..1) of parallel rows `duty * period` metres wide, as seen by 10 m pixels."""
        phase = np.mod(self.x * np.cos(angle) + self.y * np.sin(angle), period) / period
        return np.clip((duty / 2 - np.abs(phase - 0.5)) * period / PIXEL_M + 0.5, 0.0, 1.0).astype(np.float32)


def _mix(px: _Pixels, parts: list[tuple[str, np.ndarray | float]]) -> np.ndarray:
    """(n, 4) reflectance of a linear mixture of materials; fractions are normalised to sum 1."""
    total = np.zeros(px.n, np.float32)
    out = np.zeros((px.n, 4), np.float32)
    for name, frac in parts:
        f = np.clip(np.broadcast_to(np.asarray(frac, np.float32), (px.n,)), 0.0, None)
        out += f[:, None] * _MAT[_MAT_INDEX[name]]
        total += f
    return out / np.maximum(total, 1e-6)[:, None]


def _pick_material(pid: np.ndarray, options: list[tuple[str, float]]) -> list[tuple[str, np.ndarray]]:
    """Assign each pixel one material by its parcel id and the options' probabilities."""
    cum = np.cumsum([p for _, p in options])
    cum = cum / cum[-1]
    k = np.searchsorted(cum, np.minimum(pid, 0.999999), side="right")
    return [(name, (k == i).astype(np.float32)) for i, (name, _) in enumerate(options)]


def _r_sea(px):
    waves = px.stripes(70.0, 0.5 + 0.1 * px.blob, 0.3)
    s = px.shallow**1.5
    return _mix(px, [("sea", (1 - s) * (1 - 0.06 * waves)), ("shallow", s), ("salt", 0.025 * waves * (1 - s))])


def _r_lagoon(px):
    mud = 0.25 * np.clip(px.blob, 0, None) + 0.1 * px.shallow
    return _mix(px, [("lagoon", 1.0), ("mud", mud), ("salt", 0.08 * (px.blob > 1.2))])


def _r_reservoir(px):
    return _mix(px, [("reservoir", 1.0), ("mud", 0.5 * px.shallow**2)])


def _r_beach(px):
    ripple = px.stripes(30.0, 0.3, 0.5)
    wet = 0.25 * px.shallow + 0.1 * px.rand(1)
    return _mix(px, [("sand", 0.85 + 0.1 * ripple), ("wet_sand", wet), ("shrub", 0.05 * (px.blob > 1.0))])


def _r_salt_marsh(px):
    veg = np.clip(0.5 + 0.3 * px.blob, 0.1, 0.9)
    salt = 0.25 * (px.rand(2) > 0.9)
    return _mix(px, [("halophyte", veg), ("mud", 1 - veg), ("salt", salt), ("lagoon", 0.15 * (px.blob < -1.0))])


def _streets(px, period: float, width: float, salt: int):
    """(street cover (n,), rotated x, rotated y) of a street grid turned per 1 km district."""
    bi, bj = np.floor(px.x / 1000.0), np.floor(px.y / 1000.0)
    angle = (_hash01(bi, bj, px.seed + salt) - 0.5) * 0.8
    ca, sa = np.cos(angle), np.sin(angle)
    xr = px.x * ca + px.y * sa
    yr = -px.x * sa + px.y * ca
    mx = np.abs(np.mod(xr, period) - period / 2)
    my = np.abs(np.mod(yr, period) - period / 2)
    street = np.clip((np.maximum(mx, my) - (period / 2 - width)) / 5.0 + 0.5, 0.0, 1.0)
    return street.astype(np.float32), xr, yr


def _r_urban_continuous(px):
    street, xr, yr = _streets(px, 85.0, 9.0, 11)
    cell = _hash01(np.floor(xr / 15.0), np.floor(yr / 15.0), px.seed + 12)
    roofs = _pick_material(cell, [("roof_red", 0.35), ("roof_grey", 0.35), ("concrete", 0.3)])
    built = 1 - street
    trees = 0.06 * built * (px.rand(3) > 0.8)
    rest = [("asphalt", street), ("broadleaf", trees), ("rock_dark", 0.12 * built)]  # dark: shadows of tall blocks
    return _mix(px, [(m, f * built * 0.9) for m, f in roofs] + rest)


def _r_urban_discontinuous(px):
    street, xr, yr = _streets(px, 120.0, 7.0, 21)
    cell = _hash01(np.floor(xr / 24.0), np.floor(yr / 24.0), px.seed + 22)
    house = (cell < 0.5).astype(np.float32) * (1 - street)
    roofs = _pick_material(cell * 2.0, [("roof_red", 0.55), ("roof_grey", 0.25), ("concrete", 0.2)])
    garden = (1 - house) * (1 - street)
    trees = garden * (0.25 + 0.4 * (px.rand(4) > 0.6))
    parts = [(m, f * house) for m, f in roofs] + [("asphalt", street), ("broadleaf", trees)]
    return _mix(px, parts + [("grass_dry", garden * 0.35), ("soil_light", garden * 0.2)])


def _r_industrial(px):
    street, xr, yr = _streets(px, 160.0, 12.0, 31)
    cell = _hash01(np.floor(xr / 55.0), np.floor(yr / 40.0), px.seed + 32)
    shed = (cell < 0.62).astype(np.float32) * (1 - street)
    roofs = _pick_material(cell / 0.62, [("roof_metal", 0.55), ("roof_grey", 0.3), ("roof_red", 0.15)])
    yard = (1 - shed) * (1 - street)
    yards = [("asphalt", street + 0.5 * yard), ("concrete", 0.4 * yard), ("grass_dry", 0.1 * yard)]
    return _mix(px, [(m, f * shed) for m, f in roofs] + yards)


def _r_road(px):
    d = _segment_distance(px.x, px.y, px.feats.road_array())
    lanes = np.clip((14.0 - d) / 6.0, 0.0, 1.0)  # a dual carriageway about 28 m wide
    verge = 1 - lanes
    return _mix(
        px,
        [("asphalt", lanes), ("concrete", 0.15 * lanes * (d < 2.5)), ("grass_dry", 0.6 * verge),
         ("soil_light", 0.3 * verge), ("shrub", 0.25 * verge * (px.blob > 0.5))],
    )


def _r_airport(px):
    a = np.asarray(px.feats.airports, dtype=np.float32)
    k = np.argmin((px.x[:, None] - a[None, :, 0]) ** 2 + (px.y[:, None] - a[None, :, 1]) ** 2, axis=1)
    cx, cy, ang, length, width = (a[k, i] for i in range(5))
    along = (px.x - cx) * np.cos(ang) + (px.y - cy) * np.sin(ang)
    across = -(px.x - cx) * np.sin(ang) + (px.y - cy) * np.cos(ang)
    inside = np.abs(along) < 0.45 * length
    runway = (np.abs(across) < 25.0) & inside
    marks = runway & (((np.abs(across) < 4.0) & (np.mod(along, 60.0) < 30.0)) | (np.abs(along) > 0.43 * length))
    taxi = ((np.abs(across - 0.22 * width) < 10.0) | (np.abs(across + 0.3 * width) < 8.0)) & inside
    links = (np.abs(np.mod(along, 450.0) - 225.0) < 8.0) & (across > -0.3 * width) & (across < 0.28 * width) & inside
    apron = (across > 0.28 * width) & (across < 0.4 * width) & (np.abs(along) < 0.2 * length)
    terminal = (across >= 0.4 * width) & (across < 0.46 * width) & (np.abs(along) < 0.15 * length)
    service = (np.abs(np.mod(across, 300.0) - 150.0) < 3.0) & ~inside
    paved = (runway | taxi | links | service).astype(np.float32)
    grass = np.clip(1 - paved - apron - terminal, 0, 1)
    mown = px.stripes(40.0, ang, 0.5)
    planes = apron * (px.dots(45.0, 14.0, ang, 0.3, 191) > 0.5)
    return _mix(
        px,
        [("asphalt", paved * (1 - marks)), ("concrete", marks + apron * (1 - planes)),
         ("roof_metal", planes + terminal * 0.6), ("roof_grey", terminal * 0.4),
         ("grass_dry", grass * (0.75 - 0.25 * mown)), ("grass_green", grass * 0.25 * mown),
         ("soil_light", grass * 0.15)],
    )


def _r_port(px):
    cell = _hash01(np.floor(px.x / 20.0), np.floor(px.y / 12.0), px.seed + 41)
    kinds = [("concrete", 0.4), ("asphalt", 0.2), ("roof_metal", 0.15), ("roof_red", 0.15), ("track", 0.1)]
    return _mix(px, _pick_material(cell, kinds))  # quays and containers


def _r_quarry(px):
    q = np.asarray(px.feats.quarries, dtype=np.float32).reshape(-1, 2)
    d = np.min(np.hypot(px.x[:, None] - q[None, :, 0], px.y[:, None] - q[None, :, 1]), axis=1)
    bench = (np.mod(d, 45.0) < 12.0).astype(np.float32)  # terraces around the pit
    return _mix(px, [("salt", 0.35 + 0.15 * px.blob), ("soil_light", 0.5), ("rock_dark", 0.3 * bench), ("rock", 0.2)])


def _r_green_urban(px):
    crowns = px.dots(14.0, 6.0, 0.3, 0.8, 51) * (px.rand(6) > 0.3)
    paths = np.clip(px.stripes(90.0, 0.6, 0.08) + px.stripes(110.0, 2.1, 0.08), 0, 1)
    lawn = (1 - crowns) * (1 - paths)
    parts = [("broadleaf", crowns), ("turf", lawn * 0.6), ("grass_green", lawn * 0.4)]
    return _mix(px, parts + [("concrete", paths * (1 - crowns))])


def _r_sport(px):
    pid, edge, angle = px.parcels(95.0, 61)
    grounds = _pick_material(pid, [("turf", 0.5), ("track", 0.15), ("grass_dry", 0.2), ("concrete", 0.15)])
    lines = px.stripes(45.0, angle, 0.12) * (pid < 0.5)
    rest = [("concrete", lines * 0.5 + edge * 0.5), ("broadleaf", edge * 0.5)]
    return _mix(px, [(m, f * (1 - edge)) for m, f in grounds] + rest)


def _r_arable(px):
    pid, edge, angle = px.parcels(260.0, 71)
    stages = [("soil_light", 0.2), ("soil_red", 0.12), ("soil_dark", 0.08), ("crop", 0.3), ("stubble", 0.22),
              ("grass_dry", 0.08)]
    vigour = 0.85 + 0.3 * _hash01(np.floor(pid * 1e6), 3, px.seed)
    rows = 0.06 * px.stripes(20.0, angle, 0.5)
    parts = [(m, f * vigour * (1 - edge) * (1 - rows)) for m, f in _pick_material(pid, stages)]
    return _mix(px, parts + [("soil_dark", rows), ("grass_dry", edge * 0.7), ("shrub", edge * 0.3)])


def _r_irrigated(px):
    pid, edge, _ = px.parcels(140.0, 81)
    kinds = [("crop", 0.6), ("soil_dark", 0.2), ("grass_green", 0.1), ("roof_metal", 0.1)]  # metal: greenhouses
    stages = _pick_material(pid, kinds)
    return _mix(px, [(m, f * (1 - edge)) for m, f in stages] + [("grass_green", edge * 0.6), ("asphalt", edge * 0.4)])


def _r_vineyard(px):
    pid, edge, angle = px.parcels(150.0, 91)
    rows = px.stripes(30.0, angle, 0.45)
    soil = _pick_material(pid, [("soil_red", 0.5), ("soil_light", 0.5)])
    inner = 1 - edge
    parts = [("vine", rows * 0.7 * inner)] + [(m, f * (1 - 0.7 * rows) * inner) for m, f in soil]
    return _mix(px, parts + [("grass_dry", edge)])


def _r_orchard(px):
    pid, edge, angle = px.parcels(170.0, 101)
    crowns = px.dots(20.0, 7.5, angle, 0.1, 102)  # dense, regular, irrigated green
    ground = _pick_material(pid, [("grass_dry", 0.4), ("soil_dark", 0.4), ("grass_green", 0.2)])
    inner = 1 - edge
    parts = [("orchard", crowns * inner)] + [(m, f * (1 - crowns) * inner) for m, f in ground]
    return _mix(px, parts + [("shrub", edge)])


def _r_olive(px):
    pid, edge, angle = px.parcels(210.0, 111)
    crowns = px.dots(30.0, 6.0, angle, 0.35, 112) * (px.rand(7) > 0.08)  # sparser, greyer, irregular
    ground = _pick_material(pid, [("soil_light", 0.5), ("soil_red", 0.3), ("grass_dry", 0.2)])
    inner = 1 - edge
    parts = [("olive", crowns * inner)] + [(m, f * (1 - crowns) * inner) for m, f in ground]
    return _mix(px, parts + [("shrub", edge * 0.5), ("rock", edge * 0.5)])


def _r_pasture(px):
    pid, edge, _ = px.parcels(320.0, 121)
    green = 0.45 + 0.45 * pid  # grazing intensity differs per field
    dry = (1 - green) * (1 - edge) + 0.1 * px.rand(8)
    return _mix(px, [("grass_green", green * (1 - edge)), ("grass_dry", dry), ("shrub", edge)])


def _r_complex(px):
    pid, edge, angle = px.parcels(85.0, 131)
    kinds = [("crop", 0.22), ("soil_red", 0.14), ("stubble", 0.14), ("orchard", 0.18), ("vine", 0.12),
             ("grass_green", 0.1), ("olive", 0.1)]
    crowns = px.dots(20.0, 6.5, angle, 0.2, 132)
    parts = []
    for m, f in _pick_material(pid, kinds):
        if m in ("orchard", "olive"):  # tree crops as crowns over dry ground
            parts += [(m, f * crowns), ("grass_dry", f * (1 - crowns))]
        else:
            parts.append((m, f))
    hedges = [("shrub", edge * 0.6), ("roof_red", edge * 0.1 * (px.rand(9) > 0.7))]
    return _mix(px, [(m, f * (1 - edge)) for m, f in parts] + hedges)


def _r_agri_natural(px):
    pid, edge, _ = px.parcels(150.0, 141)
    natural = (px.blob + 0.6 * (pid - 0.5) > 0.0).astype(np.float32)
    crop = _pick_material(pid, [("soil_light", 0.3), ("stubble", 0.3), ("crop", 0.25), ("olive", 0.15)])
    shrub = np.clip(0.55 + 0.2 * px.blob, 0.2, 0.9)
    wild = [("shrub", natural * shrub + edge * 0.5), ("soil_red", natural * (1 - shrub))]
    return _mix(px, [(m, f * (1 - natural)) for m, f in crop] + wild)


def _r_conifer(px):
    canopy = np.clip(0.78 + 0.12 * px.blob + 0.14 * (px.rand(10) - 0.5), 0.3, 1.0)
    refl = _mix(px, [("conifer", canopy), ("shrub", (1 - canopy) * 0.5), ("soil_red", (1 - canopy) * 0.5)])
    return refl * (0.88 + 0.12 * px.rand(11))[:, None]  # crown shadows


def _r_mixed(px):
    canopy = np.clip(0.8 + 0.1 * px.blob + 0.1 * (px.rand(12) - 0.5), 0.3, 1.0)
    broad = np.clip(0.5 + 0.35 * px.blob, 0.1, 0.9)
    refl = _mix(px, [("conifer", canopy * (1 - broad)), ("broadleaf", canopy * broad), ("shrub", 1 - canopy)])
    return refl * (0.9 + 0.1 * px.rand(13))[:, None]


def _r_grassland(px):
    rocks = (px.blob > 1.1).astype(np.float32)
    shrubs = px.dots(28.0, 5.0, 0.7, 0.9, 151) * (px.rand(14) > 0.65)
    parts = [("grass_dry", 0.7 * (1 - rocks)), ("grass_green", 0.15), ("soil_light", 0.2), ("rock", rocks * 0.6)]
    return _mix(px, parts + [("shrub", shrubs)])


def _r_sclerophyllous(px):
    shrub = np.clip(0.68 + 0.2 * px.blob + 0.2 * (px.rand(15) - 0.5), 0.2, 1.0)
    return _mix(px, [("shrub", shrub), ("soil_red", (1 - shrub) * 0.6), ("rock", (1 - shrub) * 0.4)])


def _r_transitional(px):
    trees = px.dots(26.0, 6.5, 0.2, 0.9, 161) * (px.rand(16) > 0.45)  # scattered young trees in shrub
    shrub = np.clip(0.5 + 0.2 * px.blob, 0.15, 0.9)
    kind = px.blob > 0.0
    parts = [("conifer", trees * kind), ("broadleaf", trees * ~kind)]
    return _mix(px, parts + [("shrub", (1 - trees) * shrub), ("grass_dry", (1 - trees) * (1 - shrub))])


def _r_bare_rock(px):
    dark = np.clip(0.4 + 0.35 * px.blob, 0.0, 1.0)
    cracks = 0.2 * (px.rand(17) > 0.85)
    return _mix(px, [("rock", 1 - dark), ("rock_dark", dark + cracks)])


def _r_sparse(px):
    veg = px.dots(22.0, 4.5, 1.1, 0.9, 171) * (px.rand(18) > 0.5)
    parts = [("rock", 0.45), ("soil_light", 0.3), ("grass_dry", 0.2), ("shrub", veg * 0.8)]
    return _mix(px, parts + [("rock_dark", 0.15 * (px.blob > 0.8))])


def _r_burnt(px):
    snags = px.dots(16.0, 3.5, 0.0, 0.9, 181) * (px.rand(19) > 0.4)  # standing dead trees
    return _mix(px, [("ash", 0.65 + 0.2 * px.blob), ("soil_dark", 0.25), ("conifer", snags * 0.4), ("rock_dark", 0.1)])


_RECIPES: dict[int, Callable[[_Pixels], np.ndarray]] = {
    111: _r_urban_continuous, 112: _r_urban_discontinuous, 121: _r_industrial, 122: _r_road,
    123: _r_port, 124: _r_airport, 131: _r_quarry, 141: _r_green_urban, 142: _r_sport,
    211: _r_arable, 212: _r_irrigated, 221: _r_vineyard, 222: _r_orchard, 223: _r_olive,
    231: _r_pasture, 242: _r_complex, 243: _r_agri_natural,
    312: _r_conifer, 313: _r_mixed, 321: _r_grassland, 323: _r_sclerophyllous,
    324: _r_transitional, 331: _r_beach, 332: _r_bare_rock, 333: _r_sparse, 334: _r_burnt,
    421: _r_salt_marsh, 512: _r_reservoir, 521: _r_lagoon, 523: _r_sea,
}


def _soft_lookup(codes: np.ndarray, fc: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Class at fractional cell-centre coordinates: the class with the largest bilinear weight
    among the four surrounding cells, so boundaries run smoothly instead of in 100 m steps."""
    c0, r0, ax, ay = _cell_and_offset(codes.shape, fc, fr)
    cand = [codes[r0, c0], codes[r0, c0 + 1], codes[r0 + 1, c0], codes[r0 + 1, c0 + 1]]
    wts = [(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay]
    best = cand[0]
    best_score = np.full(best.shape, -1.0, np.float32)
    for k in range(4):
        score = sum(wts[j] * (cand[j] == cand[k]) for j in range(4))
        better = score > best_score
        best = np.where(better, cand[k], best)
        best_score = np.where(better, score, best_score)
    return best


def _render(
    g: _Grids, codes: np.ndarray, feats: _Features, fields: dict, seed: int, write_strip, progress
) -> np.ndarray:
    """Render the image in strips of 256 rows, each passed to `write_strip(r0, r1, (h, w, 4)
    uint16)`; returns the pixel count of every class (600,) int64, indexed by CLC code."""
    rng = np.random.default_rng([seed, 2])
    size = g.size
    shade = _hillshade(fields["elev"])
    names = ("bright1", "bright2", "haze", "disp_x", "disp_y", "blob")
    stack = np.stack([shade] + [fields[k] for k in names])
    water_cell = np.isin(codes, _WATER)
    # "Shallowness" near the shore, on the label grid: 1 at the water line, 0 far off.
    d_water_edge = _distance_m(~water_cell, cap_m=800.0)
    d_land_edge = _distance_m(water_cell, cap_m=300.0)
    shallow_cells = np.where(water_cell, np.exp(-d_water_edge / 250.0), np.exp(-d_land_edge / 120.0)).astype(np.float32)
    code_salt = {c: int(_hash01(c, 5, seed)[()] * 1e6) for c in _RECIPES}
    counts = np.zeros(600, np.int64)
    strip = 256
    for r0 in range(0, size, strip):
        r1 = min(size, r0 + strip)
        a0, a1 = max(0, r0 - 1), min(size, r1 + 1)  # one-row halo for the blur
        rows = np.arange(a0, a1)
        cols = np.arange(size)
        pos_r = ((rows + 0.5) * PIXEL_M + g.f_margin) / _FIELD_M
        pos_c = ((cols + 0.5) * PIXEL_M + g.f_margin) / _FIELD_M
        shade_s, b1, b2, haze, dxf, dyf, blob = _upsample_rows(stack, pos_r, pos_c)
        # Label lookup: exact transform at nodes, bilinear between, wobbled by ~20 m.
        nr, nc = rows / _NODE_PX, cols / _NODE_PX  # node k sits at pixel k * _NODE_PX
        lab_c, lab_r = _upsample_rows(np.stack([g.node_col, g.node_row]), nr, nc)
        lab_c = lab_c + 0.25 * dxf
        lab_r = lab_r + 0.25 * dyf
        pix_codes = _soft_lookup(codes, lab_c - 0.5, lab_r - 0.5)
        shallow = _bilinear(shallow_cells, lab_c - 0.5, lab_r - 0.5)
        h, w = pix_codes.shape
        img = np.zeros((h, w, 4), np.float32)
        flat = pix_codes.ravel()
        blob_f, shallow_f, b1_f, b2_f, shade_f = (a.ravel() for a in (blob, shallow, b1, b2, shade_s))
        order = np.argsort(flat, kind="stable")
        sorted_codes = flat[order]
        present, starts = np.unique(sorted_codes, return_index=True)
        ends = np.append(starts[1:], flat.size)
        img_flat = img.reshape(-1, 4)
        for code, s, e in zip(present, starts, ends):
            idx = order[s:e]
            rr, cc = np.divmod(idx, w)
            px = _Pixels(
                ((cc + 0.5) * PIXEL_M).astype(np.float32),
                ((rr + a0 + 0.5) * PIXEL_M).astype(np.float32),
                cc, rr + a0, blob_f[idx], shallow_f[idx], seed, feats,
            )
            recipe = _RECIPES.get(int(code), _r_grassland)
            refl = recipe(px)
            theta = code_salt.get(int(code), 0) % 628 / 100.0
            bright = 1.0 + 0.09 * (b1_f[idx] * math.cos(theta) + b2_f[idx] * math.sin(theta))
            if int(code) not in _WATER:
                bright = bright * shade_f[idx]
            img_flat[idx] = refl * bright[:, None]
            inner = (rr + a0 >= r0) & (rr + a0 < r1)
            counts[int(code)] += int(inner.sum())
        # Thin haze (bluish, additive), a mild optical blur, then sensor noise.
        img += np.clip(haze - 1.0, 0, None)[..., None] * np.float32([90, 110, 150, 50])
        blurred = img.copy()
        blurred[:, 1:-1] = 0.5 * img[:, 1:-1] + 0.25 * (img[:, :-2] + img[:, 2:])
        img = blurred.copy()
        img[1:-1] = 0.5 * blurred[1:-1] + 0.25 * (blurred[:-2] + blurred[2:])
        img = img[r0 - a0 : r0 - a0 + (r1 - r0)]
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        img += noise * (25.0 + 0.015 * img)
        out = np.clip(np.rint(img), 1, 10000).astype(np.uint16)
        write_strip(r0, r1, out)
        if progress:
            progress(r1, size, "rendering the image")
    return counts


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def _check_params(seed, size_px) -> tuple[int, int]:
    try:
        seed_i, size_i = int(seed), int(size_px)
    except (TypeError, ValueError):
        raise OLRError(f"The demo scene needs whole numbers for seed and size (got {seed!r}, {size_px!r}).") from None
    if seed_i < 0 or seed_i >= 2**31:
        raise OLRError(f"The demo scene seed {seed_i} is out of range; use a number from 0 to 2147483647.")
    if size_i < MIN_SIZE_PX or size_i > MAX_SIZE_PX:
        raise OLRError(f"The demo scene size {size_i} px is out of range; use {MIN_SIZE_PX} to {MAX_SIZE_PX} px.")
    return seed_i, size_i


def build_land_cover(seed: int = DEFAULT_SEED, size_px: int = DEFAULT_SIZE_PX) -> dict:
    """The scene's land cover without rendering: grids, CLC codes (H, W) int16 (0 = NODATA),
    planted features and the cell fields (elevation, distance to sea; (H, W) float32)."""
    seed, size_px = _check_params(seed, size_px)
    g = _Grids(size_px)
    rng = np.random.default_rng([seed, 1])
    fields = _fields(g, rng)
    codes, feats, cell_fields = _land_cover(g, fields, rng)
    return {"grids": g, "fields": fields, "codes": codes, "features": feats, "cell_fields": cell_fields}


def _grid_raster(codes: np.ndarray) -> np.ndarray:
    """CLC codes (0 = none) -> CORINE grid codes, 48 where there is no class."""
    lut = {c.code: c.grid_code for c in label_schemes.legend()}
    out = np.full(codes.shape, NODATA_GRID, np.uint8)
    for code in np.unique(codes):
        if int(code) in lut:
            out[codes == code] = lut[int(code)]
    return out


def generate_scene(
    folder: str | os.PathLike,
    *,
    seed: int = DEFAULT_SEED,
    size_px: int = DEFAULT_SIZE_PX,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict:
    """Write `image.tif`, `label_schemes.tif` and `scene.json` of the demo scene into `folder`.

    image.tif: (4, size_px, size_px) uint16, EPSG:32636, 10 m. label_schemes.tif: (H, W) uint8 CORINE
    grid codes, EPSG:3035, 100 m, nodata 48. The folder is built in a hidden sibling and
    renamed when complete. Returns the scene description (also in scene.json).
    """
    import rasterio
    from rasterio.windows import Window

    seed, size_px = _check_params(seed, size_px)
    folder = Path(folder)
    steps = size_px + size_px // 8  # rendering rows + land cover (an eighth)
    report = (lambda d, m: progress(min(d, steps), steps, m)) if progress else None
    if report:
        report(0, "drawing the land cover")
    lc = build_land_cover(seed, size_px)
    g, codes, feats = lc["grids"], lc["codes"], lc["features"]
    grid_codes = _grid_raster(codes)
    if report:
        report(size_px // 8, "rendering the image")

    with atomic.staged_folder(folder, overwrite=overwrite) as tmp:
        with rasterio.open(
            tmp / "label_schemes.tif", "w", driver="GTiff", width=grid_codes.shape[1], height=grid_codes.shape[0], count=1,
            dtype="uint8", crs=LABEL_CRS, transform=g.label_transform, nodata=NODATA_GRID,
            tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        ) as dst:
            dst.write(grid_codes, 1)
            cmap = {c.grid_code: tuple(int(c.color[i : i + 2], 16) for i in (1, 3, 5)) + (255,) for c in label_schemes.legend()}
            cmap[NODATA_GRID] = (255, 255, 255, 0)
            dst.write_colormap(1, cmap)
            dst.set_band_description(1, "CORINE Land Cover grid code")

        with rasterio.open(
            tmp / "image.tif", "w", driver="GTiff", width=size_px, height=size_px, count=4, dtype="uint16",
            crs=IMAGE_CRS, transform=g.image_transform, tiled=True, blockxsize=256, blockysize=256,
            compress="deflate", predictor=2, zlevel=1, interleave="pixel",
        ) as dst:
            for b, name in enumerate(BAND_NAMES, start=1):
                dst.set_band_description(b, name)

            def write_strip(r0, r1, block):
                dst.write(np.moveaxis(block, -1, 0), window=Window(0, r0, size_px, r1 - r0))

            def render_progress(done, total, message):
                if report:
                    report(size_px // 8 + done, message)

            counts = _render(g, codes, feats, lc["fields"], seed, write_strip, render_progress)

        total = counts.sum()
        names = label_schemes.by_code()
        classes = [
            {"code": int(c), "grid_code": names[int(c)].grid_code, "name": names[int(c)].level3,
             "color": names[int(c)].color, "pixel_share": round(float(counts[c] / total), 6)}
            for c in np.flatnonzero(counts)
        ]
        classes.sort(key=lambda d: -d["pixel_share"])
        scene = {
            "synthetic": True,
            "description": "Synthetic Cyprus-like demo scene generated by OLR Studio (not real imagery).",
            "seed": seed,
            "size_px": size_px,
            "image": {"file": "image.tif", "crs": IMAGE_CRS, "resolution_m": PIXEL_M, "bands": list(BAND_NAMES),
                      "dtype": "uint16", "transform": list(g.image_transform)[:6]},
            "labels": {"file": "label_schemes.tif", "crs": LABEL_CRS, "resolution_m": CELL_M, "encoding": "grid_code",
                       "nodata": NODATA_GRID, "shape": list(grid_codes.shape),
                       "transform": list(g.label_transform)[:6]},
            "tiles_expected": (size_px // DEMO_TILE) ** 2,
            "classes": classes,
            "planted_structure": PLANTED_STRUCTURE,
        }
        atomic.write_json(tmp / "scene.json", scene)
    if report:
        report(steps, "scene written")
    return scene


def demo_scene_dir() -> Path:
    """Where the demo scene's rasters live: `<workspace>/data/demo-scene`."""
    return workspace.data_dir() / "demo-scene"


def _scene_complete(folder: Path) -> dict | None:
    try:
        scene = json.loads((folder / "scene.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not ((folder / "image.tif").is_file() and (folder / "label_schemes.tif").is_file()):
        return None
    return scene


def _dataset_complete(folder: Path) -> bool:
    from olr.data.dataset import REQUIRED_FILES

    return folder.is_dir() and all((folder / f).exists() for f in REQUIRED_FILES)


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    """An exclusive advisory lock (flock) held for the `with` block; others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def tile_presence(
    image: str | os.PathLike, labels: str | os.PathLike, tile: int = DEMO_TILE
) -> tuple[np.ndarray, list[int]]:
    """Which CLC classes each tile holds, computed the way preparation does it.

    The CORINE raster is aligned onto the image grid (nearest neighbour); a class is present
    in a tile when it covers at least DEMO_MIN_FRACTION of the tile's labelled pixels.
    Returns presence (H // tile, W // tile, C) bool and the C class codes of its last axis.
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(image) as im, rasterio.open(labels) as lb:
        grid = np.full((im.height, im.width), NODATA_GRID, np.uint8)
        reproject(
            rasterio.band(lb, 1), grid, dst_transform=im.transform, dst_crs=im.crs,
            resampling=Resampling.nearest, dst_nodata=NODATA_GRID,
        )
    nr, nc = grid.shape[0] // tile, grid.shape[1] // tile
    codes = label_schemes.grid_to_code_lut()[grid[: nr * tile, : nc * tile]]
    tile_id = (np.arange(nr * tile)[:, None] // tile) * nc + np.arange(nc * tile)[None, :] // tile
    present = sorted(set(np.unique(codes).tolist()) - {0})
    index = np.zeros(600, np.int64)
    index[present] = np.arange(1, len(present) + 1)
    counts = np.bincount((tile_id * (len(present) + 1) + index[codes]).ravel(), minlength=nr * nc * (len(present) + 1))
    counts = counts.reshape(nr * nc, len(present) + 1)
    labelled = np.maximum(counts[:, 1:].sum(1, keepdims=True), 1)
    return (counts[:, 1:] / labelled >= DEMO_MIN_FRACTION).reshape(nr, nc, len(present)), present


def split_seed(presence: np.ndarray, *, block: int, fractions=DEMO_SPLIT, n_seeds: int = 200) -> int:
    """The seed of the spatial block split (olr.splits) that serves every label best.

    A spatial split moves whole towns or lagoons into one split, so a clumped label can miss
    the validation or test split entirely. Among seeds 0..n_seeds-1 this picks the one whose
    worst label (of those in at least 20 tiles) gets the largest share of its expected
    validation and test positives. presence: (tile rows, tile cols, C) bool.
    """
    from olr.data import splits

    nr, nc, n_labels = presence.shape
    rows, cols = np.divmod(np.arange(nr * nc), nc)
    blocks = splits.spatial_blocks(rows, cols, block)
    flat = presence.reshape(nr * nc, n_labels)
    common = flat[:, flat.sum(0) >= 20]
    if common.shape[1] == 0:  # a scene too small to matter
        return 0
    best_seed, best_score = 0, -1.0
    for seed in range(n_seeds):
        assigned = splits.assign_blocks(blocks, fractions, seed)
        score = min(
            float((common[assigned == name].sum(0) / (share * common.sum(0))).min())
            for name, share in zip(("val", "test"), fractions[1:])
        )
        if score > best_score:
            best_seed, best_score = seed, score
    return best_seed


def ensure_demo_dataset(
    progress: Progress | None = None,
    *,
    seed: int | None = None,
    size_px: int | None = None,
    force: bool = False,
) -> Path:
    """Return the demo dataset folder `data/demo`, generating the scene and preparing it if needed.

    Safe when several processes call it at once: one builds under an exclusive lock on
    `data/.demo.lock`, the others wait and then find it. `seed`/`size_px` None means "as it
    exists, else the defaults"; a different explicit value rebuilds the scene and dataset.
    """
    import shutil

    from olr.data.prepare import prepare_dataset

    out = workspace.dataset_path(DEMO_DATASET)
    scene_dir = demo_scene_dir()
    want_seed = DEFAULT_SEED if seed is None else seed
    want_size = DEFAULT_SIZE_PX if size_px is None else size_px
    want_seed, want_size = _check_params(want_seed, want_size)
    if workspace.is_readonly() and not force and _dataset_complete(out):
        return out  # a read-only demo shows what is there and writes nothing, not even the lock
    workspace.require_writable("prepare the demo dataset")
    with _exclusive_lock(workspace.data_dir() / ".demo.lock"):
        scene = _scene_complete(scene_dir)
        stale = scene is not None and (
            (seed is not None and scene.get("seed") != want_seed)
            or (size_px is not None and scene.get("size_px") != want_size)
        )
        if not force and not stale and scene is not None and _dataset_complete(out):
            return out
        if force or stale or scene is None:
            shutil.rmtree(out, ignore_errors=True)  # never leave a dataset of another scene
            generate_scene(scene_dir, seed=want_seed, size_px=want_size, progress=progress, overwrite=True)
        image, labels = scene_dir / "image.tif", scene_dir / "label_schemes.tif"
        chosen = split_seed(tile_presence(image, labels)[0], block=DEMO_SPLIT_BLOCK)
        prepare_dataset(
            image, labels, out, tile=DEMO_TILE, scheme="level3", min_fraction=DEMO_MIN_FRACTION,
            split_block=DEMO_SPLIT_BLOCK, split_fractions=DEMO_SPLIT, seed=chosen, overwrite=True, progress=progress,
        )
    return out


# --------------------------------------------------------------------------------------
# CLI: python -m olr demo-data
# --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help=f"random seed of the scene (default {DEFAULT_SEED})")
    parser.add_argument("--size", type=int, default=None, help=f"scene size in 10 m pixels (default {DEFAULT_SIZE_PX})")
    parser.add_argument("--force", action="store_true", help="regenerate the scene and the dataset even if they exist")


def run(args: argparse.Namespace) -> int:
    from olr.data.dataset import load_dataset

    last = [0.0, ""]

    def progress(done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if message != last[1] or now - last[0] > 2.0 or done >= total:
            print(f"  {message}: {done}/{total}", flush=True)
            last[0], last[1] = now, message

    start = time.monotonic()
    path = ensure_demo_dataset(progress, seed=args.seed, size_px=args.size, force=args.force)
    ds = load_dataset(path)
    scene = _scene_complete(demo_scene_dir()) or {}
    print(f"demo dataset: {path} ({time.monotonic() - start:.1f} s)")
    print(f"scene: seed {scene.get('seed')}, {scene.get('size_px')} x {scene.get('size_px')} px at 10 m (synthetic)")
    counts = np.asarray(ds.presence, dtype=np.int64).sum(axis=0)
    splits = ", ".join(f"{k} {v}" for k, v in ds.meta.get("split_counts", {}).items())
    print(f"tiles: {ds.n_tiles} ({splits}), labels: {len(ds.label_names)}")
    print("label frequencies (tiles with the label present):")
    for i in np.argsort(-counts):
        if counts[i] > 0:
            print(f"  {counts[i]:6d}  {100.0 * counts[i] / max(ds.n_tiles, 1):5.1f}%  {ds.label_names[i]}")
    return 0
